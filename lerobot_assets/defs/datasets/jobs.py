"""dataset_job: everything downstream of the sessions, in one process."""

import dagster as dg

from lerobot_assets.defs.datasets.assets import dataset_assets
from lerobot_assets.defs.sql.assets import SQL_SELECTION

# Everything downstream of the sessions: the merged dataset, its stats, its byte index, the SQL models,
# the curated dataset, its splits and its annotations (sim backend).
DATASET_SELECTION = dg.AssetSelection.assets(*dataset_assets) | SQL_SELECTION | dg.AssetSelection.groups("curation", "annotations")

dataset_job = dg.define_asset_job(
    "dataset_job",
    selection=DATASET_SELECTION,
    executor_def=dg.in_process_executor,
    description=(
        "Merge every valid session into lerobot_dataset, then dataset_stats, byte_index, the SQL models, "
        "curated_dataset, dataset_splits and annotated_dataset (+ their blocking checks)."
    ),
)

datasets_jobs = [dataset_job]
