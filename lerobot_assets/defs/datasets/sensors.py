"""merge_automation_sensor evaluates the automation conditions of the merged dataset and everything
downstream of it (Dagster's default automation sensor starts stopped): once new sessions are built
and none is still running, the merged dataset, its stats, byte index and SQL models are brought up
to date without a click."""

import dagster as dg

from lerobot_assets.defs.datasets.assets import dataset_assets
from lerobot_assets.defs.sql.assets import SQL_SELECTION

merge_automation_sensor = dg.AutomationConditionSensorDefinition(
    "merge_automation_sensor",
    target=dg.AssetSelection.assets(*dataset_assets) | SQL_SELECTION,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Materializes lerobot_dataset, then dataset_stats, byte_index and the SQL models, when sessions were "
        "updated (automation conditions)."
    ),
)

datasets_sensors = [merge_automation_sensor]
