"""`defs`: the Definitions of the code location (definitions.py at the repo root re-exports it)."""

import os

import dagster as dg

from lerobot_assets.defs.assets import all_assets
from lerobot_assets.defs.byte_index import byte_index_assets, byte_index_checks
from lerobot_assets.defs.checks import all_checks
from lerobot_assets.defs.executors import load_run_config, scale_out_jobs
from lerobot_assets.defs.jobs import SESSION_SELECTION, all_jobs
from lerobot_assets.defs.resources import default_resources
from lerobot_assets.defs.sensors import all_sensors
from lerobot_assets.defs.sql_models import build_sql_defs

# Headless defaults for every process that loads the code location (webserver, daemon, run
# workers): pygame needs no display, and SVT-AV1 prints only errors instead of a banner per video.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SVT_LOG", "1")


def build_defs() -> dg.Definitions:
    scale_out = scale_out_jobs(SESSION_SELECTION)
    sql_assets, sql_checks = build_sql_defs()
    defs = dg.Definitions(
        assets=[*all_assets, *byte_index_assets, *sql_assets],
        asset_checks=[*all_checks, *byte_index_checks, *sql_checks],
        jobs=[*all_jobs, *scale_out],
        sensors=all_sensors,
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
