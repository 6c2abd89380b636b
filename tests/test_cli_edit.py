"""`lerobot-assets edit ...`: each form exactly as the README writes it, a one-line summary on
success, a one-line error naming the bad argument (exit 1) with nothing written, and the input
byte-for-byte unchanged either way."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import FIXTURE, record
from tools_support import tree_digest

from lerobot_assets.cli.main import main


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("edit-cli") / "src"
    record(root, [5, 6, 7, 8])
    return root


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def info(root: Path) -> dict:
    return json.loads((root / "meta/info.json").read_text())


def tasks_of(root: Path) -> list[list[str]]:
    rows = pq.read_table(next((root / "meta/episodes").rglob("*.parquet"))).to_pylist()
    return [r["tasks"] for r in sorted(rows, key=lambda r: r["episode_index"])]


def test_every_form_and_its_summary(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = tree_digest(src)

    code, out, err = run(["edit", "delete", src, "--episodes", "1,3", "--out", tmp_path / "del"], capsys)
    assert code == 0, err
    assert out.count("\n") == 1 and "2 episodes, 12 frames" in out
    assert (info(tmp_path / "del")["total_episodes"], info(tmp_path / "del")["total_frames"]) == (2, 12)

    code, out, err = run(["edit", "split", src, "--fractions", "train=0.75,val=0.25", "--seed", "3", "--out-dir", tmp_path / "sp"], capsys)
    assert code == 0, err
    assert out.count("\n") == 1 and out.startswith("split: train 3 episodes") and "val 1 episodes" in out, out
    assert info(tmp_path / "sp/train")["total_episodes"] == 3 and info(tmp_path / "sp/val")["total_episodes"] == 1

    code, out, err = run(
        ["edit", "split", src, "--episodes", "train=0-2", "--episodes", "val=3", "--out-dir", tmp_path / "sp2"], capsys
    )
    assert code == 0, err
    assert info(tmp_path / "sp2/train")["total_frames"] == 5 + 6 + 7 and info(tmp_path / "sp2/val")["total_frames"] == 8

    code, out, err = run(["edit", "merge", tmp_path / "sp2/train", tmp_path / "sp2/val", "--out", tmp_path / "back"], capsys)
    assert code == 0, err
    assert (info(tmp_path / "back")["total_episodes"], info(tmp_path / "back")["total_frames"]) == (4, 26)

    code, out, err = run(["edit", "remove-feature", src, "--feature", "observation.images.wrist", "--out", tmp_path / "rm"], capsys)
    assert code == 0, err
    assert "observation.images.wrist" not in info(tmp_path / "rm")["features"]
    assert not (tmp_path / "rm/videos/observation.images.wrist").exists()

    values = np.arange(26, dtype=np.float32).reshape(26, 1) * 0.5
    np.save(tmp_path / "reward.npy", values)
    code, out, err = run(["edit", "add-feature", src, "--feature", "next.reward", "--values", tmp_path / "reward.npy", "--out", tmp_path / "add"], capsys)
    assert code == 0, err
    assert info(tmp_path / "add")["features"]["next.reward"]["dtype"] == "float32"
    stats = json.loads((tmp_path / "add/meta/stats.json").read_text())
    assert stats["next.reward"]["max"] == [12.5] and stats["next.reward"]["min"] == [0.0]

    code, out, err = run(["edit", "set-task", src, "--episodes", "0-1", "--task", "stack the cubes", "--out", tmp_path / "st"], capsys)
    assert code == 0, err
    assert tasks_of(tmp_path / "st") == [["stack the cubes"], ["stack the cubes"], ["pick the cube"], ["place the cube"]]

    code, out, err = run(["edit", "replace-task", src, "--from", "pick the cube", "--to", "grasp the cube", "--out", tmp_path / "rt"], capsys)
    assert code == 0, err
    assert tasks_of(tmp_path / "rt") == [["grasp the cube"], ["place the cube"], ["grasp the cube"], ["place the cube"]]

    code, out, err = run(["edit", "recompute-stats", src, "--out", tmp_path / "rs"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "rs/meta/stats.json").read_text())["index"]["max"] == [25]

    code, out, err = run(["edit", "reencode", src, "--vcodec", "libx264", "--crf", "23", "--g", "2", "--out", tmp_path / "h264"], capsys)
    assert code == 0, err
    assert {f["info"]["video.codec"] for f in info(tmp_path / "h264")["features"].values() if f["dtype"] == "video"} == {"h264"}

    assert tree_digest(src) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["delete", "{src}", "--episodes", "1,57", "--out", "{out}"], "unknown episode 57 of 4"),
        (["remove-feature", "{src}", "--feature", "observation.images.frnt", "--out", "{out}"], "did you mean 'observation.images.front'"),
        (["split", "{src}", "--fractions", "train=0.8,val=0.1", "--out-dir", "{out}"], "sum"),
        (["replace-task", "{src}", "--from", "pick the cbe", "--to", "x", "--out", "{out}"], "pick the cbe"),
        (["image-to-video", "{src}", "--out", "{out}"], "image"),
        (["merge", "{src}", "{fixture}", "--out", "{out}"], "differs"),
    ],
)
def test_bad_arguments_are_one_line_and_write_nothing(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = tree_digest(src)
    out = tmp_path / "out"
    filled = [a.format(src=src, out=out, fixture=FIXTURE) for a in args]
    code, stdout, err = run(["edit", *filled], capsys)
    assert code == 1, (stdout, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert not out.exists()
    assert tree_digest(src) == before


def test_output_exists_needs_overwrite(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run(["edit", "delete", src, "--episodes", "0", "--out", out], capsys)[0] == 0
    first = tree_digest(out)
    code, _, err = run(["edit", "delete", src, "--episodes", "1", "--out", out], capsys)
    assert code == 1 and "exists" in err and "--overwrite" in err
    assert tree_digest(out) == first
    assert run(["edit", "delete", src, "--episodes", "1", "--out", out, "--overwrite"], capsys)[0] == 0
    assert info(out)["total_frames"] == 5 + 7 + 8
    # The output may never be the input, even with --overwrite.
    code, _, err = run(["edit", "delete", src, "--episodes", "1", "--out", src, "--overwrite"], capsys)
    assert code == 1 and "input" in err


def test_usage_errors(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["edit", "recompute-stats", src], capsys)
    assert code == 2 and "--in-place" in err
    code, _, err = run(["edit", "split", src, "--out-dir", tmp_path / "x"], capsys)
    assert code == 2 and "--fractions" in err


def test_convert_v21_and_fixture_edits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    v21 = Path(__file__).parent / "fixtures" / "lerobot-v21-tiny"
    if not v21.is_dir():
        pytest.skip("v2.1 fixture not present")
    before = tree_digest(v21)
    code, out, err = run(["edit", "convert-v21", v21, "--out", tmp_path / "v30"], capsys)
    assert code == 0, err
    assert info(tmp_path / "v30")["codebase_version"] == "v3.0"
    assert tree_digest(v21) == before
    # The LeRobot-written fixture edits the same way.
    fixture_before = tree_digest(FIXTURE)
    code, out, err = run(["edit", "delete", FIXTURE, "--episodes", "1", "--out", tmp_path / "fx"], capsys)
    assert code == 0, err
    assert info(tmp_path / "fx")["total_episodes"] == info(FIXTURE)["total_episodes"] - 1
    assert tree_digest(FIXTURE) == fixture_before
