"""automation_sensor evaluates every asset's automation condition (Dagster's default automation
sensor starts stopped): newly registered sessions are built (on_missing), and once sessions are built
and none is still running, the merged dataset, its stats, byte index and SQL models are brought up to
date without a click (eager)."""

import dagster as dg

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Builds each newly registered session, then lerobot_dataset, dataset_stats, byte_index and the SQL "
        "models when sessions were updated (automation conditions)."
    ),
)
