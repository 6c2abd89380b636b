"""Training checks, each wrapping a library check:

- policy_checkpoint_loads (blocking): the checkpoint loads and predicts finite actions of the right
  shape for a real batch of the dataset it trained on;
- policy_eval_above_floor (not blocking): the success rate reaches the floor the evaluation was
  configured with (recorded in its eval_info.json).
"""

import json
from pathlib import Path

import dagster as dg

from lerobot_assets.defs.metadata import problems_markdown
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.defs.training.assets import (
    EVALUATION_REL,
    TRAINING_REL,
    evaluation_base,
    policy_checkpoint,
    policy_eval,
    pull_training_inputs,
    training_base,
    training_dataset,
)


@dg.asset_check(
    asset=policy_checkpoint,
    blocking=True,
    description="The checkpoint loads and predicts finite actions for a real batch of its training data.",
)
def policy_checkpoint_loads(home: DataHome) -> dg.AssetCheckResult:
    with home.workspace("policy_checkpoint_loads") as ws:
        ws.pull(TRAINING_REL)
        pull_training_inputs(ws)
        from lerobot_assets.train import checkpoint_problems, current_run  # torch: on use

        run = current_run(training_base(ws.layout))
        problems = ["no trained policy (training/policy_checkpoint/current is missing)"] if run is None else []
        if run is not None:
            problems = checkpoint_problems(run / "checkpoints" / "last", training_dataset(ws.layout)[0])
    return dg.AssetCheckResult(
        passed=not problems,
        description=problems[0][:1000] if problems else "loads; finite actions for a real batch",
        metadata={"problems": dg.MetadataValue.md(problems_markdown(problems))},
    )


@dg.asset_check(
    asset=policy_eval,
    blocking=False,
    description="The policy's success rate reaches the configured floor (PolicyEvalConfig.success_floor).",
)
def policy_eval_above_floor(home: DataHome) -> dg.AssetCheckResult:
    with home.workspace("policy_eval_above_floor") as ws:
        ws.pull(TRAINING_REL)
        ws.pull(EVALUATION_REL)
        from lerobot_assets.train import current_run

        run = current_run(training_base(ws.layout))
        path = evaluation_base(ws.layout) / run.name / "eval_info.json" if run is not None else Path("(no run)")
        if not path.is_file():
            return dg.AssetCheckResult(passed=False, description=f"{path}: missing; materialize policy_eval")
        info = json.loads(path.read_text())
    pc, floor = float(info["overall"]["pc_success"]), float(info.get("success_floor", 0.0))
    return dg.AssetCheckResult(
        passed=pc >= floor,
        description=f"{pc:.1f}% success, floor {floor:.1f}%",
        metadata={"pc_success": dg.MetadataValue.float(pc), "success_floor": dg.MetadataValue.float(floor)},
    )


training_checks = [policy_checkpoint_loads, policy_eval_above_floor]
