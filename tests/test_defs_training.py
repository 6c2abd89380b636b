"""Training as declared assets: lerobot_dataset (no splits yet) -> policy_checkpoint -> policy_eval
with their checks, on a real Dagster instance over a tiny PushT session; unchanged inputs reuse the
checkpoint; evaluation seeds of the training session are refused."""

import json
import os
from pathlib import Path

import dagster as dg
from test_defs_support import checks, failure_messages, materialize_dataset, materialize_session, metadata, resources

TINY_TRAIN = {"steps": 4, "batch_size": 8, "hidden_dim": 32, "num_layers": 2, "chunk_size": 4, "n_action_steps": 2}
TINY_EVAL = {"episodes": 2, "max_steps": 10, "videos": 1, "batch_size": 2}


def training_defs() -> list:
    from lerobot_assets.defs.training.assets import training_assets
    from lerobot_assets.defs.training.checks import training_checks

    return [*training_assets, *training_checks]


def run_config(train: dict | None = None, evaluate: dict | None = None) -> dict:
    return {"ops": {"policy_checkpoint": {"config": TINY_TRAIN | (train or {})},
                    "policy_eval": {"config": TINY_EVAL | (evaluate or {})}}}


def test_checkpoint_and_eval_assets(instance: dg.DagsterInstance, home: Path) -> None:
    assert materialize_session(instance, home, "sim-s0000-0002").success
    assert materialize_dataset(instance, home).success

    result = dg.materialize(training_defs(), instance=instance, resources=resources(home),
                            run_config=run_config(evaluate={"success_floor": 50.0}), raise_on_error=False)
    assert result.success, failure_messages(result)
    got = checks(result)
    assert got["policy_checkpoint_loads"] is True
    assert got["policy_eval_above_floor"] is False  # 4 training steps do not push a T: the floor says so
    meta = metadata(result, "policy_checkpoint")
    assert meta["mode"] == "trained" and meta["steps"] == 4 and meta["split"] == "(merged dataset)"
    assert meta["dataset"] == str(home / "datasets" / "lerobot_dataset")
    assert "loss_curve" in meta and meta["samples_per_s"] > 0
    run = Path(meta["checkpoint"]).parent.parent
    assert os.readlink(home / "training" / "policy_checkpoint" / "current") == run.name
    tc = json.loads((Path(meta["checkpoint"]) / "pretrained_model" / "train_config.json").read_text())
    assert tc["dataset"]["fingerprint"] == meta["dataset_fingerprint"] and tc["sources"] == ["sim-s0000-0002"]

    ev = metadata(result, "policy_eval")
    assert ev["episodes"] == 2 and ev["seeds"] == "100000..100001"
    assert {"pc_success", "avg_max_reward", "pc_success_interval", "expert_pc_success", "random_pc_success", "preview"} <= set(ev)
    info = json.loads(Path(ev["eval_info"]).read_text())
    assert info["success_floor"] == 50.0 and info["overall"]["n_episodes"] == 2
    assert Path(info["per_task"][0]["metrics"]["video_paths"][0]).is_file()

    # Unchanged dataset and settings: the checkpoint is reused, not trained again.
    again = dg.materialize(training_defs()[:1], instance=instance, resources=resources(home), run_config={
        "ops": {"policy_checkpoint": {"config": TINY_TRAIN}}}, raise_on_error=False)
    assert again.success
    assert metadata(again, "policy_checkpoint")["mode"] == "unchanged"

    # Seeds of the training session are refused by name.
    bad = dg.materialize(training_defs(), instance=instance, resources=resources(home),
                         run_config={"ops": {"policy_eval": {"config": TINY_EVAL | {"seed_start": 1}}}}, raise_on_error=False,
                         selection=["policy_eval"])
    assert not bad.success
    assert any("evaluation seeds [1, 2] trained the policy (session sim-s0000-0002" in m for m in failure_messages(bad))
