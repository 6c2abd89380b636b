"""byte_index and the SQL models as Dagster assets downstream of the merged dataset."""

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
from test_defs_support import (
    checks,
    materialize_dataset,
    materialize_session,
    materialized,
    metadata,
    resources,
)

from lerobot_assets.home import HomeLayout


def downstream_defs() -> list:
    from lerobot_assets.defs.datasets.assets import byte_index
    from lerobot_assets.defs.datasets.checks import byte_index_matches_ffprobe
    from lerobot_assets.defs.sql.assets import build_sql_defs

    sql_assets, sql_checks = build_sql_defs()
    return [byte_index, byte_index_matches_ffprobe, *sql_assets, *sql_checks]


def test_byte_index_and_sql_models(instance: dg.DagsterInstance, home: Path) -> None:
    assert materialize_session(instance, home, "sim-s0000-0002").success
    assert materialize_dataset(instance, home).success
    merged = HomeLayout(home).dataset("lerobot_dataset")
    info = json.loads((merged / "meta/info.json").read_text())

    result = dg.materialize(downstream_defs(), instance=instance, resources=resources(home), raise_on_error=False)
    assert result.success
    assert {"byte_index", "episode_quality", "task_summary", "dataset_summary", "camera_summary"} <= materialized(result)
    got = checks(result)
    assert got["byte_index_matches_ffprobe"] is True
    assert all(got[name] for name in got if name.startswith("assert_") and name != "assert_no_flagged_episodes")

    bi = metadata(result, "byte_index")
    assert (bi["files"], bi["episodes"], bi["frames"]) == (1, 3, info["total_frames"])
    frames = pq.read_table(merged / "meta/byte_index/frames.parquet")
    assert frames.num_rows == info["total_frames"]

    tasks = metadata(result, "task_summary")
    # One task, in two datasets under the home: the session and the merged dataset.
    assert tasks["dagster/row_count"] == 2
    columns = [c.name for c in tasks["dagster/column_schema"].columns]
    assert {"dataset", "task", "episodes", "frames", "hours"} <= set(columns)
    # The catalog holds the same answer as the merged dataset's info.json.
    import duckdb

    con = duckdb.connect(str(home / "catalog" / "metadata.duckdb"), read_only=True)
    frames_by_dataset = dict(con.execute("SELECT dataset, sum(frames) FROM task_summary GROUP BY dataset").fetchall())
    con.close()
    assert frames_by_dataset == {"datasets/lerobot_dataset": info["total_frames"], "sessions/sim-s0000-0002": info["total_frames"]}

    # The frame checks are incremental: one data file per dataset computed now, all reused by a rerun,
    # whose tables are kept as they are (their inputs did not change).
    checks_meta = metadata(result, "int_episode_frame_checks")
    assert (checks_meta["files_computed"], checks_meta["files_reused"], checks_meta["files_removed"]) == (2, 0, 0)
    assert checks_meta["dagster/row_count"] == 2 * info["total_episodes"]
    again = dg.materialize(downstream_defs(), instance=instance, resources=resources(home), raise_on_error=False)
    assert again.success
    assert (metadata(again, "int_episode_frame_checks")["files_computed"], metadata(again, "int_episode_frame_checks")["files_reused"]) == (0, 2)
    # the byte index found nothing to re-index and left its files alone, so even episode_quality is kept
    assert metadata(again, "episode_quality")["up_to_date"] is True
    assert metadata(again, "task_summary")["dagster/row_count"] == 2


def test_failing_sql_data_test_is_a_failed_check(instance: dg.DagsterInstance, home: Path) -> None:
    assert materialize_session(instance, home, "sim-s0000-0001").success
    assert materialize_dataset(instance, home).success
    merged = HomeLayout(home).dataset("lerobot_dataset")
    info_path = merged / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["total_frames"] += 7  # info.json now disagrees with the episodes metadata
    info_path.write_text(json.dumps(info, indent=4))

    from lerobot_assets.defs.sql.assets import build_sql_defs

    sql_assets, sql_checks = build_sql_defs()
    result = dg.materialize([*sql_assets, *sql_checks], instance=instance, resources=resources(home), raise_on_error=False)
    got = checks(result)
    assert got["assert_totals_match_info"] is False
    assert got["assert_episode_index_unique"] is True
    # assert_totals_match_info is blocking: nothing downstream of dataset_summary may run after it,
    # and the run reports the failure.
    assert not result.success
