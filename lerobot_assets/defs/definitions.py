"""`defs`: the Definitions of the code location (definitions.py at the repo root re-exports it).

Only assembles: each domain (`ingest`, `datasets`, `sql`, `curation`, `training`, `annotations`) holds its own assets, checks, sensors and jobs.
"""

import os

import dagster as dg

from lerobot_assets.defs.annotations.assets import annotation_assets
from lerobot_assets.defs.annotations.checks import annotation_checks
from lerobot_assets.defs.automation import automation_sensor
from lerobot_assets.defs.curation.assets import curation_assets
from lerobot_assets.defs.curation.checks import curation_checks
from lerobot_assets.defs.datasets.assets import dataset_assets
from lerobot_assets.defs.datasets.checks import dataset_checks
from lerobot_assets.defs.datasets.jobs import datasets_jobs
from lerobot_assets.defs.executors import load_run_config, scale_out_jobs
from lerobot_assets.defs.ingest.assets import session_assets
from lerobot_assets.defs.ingest.checks import session_checks
from lerobot_assets.defs.ingest.jobs import SESSION_SELECTION, ingest_jobs
from lerobot_assets.defs.ingest.sensors import ingest_sensors
from lerobot_assets.defs.resources import default_resources
from lerobot_assets.defs.sql.assets import build_sql_defs
from lerobot_assets.defs.training.assets import training_assets
from lerobot_assets.defs.training.checks import training_checks
from lerobot_assets.defs.training.jobs import training_jobs

# Headless defaults for every process that loads the code location (webserver, daemon, run
# workers): pygame needs no display, and SVT-AV1 prints only errors instead of a banner per video.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SVT_LOG", "1")


def build_defs() -> dg.Definitions:
    scale_out = scale_out_jobs(SESSION_SELECTION)
    sql_assets, sql_checks = build_sql_defs()
    defs = dg.Definitions(
        assets=[*session_assets, *dataset_assets, *sql_assets, *curation_assets, *training_assets, *annotation_assets],
        asset_checks=[*session_checks, *dataset_checks, *sql_checks, *curation_checks, *training_checks, *annotation_checks],
        jobs=[*ingest_jobs, *datasets_jobs, *training_jobs, *scale_out],
        sensors=[*ingest_sensors, automation_sensor],
        resources=default_resources(),
        # One process per run: the fastest for short session chains, the demo and CI.
        executor=dg.in_process_executor,
    )
    # A job's `config` is only type-checked when the location loads; validate the deploy run
    # configs strictly (unknown keys too), so `dagster definitions validate` catches a typo.
    for job in scale_out:
        dg.validate_run_config(defs.resolve_job_def(job.name), load_run_config(job.name.removeprefix("session_job_")))
    return defs


defs = build_defs()
