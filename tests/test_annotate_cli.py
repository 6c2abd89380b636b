"""`lerobot-assets annotate`: the summary line, per-episode subsets, and one-line errors with nothing
written (unreachable server, unknown camera, bad module/backend, validation failures)."""

import json
from pathlib import Path

import pytest

from lerobot_assets.annotate import validate_annotations
from lerobot_assets.annotate.backends.sim import SimBackend
from lerobot_assets.cli.main import main
from lerobot_assets.sources.pusht.config import PushTSourceConfig
from lerobot_assets.sources.pusht.record import record_pusht


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("src") / "pusht"
    record_pusht(root, PushTSourceConfig(seed=2, episodes=2, max_steps=50, top_camera=False))
    return root


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def test_annotate_writes_and_summarizes(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ann"
    code, stdout, _ = run(["annotate", src, "--out", out, "--modules", "plan,vqa", "--episodes", "1"], capsys)
    assert code == 0
    assert stdout.startswith("annotate: 1 episodes annotated (") and "subtask=" in stdout and "vqa=" in stdout
    assert "interjection" not in stdout
    assert validate_annotations(out).ok
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"]["language_events"]["dtype"] == "language"
    # the staging beside OUT makes the re-run free
    code, stdout, _ = run(["annotate", src, "--out", out, "--modules", "plan,vqa", "--episodes", "1", "--overwrite"], capsys)
    assert code == 0 and "2 staged results reused" in stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "openai", "--api-base", "http://127.0.0.1:9/v1", "--timeout", "0.5"], "cannot reach the VLM server at http://127.0.0.1:9/v1"),
        (["--cameras", "observation.images.side"], "unknown camera(s) ['observation.images.side']"),
        (["--modules", "plan,dance"], "unknown module(s) ['dance']"),
        (["--episodes", "7"], "episode 7 is not in"),
    ],
)
def test_one_line_errors_and_nothing_written(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    out = tmp_path / "ann"
    code, _, err = run(["annotate", src, "--out", out, *extra], capsys)
    assert code == 1
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_backend_is_a_usage_error(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["annotate", src, "--out", tmp_path / "x", "--backend", "gpt"], capsys)
    assert code == 2 and "unknown backend 'gpt'" in err


def test_validation_failure_lists_each_rule(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def off_image(self, ep, requests, cfg):  # type: ignore[no-untyped-def]
        return [("where?", {"label": "x", "point_format": "xy", "point": [500, 3]}) for _ in requests]

    monkeypatch.setattr(SimBackend, "vqa", off_image)
    out = tmp_path / "ann"
    code, _, err = run(["annotate", src, "--out", out, "--modules", "vqa"], capsys)
    lines = [line for line in err.splitlines() if line.startswith("error:")]  # (progress bars share stderr)
    assert code == 1 and lines[0].startswith("error: annotation validation failed:")
    assert all(line.startswith("error: episode ") and "[keypoint_outside_image]" in line for line in lines[1:])
    assert {line.split()[2] for line in lines[1:]} == {"0", "1"}  # both episodes named, with their times
    assert not out.exists()
