"""Fixtures shared across test modules."""

import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest


@pytest.fixture(autouse=True)
def _no_default_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands without --home use $LEROBOT_ASSETS_HOME, else ./.demo_home: point it at an empty
    directory so a developer's own demo home never leaks into a test."""
    monkeypatch.setenv("LEROBOT_ASSETS_HOME", str(tmp_path_factory.mktemp("default-home")))


@pytest.fixture
def slow_encoder(monkeypatch):
    """Every encoded frame takes >= 3 ms, so a producer with a 1-frame queue and no wait drops
    frames on every run, not only when the machine happens to be busy."""
    from lerobot_assets.video.encode import Mp4FrameWriter

    write = Mp4FrameWriter.write

    def slow_write(self, frame):
        time.sleep(0.003)
        return write(self, frame)

    monkeypatch.setattr(Mp4FrameWriter, "write", slow_write)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A throwaway Dagster instance (temporary storage, telemetry off)."""
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty data home."""
    h = tmp_path / "home"
    h.mkdir()
    return h
