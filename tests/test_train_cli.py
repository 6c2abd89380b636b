"""`lerobot-assets train` / `eval` as the README writes them: a one-line summary on success; a
one-line error naming the problem (exit 1) with nothing written or overwritten."""

import json
import os
from pathlib import Path

import pytest
import torch

from lerobot_assets.cli.main import main
from lerobot_assets.sources.pusht import PushTSourceConfig
from lerobot_assets.sources.pusht.record import record_pusht
from lerobot_assets.tools.features import remove_features


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train-cli") / "pusht"
    record_pusht(root, PushTSourceConfig(seed=0, episodes=3, max_steps=25, top_camera=False))
    return root


def run(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_train_resume_and_eval(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code, stdout, err = run(["train", "--dataset", dataset, "--out", out, "--steps", 4, "--batch-size", 8,
                             "--chunk-size", 4, "--n-action-steps", 2, "--save-freq", 2], capsys)
    assert code == 0, err
    assert stdout.startswith("trained to step 4 (4 this run)") and stdout.count("\n") == 1
    assert os.readlink(out / "checkpoints" / "last") == "000004"
    code, stdout, err = run(["train", "--out", out, "--resume", "--steps", 6], capsys)
    assert code == 0, err
    assert stdout.startswith("trained to step 6 (2 this run)")
    code, stdout, err = run(["eval", "--checkpoint", out, "--episodes", 2, "--videos", 1, "--seed-start", 500,
                             "--batch-size", 2], capsys)
    assert code == 0, err
    assert stdout.startswith("success ") and "seeds 500..501; expert " in stdout and "random " in stdout
    info = json.loads((out / "eval" / "000006" / "eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 2
    assert (out / "eval" / "000006" / "videos" / "pusht_0" / "eval_episode_0.mp4").is_file()
    # An existing evaluation is not overwritten without --overwrite.
    before = _tree(out / "eval")
    code, _, err = run(["eval", "--checkpoint", out, "--episodes", 2, "--seed-start", 500], capsys)
    assert code == 1 and err.startswith("error: ") and "eval_info.json: exists; pass --overwrite" in err
    assert _tree(out / "eval") == before


def test_errors_are_one_line(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = tmp_path / "old"
    remove_features(dataset, ["observation.environment_state"], old)
    code, _, err = run(["train", "--dataset", old, "--out", tmp_path / "a", "--steps", 2], capsys)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("error: ") and "needs feature(s) 'observation.environment_state'" in err
    assert not (tmp_path / "a").exists()

    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "keep.txt").write_text("mine")
    code, _, err = run(["train", "--dataset", dataset, "--out", tmp_path / "exists", "--steps", 2], capsys)
    assert code == 1 and "output directory exists; pass --resume" in err and err.count("\n") == 1
    assert [p.name for p in (tmp_path / "exists").iterdir()] == ["keep.txt"]

    if not torch.cuda.is_available():
        code, _, err = run(["train", "--dataset", dataset, "--out", tmp_path / "c", "--device", "cuda"], capsys)
        assert code == 1 and "CUDA is not available" in err and err.count("\n") == 1
        assert not (tmp_path / "c").exists()

    # A checkpoint that does not load: the file is named.
    out = tmp_path / "run"
    assert run(["train", "--dataset", dataset, "--out", out, "--steps", 1, "--chunk-size", 4,
                "--n-action-steps", 2], capsys)[0] == 0
    model = out / "checkpoints" / "000001" / "pretrained_model" / "model.safetensors"
    model.write_bytes(b"garbage")
    code, _, err = run(["eval", "--checkpoint", out, "--episodes", 1], capsys)
    assert code == 1 and f"error: {model}: not a safetensors file" in err and err.count("\n") == 1
    assert not (out / "eval").exists()

    code, _, err = run(["eval", "--checkpoint", tmp_path / "nothing"], capsys)
    assert code == 1 and "no such checkpoint" in err
