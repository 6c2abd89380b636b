"""The SQL models and data tests share one DuckDB file, which takes one writer process at a time. With
the instance's pool limit at 1, Dagster's multiprocess executor queues their steps on the
duckdb_catalog pool: parallel model steps neither collide on the lock nor wait on it themselves."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from lerobot_assets.defs.sql.checks import CATALOG_POOL

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot-v3-tiny"
# Three models with no dependency between them (parallel steps without the pool), and one over them.
MODELS = ["stg_info", "stg_tasks", "stg_episodes", "task_summary"]


def pool_job() -> dg.JobDefinition:
    """Rebuilt in each step process (reconstructable), so it resolves the job from the code location."""
    from definitions import defs

    job = dg.define_asset_job(
        "sql_pool_job",
        selection=dg.AssetSelection.assets(*MODELS),
        executor_def=dg.multiprocess_executor.configured({"max_concurrent": 3}),
    )
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("sql_pool_job")


def test_every_catalog_step_is_in_the_pool() -> None:
    from lerobot_assets.defs.sql.assets import build_sql_defs

    assets, checks = build_sql_defs()
    assert len(assets) >= 10 and len(checks) >= 5
    assert {d.node_def.pool for d in [*assets, *checks]} == {CATALOG_POOL}


@pytest.mark.slow
def test_parallel_model_steps_queue_on_the_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    shutil.copytree(FIXTURE, home / "datasets" / "tiny")
    monkeypatch.setenv("LEROBOT_ASSETS_HOME", str(home))
    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        job = dg.build_reconstructable_job(
            "test_sql_pool", "pool_job", reconstructor_working_directory=str(Path(__file__).parent)
        )
        with dg.execute_job(job, instance=instance) as result:
            assert result.success
            spans: dict[str, list[float]] = {}
            for record in instance.all_logs(result.run_id):
                event = record.dagster_event
                if event is not None and event.step_key and event.event_type_value in ("STEP_START", "STEP_SUCCESS"):
                    spans.setdefault(event.step_key, []).append(record.timestamp)
        # The models and their data tests (selected with them), all in the pool.
        assert set(MODELS) < set(spans) and all(len(v) == 2 for v in spans.values())
        intervals = sorted((start, end) for start, end in spans.values())
        # One at a time: each step starts after the previous one finished.
        assert all(later[0] >= earlier[1] for earlier, later in zip(intervals, intervals[1:]))
