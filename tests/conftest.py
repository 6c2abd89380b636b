"""Fixtures shared across test modules."""

import time

import pytest


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
