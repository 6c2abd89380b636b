"""`lerobot-assets record-sim`: PushT episodes into a new dataset, then appended to it; `sim-report`."""

import json

import numpy as np
import pyarrow.parquet as pq
from typer.testing import CliRunner

from lerobot_assets.checks.validate import validate_dataset
from lerobot_assets.cli import app
from lerobot_assets.format import DatasetMeta
from lerobot_assets.sources.pusht import PUSHT_TASK, PushTSourceConfig, generate_episode
from lerobot_assets.video.probe import video_frame_count


def test_record_sim_creates_then_appends(tmp_path):
    root = tmp_path / "pusht"
    runner = CliRunner()
    first = runner.invoke(app, ["record-sim", "--root", str(root), "--episodes", "2", "--max-steps", "12"])
    assert first.exit_code == 0, first.output
    assert "recorded 2 episodes (24 frames)" in first.output
    second = runner.invoke(app, ["record-sim", "--root", str(root), "--episodes", "1", "--seed", "7", "--max-steps", "12"])
    assert second.exit_code == 0, second.output

    meta = DatasetMeta(root)
    assert (meta.info.total_episodes, meta.info.total_frames, meta.fps) == (3, 36, 10)
    assert meta.tasks == [PUSHT_TASK] and meta.info.robot_type == "pusht"
    assert meta.info.features["observation.images.top"].shape == [480, 640, 3]
    assert video_frame_count(root / "videos/observation.images.top/chunk-000/file-000.mp4") == 36
    report = validate_dataset(root)
    assert report.ok, [str(p) for p in report.problems]

    # The recorded values are the simulation's own (seed 7 is the third episode).
    expected = generate_episode(7, PushTSourceConfig(max_steps=12, top_camera=False))
    data = pq.read_table(root / "data/chunk-000/file-000.parquet").to_pydict()
    state = np.array(data["observation.state"][24:], dtype=np.float32)
    np.testing.assert_array_equal(state, expected.frames["observation.state"])
    np.testing.assert_array_equal(np.array(data["action"][24:], dtype=np.float32), expected.frames["action"])


def test_record_sim_rejects_unknown_encoder(tmp_path):
    result = CliRunner().invoke(app, ["record-sim", "--root", str(tmp_path / "x"), "--episodes", "1", "--vcodec", "nope"])
    assert result.exit_code == 2
    assert "vcodec" in result.output and "nope" in result.output
    assert not (tmp_path / "x").exists()


def test_sim_report_measures_the_episodes_the_library_generates():
    result = CliRunner().invoke(app, ["sim-report", "--seed", "2", "--episodes", "2", "--max-steps", "80", "--no-top-camera"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # nothing but the JSON on stdout (no pygame banner)
    config = PushTSourceConfig(max_steps=80, top_camera=False)
    expected = [generate_episode(seed, config) for seed in (2, 3)]
    # Seed 2 reaches the goal in 78 steps; seed 3 must not, or the failure path goes untested.
    assert [ep.success for ep in expected] == [True, False]
    assert summary["episodes"] == 2 and summary["successes"] == 1 and summary["success_rate"] == 0.5
    assert summary["frames"] == sum(ep.length for ep in expected) == 78 + 80
    assert summary["mean_length"] == summary["frames"] / 2
    assert summary["failed_seeds"] == [3]
    assert summary["top_camera"] is False and summary["max_steps"] == 80
    assert summary["steps_per_s"] > 0 and summary["elapsed_s"] > 0


def test_sim_report_rejects_a_bad_config():
    result = CliRunner().invoke(app, ["sim-report", "--episodes", "1", "--expert-noise", "99"])
    assert result.exit_code == 2
    assert "expert_noise" in result.output
