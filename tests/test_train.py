"""Training: the checkpoint layout (LeRobot's), exact resume, determinism, atomic saves, the
normalization stats, and the named errors. A tiny PushT dataset (4 short episodes, no top camera)."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lerobot_assets.format.stats_json import read_stats
from lerobot_assets.sources.pusht import PushTSourceConfig
from lerobot_assets.sources.pusht.record import record_pusht
from lerobot_assets.tools.features import remove_features
from lerobot_assets.tools.merge import dataset_fingerprint, merge_to_new
from lerobot_assets.train import (
    CheckpointError,
    DeviceError,
    MissingFeaturesError,
    PolicyConfig,
    PolicyDataset,
    StepSampler,
    TrainConfig,
    load_policy,
    read_train_log,
    train,
)
from lerobot_assets.train import checkpoint as ckpt
from lerobot_assets.train.safetensors_io import SafetensorsError, load_file, save_file, to_bytes

TINY = PolicyConfig(hidden_dim=32, num_layers=2, chunk_size=4, n_action_steps=2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train") / "pusht"
    record_pusht(root, PushTSourceConfig(seed=0, episodes=4, max_steps=30, top_camera=False))
    return root


def _config(dataset: Path, out: Path, **kw: object) -> TrainConfig:
    base: dict = {"dataset": str(dataset), "output_dir": str(out), "policy": TINY, "steps": 12, "batch_size": 8,
                  "warmup_steps": 3, "log_freq": 4}
    return TrainConfig(**(base | kw))


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / "pretrained_model" / "model.safetensors")


def test_layout_and_train_config(dataset: Path, tmp_path: Path) -> None:
    result = train(_config(dataset, tmp_path / "run", save_freq=5, split="train"), progress=False)
    cps = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in cps.iterdir()) == ["000005", "000010", "000012", "last"]
    assert cps.joinpath("last").is_symlink() and os.readlink(cps / "last") == "000012"  # relative
    assert result.checkpoint == cps / "000012" and result.step == 12
    c = cps / "000012"
    assert sorted(p.name for p in (c / "pretrained_model").iterdir()) == ["config.json", "model.safetensors", "train_config.json"]
    assert sorted(p.name for p in (c / "training_state").iterdir()) == [
        "optimizer_param_groups.json", "optimizer_state.safetensors", "rng_state.safetensors",
        "scheduler_state.json", "training_step.json",
    ]
    config = json.loads((c / "pretrained_model" / "config.json").read_text())
    assert config["type"] == "lerobot_assets_chunking" and config["state_dims"] == {
        "observation.state": 2, "observation.environment_state": 16}
    assert json.loads((c / "training_state" / "training_step.json").read_text()) == {
        "step": 12, "num_processes": 1, "batch_size": 8}
    tc = json.loads((c / "pretrained_model" / "train_config.json").read_text())
    assert tc["dataset"]["root"] == str(dataset.resolve())
    assert tc["dataset"]["fingerprint"] == dataset_fingerprint(dataset)
    assert tc["dataset"]["split"] == "train" and tc["dataset"]["episodes"] == 4 and tc["dataset"]["frames"] == 120
    assert len(tc["first_frames"]["values"]) == 4 and len(tc["first_frames"]["values"][0]) == 18
    opt = load_file(c / "training_state" / "optimizer_state.safetensors")
    assert "state/0/exp_avg" in opt and "state/0/exp_avg_sq" in opt
    assert {"torch_rng_state", "np_rng_state_values", "py_rng_state"} <= set(load_file(c / "training_state" / "rng_state.safetensors"))
    # The log has a line per log_freq steps; the policy loads and predicts finite actions.
    assert [r["step"] for r in read_train_log(tmp_path / "run")] == [4, 8, 12]
    policy, _ = load_policy(tmp_path / "run")
    ds = PolicyDataset(dataset, policy.config)
    batch = {k: torch.stack([ds[i][k] for i in range(3)]) for k in policy.config.state_dims}
    chunk = policy.predict_chunk(batch)
    assert chunk.shape == (3, 4, 2) and torch.isfinite(chunk).all()


def test_normalization_stats_are_the_datasets_exact_stats(dataset: Path, tmp_path: Path) -> None:
    train(_config(dataset, tmp_path / "run", steps=1), progress=False)
    weights = _weights(tmp_path / "run" / "checkpoints" / "last")
    stats = read_stats(dataset)
    for key in ("observation.state", "observation.environment_state"):
        safe = key.replace(".", "__")
        np.testing.assert_array_equal(weights[f"input_norms.{safe}.a"].numpy(), stats[key]["mean"].astype(np.float32))
        np.testing.assert_array_equal(weights[f"input_norms.{safe}.b"].numpy(), stats[key]["std"].astype(np.float32))
    np.testing.assert_array_equal(weights["action_norm.a"].numpy(), stats["action"]["min"].astype(np.float32))
    np.testing.assert_array_equal(weights["action_norm.b"].numpy(), stats["action"]["max"].astype(np.float32))


@pytest.mark.parametrize("ema", [None, 0.9])
def test_resume_equals_uninterrupted(dataset: Path, tmp_path: Path, ema: float | None) -> None:
    whole = train(_config(dataset, tmp_path / "whole", ema_decay=ema), progress=False)
    part = train(_config(dataset, tmp_path / "part", ema_decay=ema, save_freq=5), stop_at=7, progress=False)
    assert part.step == 7 and os.readlink(tmp_path / "part" / "checkpoints" / "last") == "000007"
    resumed = train(_config(dataset, tmp_path / "part", ema_decay=ema, save_freq=5), resume=True, progress=False)
    assert resumed.step == 12 and resumed.steps_this_run == 5
    for rel in ("pretrained_model/model.safetensors", "training_state/optimizer_state.safetensors"):
        a = load_file(whole.checkpoint / rel)
        b = load_file(resumed.checkpoint / rel)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (rel, k)
    if ema:
        train_w = load_file(resumed.checkpoint / "training_state" / "train_model.safetensors")
        assert not torch.equal(train_w["head.0.weight"], _weights(resumed.checkpoint)["head.0.weight"])
    # The same losses, step for step, and the log of the resumed run continues the interrupted one.
    assert whole.losses[7:] == resumed.losses
    assert [r["step"] for r in read_train_log(tmp_path / "part")] == [4, 7, 8, 12]


def test_deterministic_for_a_seed(dataset: Path, tmp_path: Path) -> None:
    a = train(_config(dataset, tmp_path / "a", steps=6), progress=False)
    b = train(_config(dataset, tmp_path / "b", steps=6), progress=False)
    c = train(_config(dataset, tmp_path / "c", steps=6, seed=1), progress=False)
    assert (a.checkpoint / "pretrained_model/model.safetensors").read_bytes() == (
        b.checkpoint / "pretrained_model/model.safetensors").read_bytes()
    assert (a.checkpoint / "pretrained_model/model.safetensors").read_bytes() != (
        c.checkpoint / "pretrained_model/model.safetensors").read_bytes()


def test_a_crash_while_saving_leaves_the_previous_last(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = ckpt.write_json_atomic

    def failing(path: Path, obj: object) -> None:
        calls["n"] += 1
        if "000010" in str(path) or ".tmp-000010" in str(path):
            raise OSError(28, "No space left on device", str(path))
        real(path, obj)

    monkeypatch.setattr(ckpt, "write_json_atomic", failing)
    with pytest.raises(OSError):
        train(_config(dataset, tmp_path / "run", save_freq=5), progress=False)
    cps = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in cps.iterdir()) == ["000005", "last"]
    assert os.readlink(cps / "last") == "000005"
    load_policy(tmp_path / "run")  # still loads
    monkeypatch.setattr(ckpt, "write_json_atomic", real)
    resumed = train(_config(dataset, tmp_path / "run", save_freq=5), resume=True, progress=False)
    assert resumed.step == 12


def test_sampler_batches_depend_only_on_seed_and_step() -> None:
    full = list(StepSampler(10, 4, seed=3, steps=9))
    assert list(StepSampler(10, 4, seed=3, steps=9, start_step=4)) == full[4:]
    flat = [i for b in full for i in b]
    # Each epoch (10 consecutive draws) is a permutation of the frames, epochs differ.
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert flat[:10] != flat[10:20]
    assert list(StepSampler(10, 4, seed=4, steps=9)) != full


def test_errors_are_named_and_write_nothing(dataset: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    remove_features(dataset, ["observation.environment_state", "next.reward", "next.done", "next.success"], old)
    with pytest.raises(MissingFeaturesError, match="'observation.environment_state'"):
        train(_config(old, tmp_path / "a"), progress=False)
    assert not (tmp_path / "a").exists()
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError, match="output directory exists; pass --resume"):
        train(_config(dataset, tmp_path / "exists"), progress=False)
    assert list((tmp_path / "exists").iterdir()) == []
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(_config(dataset, tmp_path / "exists"), resume=True, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            train(_config(dataset, tmp_path / "b", device="cuda"), progress=False)
        assert not (tmp_path / "b").exists()


def test_old_and_new_sessions_do_not_merge(dataset: Path, tmp_path: Path) -> None:
    """Sessions recorded before the keypoint/reward features and after them: the merge's one-line
    incompatibility error names the missing feature; old sessions still merge with each other."""
    old = tmp_path / "old"
    remove_features(dataset, ["observation.environment_state", "next.reward", "next.done", "next.success"], old)
    with pytest.raises(ValueError, match="lacks feature 'observation.environment_state'"):
        merge_to_new([dataset, old], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
    old2 = tmp_path / "old2"
    remove_features(dataset, ["observation.environment_state", "next.reward", "next.done", "next.success"], old2)
    assert merge_to_new([old, old2], tmp_path / "olds").episodes == 8


def test_checkpoint_that_does_not_load_is_named(dataset: Path, tmp_path: Path) -> None:
    train(_config(dataset, tmp_path / "run", steps=2), progress=False)
    model = tmp_path / "run" / "checkpoints" / "000002" / "pretrained_model" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=str(model)):
        load_policy(tmp_path / "run")
    config = model.parent / "config.json"
    config.write_text("{not json")
    with pytest.raises(CheckpointError, match=str(config)):
        load_policy(tmp_path / "run")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_policy(tmp_path / "nowhere")


def test_a_real_last_directory_is_refused(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "run" / "checkpoints" / "last").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="is a real directory"):
        train(_config(dataset, tmp_path / "run", steps=2), resume=True, progress=False)


def test_safetensors_format(tmp_path: Path) -> None:
    tensors = {
        "b": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "a": torch.tensor([1, -2], dtype=torch.int64),
        "c": torch.tensor([True, False]),
        "d": torch.tensor([1.5], dtype=torch.bfloat16),
        "e": torch.tensor(3.0, dtype=torch.float64),
    }
    data = to_bytes(tensors, {"format": "pt"})
    (n,) = struct.unpack("<Q", data[:8])
    assert n % 8 == 0
    header = json.loads(data[8 : 8 + n])
    # Sorted names, contiguous offsets, the spec's dtype names.
    assert header["a"] == {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}
    assert header["b"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [16, 40]}
    assert header["c"]["dtype"] == "BOOL" and header["d"]["dtype"] == "BF16" and header["e"]["shape"] == []
    assert header["__metadata__"] == {"format": "pt"}
    assert data[8 + n : 8 + n + 16] == np.array([1, -2], "<i8").tobytes()
    save_file(tensors, tmp_path / "t.safetensors")
    back = load_file(tmp_path / "t.safetensors")
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 20)
    with pytest.raises(SafetensorsError, match="bad.safetensors"):
        load_file(tmp_path / "bad.safetensors")


def test_train_in_reuses_resumes_and_retrains(dataset: Path, tmp_path: Path) -> None:
    from lerobot_assets.train import checkpoint_problems, current_run, train_in

    base = tmp_path / "runs"
    first = train_in(base, _config(dataset, Path("unused"), steps=4))
    assert first.mode == "trained" and current_run(base) == first.output_dir
    assert checkpoint_problems(first.checkpoint, dataset) == []
    again = train_in(base, _config(dataset, Path("unused"), steps=4))
    assert (again.mode, again.output_dir, again.checkpoint) == ("unchanged", first.output_dir, first.checkpoint)
    # Other settings: another run directory, and `current` follows it.
    other = train_in(base, _config(dataset, Path("unused"), steps=4, seed=1))
    assert other.mode == "trained" and other.output_dir != first.output_dir and current_run(base) == other.output_dir
    # A run killed after its checkpoint at step 2 is resumed, equal to the uninterrupted one.
    killed = _config(dataset, Path("unused"), steps=4, seed=2, save_freq=2)
    from lerobot_assets.train.runs import run_key

    out = base / run_key(killed, dataset_fingerprint(dataset))
    train(killed.model_copy(update={"output_dir": str(out)}), stop_at=2, progress=False)
    resumed = train_in(base, killed)
    whole = train(killed.model_copy(update={"output_dir": str(tmp_path / "whole")}), progress=False)
    assert resumed.mode == "resumed" and resumed.step == 4
    assert (resumed.checkpoint / "pretrained_model/model.safetensors").read_bytes() == (
        whole.checkpoint / "pretrained_model/model.safetensors").read_bytes()
    # The check names a checkpoint that does not load.
    (first.checkpoint / "pretrained_model" / "model.safetensors").write_bytes(b"x")
    assert checkpoint_problems(first.checkpoint, dataset)[0].startswith("does not load: ")


def test_relative_action_stats_against_numpy(dataset: Path) -> None:
    """Oracle: offsets action[t+k] - state[t] within each episode, from the data parquet directly."""
    import pyarrow.parquet as pq

    from lerobot_assets.format.info import DatasetInfo
    from lerobot_assets.train.data import fill_shapes, relative_action_stats

    policy = fill_shapes(TINY, DatasetInfo.load(dataset))
    got = relative_action_stats(PolicyDataset(dataset, policy), policy, batch=7)
    table = pq.read_table(next((dataset / "data").rglob("*.parquet"))).to_pydict()
    ep, state, action = (np.asarray(table[k]) for k in ("episode_index", "observation.state", "action"))
    per_k: list[list[np.ndarray]] = [[] for _ in range(policy.chunk_size)]
    for t in range(len(ep)):
        for k in range(policy.chunk_size):
            if t + k < len(ep) and ep[t + k] == ep[t]:
                per_k[k].append(action[t + k].astype(np.float64) - state[t].astype(np.float64))
    for k, rows in enumerate(per_k):
        arr = np.stack(rows)
        np.testing.assert_allclose(got["mean"][k], arr.mean(0), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got["std"][k], arr.std(0), rtol=1e-7, atol=1e-7)


def test_select_action_queue_and_temporal_ensembling(monkeypatch: pytest.MonkeyPatch) -> None:
    """By hand: chunk t (predicted at step t) is [100t + 0, 100t + 1, ...] in both action dims."""
    from lerobot_assets.train import ChunkingPolicy

    config = PolicyConfig(chunk_size=3, n_action_steps=2, n_obs_steps=2, hidden_dim=8, num_layers=1,
                          state_dims={"observation.state": 2, "observation.environment_state": 16}, action_dim=2)
    policy = ChunkingPolicy(config)
    seen: list[dict[str, torch.Tensor]] = []

    def chunk(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        seen.append(batch)
        t = len(seen) - 1
        return (100.0 * t + torch.arange(3.0))[None, :, None].expand(1, 3, 2)

    monkeypatch.setattr(policy, "predict_chunk", chunk)
    obs = [{"observation.state": torch.full((1, 2), float(i)), "observation.environment_state": torch.zeros(1, 16)}
           for i in range(5)]
    policy.reset()
    got = [float(policy.select_action(o)[0, 0]) for o in obs]
    # Replans at steps 0, 2, 4, executing the first 2 actions of each chunk.
    assert got == [0.0, 1.0, 100.0, 101.0, 200.0]
    # The observation window: the first observation repeated at the start, then the last two.
    assert seen[0]["observation.state"][0, :, 0].tolist() == [0.0, 0.0]
    assert seen[1]["observation.state"][0, :, 0].tolist() == [1.0, 2.0]

    config.temporal_ensemble_coeff = 0.5
    seen.clear()
    policy.reset()
    got = [float(policy.select_action(o)[0, 0]) for o in obs[:4]]
    w = np.exp(-0.5 * np.arange(3))
    # step 2: chunks 0, 1, 2 say 2, 101, 200 for it (oldest first, weights exp(-0.5 i))
    assert got[0] == 0.0
    assert got[1] == pytest.approx((1 * w[0] + 100 * w[1]) / w[:2].sum())
    assert got[2] == pytest.approx((2 * w[0] + 101 * w[1] + 200 * w[2]) / w.sum())
    assert got[3] == pytest.approx((102 * w[0] + 201 * w[1] + 300 * w[2]) / w.sum())


def test_dataloader_workers_change_nothing(dataset: Path, tmp_path: Path) -> None:
    a = train(_config(dataset, tmp_path / "a", steps=5), progress=False)
    b = train(_config(dataset, tmp_path / "b", steps=5, num_workers=2), progress=False)
    assert (a.checkpoint / "pretrained_model/model.safetensors").read_bytes() == (
        b.checkpoint / "pretrained_model/model.safetensors").read_bytes()


def test_image_policy_trains_and_predicts(dataset: Path, tmp_path: Path) -> None:
    """The image encoder (for the GPU) on CPU: 96x96 frames decoded with the state, two steps."""
    image = TINY.model_copy(update={"encoder": "image", "image_channels": 4})
    result = train(_config(dataset, tmp_path / "img", steps=2, batch_size=4, policy=image), progress=False)
    policy, _ = load_policy(result.checkpoint)
    assert policy.config.image_shape == [3, 96, 96]
    ds = PolicyDataset(dataset, policy.config)
    assert ds.video_keys == ["observation.image"]
    item = ds[5]
    assert item["observation.image"].shape == (2, 3, 96, 96)
    from lerobot_assets.train.data import collate

    chunk = policy.predict_chunk(collate([item, ds[6]]))
    assert chunk.shape == (2, 4, 2) and torch.isfinite(chunk).all()
    # The state policy decodes no video at all.
    assert PolicyDataset(dataset, TINY).video_keys == []
    # ... and rolls out in an env that renders the 96x96 observation it looks at.
    from lerobot_assets.evaluate import PolicyAgent, run_rollouts

    episodes = run_rollouts(PolicyAgent(policy), [1000], image=True, max_steps=3).episodes
    assert episodes[0].length == 3
