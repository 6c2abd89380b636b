"""training_job: the policy checkpoint and its evaluation (+ their checks), one process."""

import dagster as dg

from lerobot_assets.defs.training.assets import training_assets

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets(*training_assets),
    executor_def=dg.in_process_executor,
    description="Train policy_checkpoint on the train split (else the merged dataset), then evaluate it in gym-pusht (policy_eval).",
)

training_jobs = [training_job]
