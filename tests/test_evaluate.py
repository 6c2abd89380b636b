"""Evaluation: metrics against a hand-computed case (replaying the expert's recorded actions gives
the rewards the dataset recorded), latched done, the seed-overlap refusal, the Beta interval, and
eval_info.json in LeRobot's shape with videos and baselines."""

import json
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_assets.evaluate import (
    EpisodeMetrics,
    ExpertAgent,
    RandomAgent,
    ReplayAgent,
    SeedOverlapError,
    aggregate,
    check_disjoint,
    declared_training_seeds,
    evaluate_checkpoint,
    run_rollouts,
    success_interval,
)
from lerobot_assets.evaluate.metrics import betainc
from lerobot_assets.sources.pusht import PushTSourceConfig
from lerobot_assets.sources.pusht.record import record_pusht
from lerobot_assets.train import PolicyConfig, TrainConfig, train

SEEDS = [0, 1]  # the expert succeeds on both (115 and 110 steps)


@pytest.fixture(scope="module")
def expert_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval") / "pusht"
    record_pusht(root, PushTSourceConfig(seed=0, episodes=len(SEEDS), max_steps=300, top_camera=False))
    return root


@pytest.fixture(scope="module")
def checkpoint(expert_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "run"
    config = TrainConfig(dataset=str(expert_dataset), output_dir=str(out), steps=3, batch_size=8,
                         policy=PolicyConfig(hidden_dim=32, num_layers=2, chunk_size=4, n_action_steps=2))
    return train(config, progress=False).checkpoint


def _episodes(root: Path) -> dict[int, dict[str, np.ndarray]]:
    table = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    out: dict[int, dict[str, np.ndarray]] = {}
    for ep in sorted(set(table["episode_index"])):
        rows = [i for i, e in enumerate(table["episode_index"]) if e == ep]
        # shape-[1] features are scalar columns (as LeRobot stores them): (T, 1) here
        out[ep] = {k: np.asarray([table[k][i] for i in rows]).reshape(len(rows), -1)
                   for k in ("action", "next.reward", "next.success", "next.done")}
    return out


def test_replaying_the_expert_reproduces_the_recorded_rewards(expert_dataset: Path) -> None:
    """Oracle: the dataset's next.reward / next.success columns, recorded by the source."""
    recorded = _episodes(expert_dataset)
    agent = ReplayAgent({SEEDS[ep]: v["action"] for ep, v in recorded.items()})
    result = run_rollouts(agent, SEEDS, batch_size=2)
    for ep, m in zip(recorded, result.episodes, strict=True):
        rewards = recorded[ep]["next.reward"][:, 0].astype(np.float64)
        assert m.seed == SEEDS[ep] and m.success and recorded[ep]["next.success"][-1, 0]
        # done latched at success: exactly the recorded length, nothing counted past it
        assert m.length == len(rewards)
        assert m.sum_reward == pytest.approx(rewards.sum(), rel=1e-6)
        assert m.max_reward == pytest.approx(rewards.max()) == 1.0
        np.testing.assert_array_equal(result.actions[ep], recorded[ep]["action"])
    overall = aggregate(result.episodes)
    assert overall["pc_success"] == 100.0 and overall["n_episodes"] == 2
    assert overall["avg_max_reward"] == 1.0


def test_expert_and_random_baselines() -> None:
    expert = run_rollouts(ExpertAgent(), SEEDS, batch_size=2).episodes
    assert [e.success for e in expert] == [True, True]
    random_a = run_rollouts(RandomAgent(), SEEDS, batch_size=2, max_steps=40).episodes
    random_b = run_rollouts(RandomAgent(), SEEDS, batch_size=1, max_steps=40).episodes
    # Seeded per episode seed: the batch size changes nothing (up to float summation order).
    assert [e.sum_reward for e in random_a] == pytest.approx([e.sum_reward for e in random_b], rel=1e-12)
    assert all(e.length == 40 and not e.success for e in random_a)


def test_aggregates_and_beta_interval_by_hand() -> None:
    eps = [
        EpisodeMetrics(0, 10, 3.0, 1.0, True, 5, 0.96),
        EpisodeMetrics(1, 11, 1.0, 0.5, False, 300, 0.5),
        EpisodeMetrics(2, 12, 2.0, 0.25, False, 300, 0.3),
        EpisodeMetrics(3, 13, 6.0, 1.0, True, 9, 0.97),
    ]
    agg = aggregate(eps)
    assert agg["avg_sum_reward"] == 3.0 and agg["avg_max_reward"] == 0.6875 and agg["pc_success"] == 50.0
    # Closed forms: Beta(1, n+1) (no success): q = 1 - (1-p)^(1/(n+1)); Beta(a, 1): q = p^(1/a).
    lo, hi = success_interval(0, 4)
    assert lo == pytest.approx(1 - 0.975 ** (1 / 5), abs=1e-9) and hi == pytest.approx(1 - 0.025 ** (1 / 5), abs=1e-9)
    lo, hi = success_interval(4, 4)
    assert lo == pytest.approx(0.025 ** (1 / 5), abs=1e-9) and hi == pytest.approx(0.975 ** (1 / 5), abs=1e-9)
    # Symmetric case and a CDF value: I_0.5(3, 3) = 0.5; I_0.3(2, 3) = 1 - 4(0.7)^3 + 3(0.7)^4 = 0.3483
    assert betainc(3, 3, 0.5) == pytest.approx(0.5, abs=1e-12)
    assert betainc(2, 3, 0.3) == pytest.approx(0.3483, abs=1e-12)
    lo, hi = success_interval(2, 4)
    assert lo == pytest.approx(1 - hi, abs=1e-9) and lo < 0.5 < hi


def test_seed_overlap_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    assert declared_training_seeds(["sim-s0000-0009", "inbox-x", "sim-s0020-0021"]) == {
        **{s: "sim-s0000-0009" for s in range(10)}, 20: "sim-s0020-0021", 21: "sim-s0020-0021"}
    with pytest.raises(SeedOverlapError, match=r"evaluation seeds \[9\] trained the policy \(session sim-s0000-0009"):
        check_disjoint([9, 10], {"sources": ["sim-s0000-0009"], "dataset": {"root": "/d"}})
    check_disjoint([10, 11], {"sources": ["sim-s0000-0009"], "dataset": {"root": "/d"}})
    # Observed: no provenance in this dataset, but seeds 0 and 1 are its episodes' first frames.
    with pytest.raises(SeedOverlapError, match=r"evaluation seeds \[1\] trained the policy \(their first frames"):
        evaluate_checkpoint(checkpoint, tmp_path / "e", episodes=3, seed_start=1)
    assert not (tmp_path / "e").exists()


def test_eval_info_videos_and_baselines(checkpoint: Path, tmp_path: Path) -> None:
    result = evaluate_checkpoint(checkpoint, tmp_path / "e", episodes=2, seed_start=1000, videos=1, batch_size=2, max_steps=20)
    info = json.loads((tmp_path / "e" / "eval_info.json").read_text())
    assert list(info)[:3] == ["per_task", "per_group", "overall"]
    task = info["per_task"][0]
    assert task["task_group"] == "pusht" and task["task_id"] == 0
    assert set(task["metrics"]) == {"sum_rewards", "max_rewards", "successes", "video_paths"}
    assert len(task["metrics"]["sum_rewards"]) == 2
    assert {"avg_sum_reward", "avg_max_reward", "pc_success", "n_episodes", "eval_s", "eval_ep_s",
            "pc_success_interval"} <= set(info["overall"])
    assert info["per_group"]["pusht"]["n_episodes"] == 2
    assert [e["seed"] for e in info["per_episode"]] == [1000, 1001]
    assert set(info["baselines"]) == {"expert", "random"}
    assert info["dataset"]["fingerprint"] == result.eval_info["dataset"]["fingerprint"]
    video = Path(task["metrics"]["video_paths"][0])
    assert video == tmp_path / "e" / "videos" / "pusht_0" / "eval_episode_0.mp4"
    with av.open(str(video)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    # step 0 plus one frame per step taken
    assert len(frames) == result.policy.episodes[0].length + 1 and frames[0].shape == (480, 640, 3)
    assert result.preview is not None and result.preview.is_file()
