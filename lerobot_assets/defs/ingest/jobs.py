"""Ingest jobs: build sessions, register sessions.

Executors (see deploy/README.md for beyond one machine):
- the code location's default is the in-process executor: one process per run, the fastest for the
  demo, CI and sensor-launched runs (a session run is a short chain of steps);
- `session_job_multiprocess` runs each step in its own process (parallel steps, and a crash in the
  encoder kills only its step); sessions run in parallel as parallel runs: launch a backfill over
  the sessions and set `run_queue.max_concurrent_runs` in dagster.yaml to the cores you give it.
"""

from typing import Any, Optional

import dagster as dg
from pydantic import Field

from lerobot_assets.defs.ingest.assets import session_assets
from lerobot_assets.defs.ingest.partitions import SESSIONS
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.home import (
    import_session_key,
    next_free_seed,
    overlapping_sim_sessions,
    sim_session_keys,
)

SESSION_SELECTION = dg.AssetSelection.assets(*session_assets)

session_job = dg.define_asset_job(
    "session_job",
    selection=SESSION_SELECTION,
    executor_def=dg.in_process_executor,
    description="One session: raw_episodes -> session_dataset (+ its blocking validation), in one process.",
)

session_job_multiprocess = dg.define_asset_job(
    "session_job_multiprocess",
    selection=SESSION_SELECTION,
    executor_def=dg.multiprocess_executor,
    config={"execution": {"config": {"max_concurrent": 2}}},
    description="session_job with a process per step; run several sessions at once through the run queue.",
)

class RegisterSimSessionsConfig(dg.Config):
    sessions: int = Field(default=1, ge=1, le=1000, description="how many sessions to add")
    episodes_per_session: int = Field(default=10, ge=1, le=10000)
    first_seed: Optional[int] = Field(
        default=None, ge=0, description="seed of the first episode; default: after the highest registered seed"
    )


@dg.op(description="Adds sim sessions (named by seed range) as partitions; refuses overlapping seeds.")
def add_sim_sessions(context: dg.OpExecutionContext, config: RegisterSimSessionsConfig) -> None:
    existing = list(context.instance.get_dynamic_partitions(SESSIONS))
    first = config.first_seed if config.first_seed is not None else next_free_seed(existing)
    keys = sim_session_keys(config.sessions, config.episodes_per_session, first)
    new = [k for k in keys if k not in existing]
    clashes = {k: overlapping_sim_sessions(existing, k) for k in new}
    clashes = {k: v for k, v in clashes.items() if v}
    if clashes:
        raise dg.Failure(
            description=f"seed ranges overlap registered sim sessions (episodes would be duplicated): {clashes}",
        )
    context.instance.add_dynamic_partitions(SESSIONS, new)
    context.log.info(f"registered {len(new)} sim sessions: {new} (already there: {sorted(set(keys) - set(new))})")


@dg.job(description="Register PushT sim sessions; the automation sensor then builds them.")
def register_sim_sessions() -> None:
    add_sim_sessions()


class RegisterImportConfig(dg.Config):
    name: str = Field(description="session becomes import-<name>")
    source: str = Field(description="local dataset root, Hub repo id owner/name, or hf://datasets/owner/name[@rev]")
    revision: Optional[str] = Field(default=None, description="Hub branch, tag or commit")


@dg.op(description="Records an existing LeRobot v3 dataset under <home>/imports/ and adds its session.")
def add_import(context: dg.OpExecutionContext, config: RegisterImportConfig, home: DataHome) -> None:
    from lerobot_assets.sources.lerobot_import import ImportSpec, register_import

    spec = ImportSpec(name=config.name, source=config.source, revision=config.revision)
    with home.workspace(f"add_import-{spec.name}", context.log.info) as ws:
        path = register_import(ws.layout.imports, spec)
        ws.write(path.relative_to(ws.layout.root).as_posix())
    key = import_session_key(spec.name)
    if not context.instance.has_dynamic_partition(SESSIONS, key):
        context.instance.add_dynamic_partitions(SESSIONS, [key])
    context.log.info(f"registered {key} from {spec.source} ({path})")


@dg.job(description="Register an existing LeRobot v3 dataset (local path or Hub repo id) as a session.")
def register_import_session() -> None:
    add_import()


# Asset jobs and op jobs together (Dagster exports no public name for the asset-job type).
ingest_jobs: list[Any] = [session_job, session_job_multiprocess, register_sim_sessions, register_import_session]
