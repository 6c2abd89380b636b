"""The catalog answers for unchanged files: recorded fingerprints, per-file incremental models, and
query sessions that reuse catalog tables only while their inputs are the files on disk now.

Every test compares against a session that ignores the catalog (`use_catalog=False`): reuse must never
change an answer, only its cost."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sql_fixtures import (  # noqa: E402
    SyntheticSpec,
    duckdb_writer_elsewhere,
    moto_s3,
    upload,
    write_synthetic_dataset,
    write_synthetic_home,
)

from lerobot_assets.sql import Catalog, ProjectLoadError, QuerySession, SqlError, load_project  # noqa: E402

PROJECT = load_project()
TABLES = [n for n, m in PROJECT.models.items() if m.materialized != "view"]


def comparable(value: Any) -> Any:
    """NaN equal to NaN (the poisoned frames hold one), everything else as is."""
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, (list, tuple)):
        return tuple(comparable(v) for v in value)
    return value


def all_models(session: QuerySession) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for name in PROJECT.models:
        cols = [r[0] for r in session.relation(f'describe "{name}"').fetchall()]
        order = ", ".join(f'"{c}"' for c in cols if c not in ("tasks",))
        out[name] = [comparable(r) for r in session.rows(f'select * from "{name}" order by {order}')[1]]
    return out


def assert_same_as_live(home: Path, **kwargs: Any) -> QuerySession:
    """The session with the catalog answers every model exactly as the one without; returns the former."""
    session = QuerySession.open(home, project=PROJECT, **kwargs)
    with QuerySession.open(home, project=PROJECT, use_catalog=False, **kwargs) as live:
        assert set(live.served.values()) == {"live"}
        got, want = all_models(session), all_models(live)
    for name in PROJECT.models:
        assert got[name] == want[name], name
    return session


def rewrite_parquet(path: Path, table: pa.Table) -> None:
    """As our writers do: a temp file renamed over the old one."""
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def poison_first_frame(path: Path) -> int:
    """Put a NaN into the first frame's observation.state of a data shard; returns its episode."""
    table = pq.read_table(path)
    state = table.column("observation.state").to_pylist()
    state[0] = [float("nan")] + list(state[0][1:])
    column = pa.array(state, type=table.schema.field("observation.state").type)
    rewrite_parquet(path, table.set_column(table.schema.get_field_index("observation.state"), "observation.state", column))
    return int(table.column("episode_index")[0].as_py())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    # 3 datasets x 7 episodes, 2 episodes per shard: 4 data files per dataset, 12 in all
    write_synthetic_home(home, 3, 7, episodes_per_file=2, chunks_size=2)
    return home


def test_fresh_catalog_serves_every_table(home: Path) -> None:
    results = {r.name: r for r in Catalog(home, project=PROJECT).materialize_all()}
    checks = results["int_episode_frame_checks"]
    assert (checks.materialized, checks.files_computed, checks.files_reused, checks.files_removed) == ("incremental", 12, 0, 0)
    assert [c for c, _ in checks.columns][:3] == ["dataset", "data_file", "episode_index"]
    assert checks.row_count == 21 and not any(r.up_to_date for r in results.values())
    session = assert_same_as_live(home)
    with session:
        assert {n: session.served[n] for n in TABLES} == {n: "catalog" for n in TABLES}
        assert session.catalog_note is None
        assert "model (table, catalog)" in {r.detail for r in session.relations()}
        # the session copied what it needed and let go of the file: a writer can open it at once
        con = duckdb.connect(str(home / "catalog/metadata.duckdb"))
        con.close()
    # nothing changed: a second build keeps every table and recomputes no file
    again = {r.name: r for r in Catalog(home, project=PROJECT).materialize_all()}
    assert all(again[n].up_to_date for n in TABLES if PROJECT.models[n].materialized == "table")
    assert (again["int_episode_frame_checks"].files_computed, again["int_episode_frame_checks"].files_reused) == (0, 12)
    assert again["episode_quality"].row_count == 21
    assert Catalog(home, project=PROJECT).materialize("task_summary", force=True).up_to_date is False


def test_changed_file_is_recomputed_alone(home: Path) -> None:
    catalog = Catalog(home, project=PROJECT)
    catalog.materialize_all()
    shard = home / "datasets/ds-001/data/chunk-000/file-001.parquet"
    episode = poison_first_frame(shard)
    session = assert_same_as_live(home)
    with session:
        # the one changed shard is computed live, the other 11 come from the catalog; everything that
        # depends on the frames is recomputed, what does not (task_summary) is still the catalog's
        assert session.served["int_episode_frame_checks"] == "11 of 12 files from the catalog"
        assert session.served["episode_quality"] == "live" and session.served["task_summary"] == "catalog"
        flagged = session.rows("select dataset, episode_index from episode_quality where has_nan_or_inf")[1]
        assert flagged == [("datasets/ds-001", episode)]
    result = catalog.materialize("int_episode_frame_checks")
    assert (result.files_computed, result.files_reused, result.files_removed) == (1, 11, 0)
    catalog.materialize_all()
    with assert_same_as_live(home) as session:
        assert {n: session.served[n] for n in TABLES} == {n: "catalog" for n in TABLES}
        assert session.rows("select count(*) from episode_quality where has_nan_or_inf")[1] == [(1,)]


def test_new_and_removed_datasets(home: Path) -> None:
    catalog = Catalog(home, project=PROJECT)
    catalog.materialize_all()
    write_synthetic_dataset(home / "datasets/ds-new", SyntheticSpec(n_episodes=5, episodes_per_data_file=2))
    with assert_same_as_live(home) as session:
        assert session.served["int_episode_frame_checks"] == "12 of 15 files from the catalog"
        assert session.rows("select count(*) from episode_quality")[1] == [(26,)]
    result = catalog.materialize("int_episode_frame_checks")
    assert (result.files_computed, result.files_reused, result.row_count) == (3, 12, 26)
    # the user deletes a dataset: its rows leave the catalog at the next build
    shutil.rmtree(home / "datasets/ds-000")
    with assert_same_as_live(home) as session:
        assert session.served["int_episode_frame_checks"] == "11 of 11 files from the catalog"
    result = catalog.materialize("int_episode_frame_checks")
    assert (result.files_computed, result.files_reused, result.files_removed, result.row_count) == (0, 11, 4, 19)
    con = duckdb.connect(str(catalog.path), read_only=True)
    assert con.execute("select distinct dataset from int_episode_frame_checks order by 1").fetchall() == [
        ("datasets/ds-001",), ("datasets/ds-002",), ("datasets/ds-new",)
    ]
    con.close()


def test_vars_and_sql_changes_are_never_served_stale(home: Path, tmp_path: Path) -> None:
    Catalog(home, project=PROJECT).materialize_all()
    # a threshold var changes episode_quality's SQL: it and what reads it are recomputed
    with assert_same_as_live(home, vars={"min_episode_seconds": 100}) as session:
        assert session.served["episode_quality"] == "live" and session.served["dataset_summary"] == "live"
        assert session.served["int_episode_frame_checks"] == "catalog"  # uses no var
        assert session.rows("select count(*) from episode_quality where too_short")[1] == [(21,)]
    # an edited model: its per-file rows are not reused, and the next build recomputes every file
    proj = tmp_path / "proj"
    shutil.copytree(PROJECT.root, proj)
    path = proj / "models/marts/int_episode_frame_checks.sql"
    path.write_text(path.read_text().replace("count(*) as n_frames", "count(*) + 1000 as n_frames"))
    edited = load_project(proj)
    with QuerySession.open(home, project=edited) as session:
        assert session.served["int_episode_frame_checks"] == "live"
        assert session.rows("select min(n_frames) from int_episode_frame_checks")[1][0][0] > 1000
    result = Catalog(home, project=edited).materialize("int_episode_frame_checks")
    assert (result.files_computed, result.files_reused) == (12, 0)


def test_catalog_busy_or_broken_falls_back_to_live(home: Path) -> None:
    catalog = Catalog(home, project=PROJECT)
    catalog.materialize_all()
    with duckdb_writer_elsewhere(catalog.path, 30):
        with QuerySession.open(home, project=PROJECT) as session:
            assert set(session.served.values()) == {"live"}
            assert "not used" in session.catalog_note and "lock" in session.catalog_note.lower()
            assert session.rows("select count(*) from episode_quality")[1] == [(21,)]
    # a catalog from before fingerprints were recorded is simply not used
    con = duckdb.connect(str(catalog.path))
    con.execute("drop table __lerobot_state")
    con.close()
    with QuerySession.open(home, project=PROJECT) as session:
        assert set(session.served.values()) == {"live"} and session.catalog_note is None


def test_failed_incremental_build_keeps_the_catalog(home: Path) -> None:
    catalog = Catalog(home, project=PROJECT)
    catalog.materialize_all()
    shard = home / "datasets/ds-002/data/chunk-000/file-000.parquet"
    good = shard.read_bytes()
    poison_first_frame(home / "datasets/ds-000/data/chunk-000/file-000.parquet")
    # broken pages, footer intact: found only when the build reads the frames (a broken footer is found
    # before, and the dataset is then skipped: tests/hostile/test_sql_hostile.py)
    shard.write_bytes(good[:4] + b"\xff" * 1996 + good[2000:])
    with pytest.raises(SqlError) as info:
        catalog.materialize("int_episode_frame_checks")
    assert "ds-002" in str(info.value)
    con = duckdb.connect(str(catalog.path), read_only=True)
    # the transaction rolled back: the rows and the record of every file are the previous build's
    assert con.execute("select count(*), count(*) filter (where state_nonfinite) from int_episode_frame_checks").fetchone() == (21, 0)
    con.close()
    shard.write_bytes(good)  # same bytes, new mtime: computed again (a fingerprint never reads contents)
    result = catalog.materialize("int_episode_frame_checks")
    assert (result.files_computed, result.files_reused) == (2, 10)
    with assert_same_as_live(home) as session:
        assert session.served["episode_quality"] == "live"  # the catalog's episode_quality predates both
        assert session.rows("select count(*) from episode_quality where has_nan_or_inf")[1] == [(1,)]


def test_incremental_config_is_checked_at_load(tmp_path: Path) -> None:
    def load_with(model_sql: str) -> str:
        proj = tmp_path / f"proj{len(list(tmp_path.iterdir()))}"
        shutil.copytree(PROJECT.root, proj)
        (proj / "models/marts/int_episode_frame_checks.sql").write_text(model_sql)
        with pytest.raises(ProjectLoadError) as info:
            load_project(proj)
        return str(info.value)

    message = load_with("{{ config(materialized='incremental') }}\nselect * from {{ ref('stg_frames') }}")
    assert "int_episode_frame_checks.sql:1: config" in message and "needs per_file_of" in message
    message = load_with("{{ config(materialized='incremental', per_file_of='lerobot.episodes') }}\nselect * from {{ ref('stg_frames') }}")
    assert "int_episode_frame_checks.sql:1: int_episode_frame_checks: per_file_of: source lerobot.episodes needs format 'parquet' and a 'file_column'" in message
    message = load_with(
        "\n{{ config(materialized='incremental', per_file_of='lerobot.frames') }}\n"
        "select f.* from {{ ref('stg_frames') }} as f join {{ ref('stg_info') }} using (dataset)"
    )
    assert "int_episode_frame_checks.sql:2: int_episode_frame_checks: per_file_of: an incremental model may read only lerobot.frames, but it also reads lerobot.info" in message
    message = load_with("{{ config(materialized='incremental', per_file_of='lerobot.nope') }}\nselect 1 as x")
    assert "per_file_of: unknown source lerobot.nope" in message


def test_incremental_model_must_keep_the_file_column(home: Path, tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    shutil.copytree(PROJECT.root, proj)
    path = proj / "models/marts/int_episode_frame_checks.sql"
    path.write_text(
        "{{ config(materialized='incremental', per_file_of='lerobot.frames') }}\n"
        "select dataset, episode_index, count(*) as n_frames from {{ ref('stg_frames') }} group by all"
    )
    with pytest.raises(SqlError, match="must output the columns dataset and data_file .* it lacks data_file"):
        Catalog(home, project=load_project(proj)).materialize("int_episode_frame_checks", with_upstream=True)


def test_data_file_column_names_each_rows_file(home: Path) -> None:
    with QuerySession.open(home, project=PROJECT, use_catalog=False) as session:
        got = session.rows("select dataset, data_file, count(distinct episode_index) from frames group by all order by all")[1]
    assert got[:4] == [
        ("datasets/ds-000", "data/chunk-000/file-000.parquet", 2),
        ("datasets/ds-000", "data/chunk-000/file-001.parquet", 2),
        ("datasets/ds-000", "data/chunk-001/file-000.parquet", 2),
        ("datasets/ds-000", "data/chunk-001/file-001.parquet", 1),
    ]
    assert len(got) == 12


def test_remote_home_reuses_a_catalog(home: Path, tmp_path: Path) -> None:
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with moto_s3() as endpoint:
        upload(endpoint, home, "lerobot/home")
        options = {"endpoint_url": endpoint, "client_kwargs": {"region_name": "us-east-1"}}
        path = tmp_path / "remote-catalog.duckdb"
        result = Catalog("s3://lerobot/home", storage_options=options, project=PROJECT, path=path).materialize_all()
        assert {r.name: r.files_computed for r in result if r.files_computed is not None} == {"int_episode_frame_checks": 12}
        with QuerySession.open("s3://lerobot/home", storage_options=options, project=PROJECT, catalog_path=path) as remote:
            assert remote.served["episode_quality"] == "catalog"
            with QuerySession.open(home, project=PROJECT, use_catalog=False) as local:
                assert remote.rows("select * exclude (tasks) from episode_quality")[1] == local.rows(
                    "select * exclude (tasks) from episode_quality")[1]
        # an object rewritten on the store (new ETag) is computed again
        import s3fs

        fs = s3fs.S3FileSystem(**options)
        key = "lerobot/home/datasets/ds-001/data/chunk-000/file-000.parquet"
        local_copy = tmp_path / "shard.parquet"
        fs.get(key, str(local_copy))
        poison_first_frame(local_copy)
        fs.put(str(local_copy), key)
        with QuerySession.open("s3://lerobot/home", storage_options=options, project=PROJECT, catalog_path=path) as remote:
            assert remote.served["int_episode_frame_checks"] == "11 of 12 files from the catalog"
            assert remote.rows("select count(*) from episode_quality where has_nan_or_inf")[1] == [(1,)]


def test_record_without_its_table_is_computed_live(home: Path) -> None:
    catalog = Catalog(home, project=PROJECT)
    catalog.materialize_all()
    con = duckdb.connect(str(catalog.path))
    con.execute("drop table episode_quality")
    con.execute("drop table int_episode_frame_checks")
    con.close()
    with assert_same_as_live(home) as session:
        assert session.served["episode_quality"] == "live" and session.served["int_episode_frame_checks"] == "live"
        assert session.served["task_summary"] == "catalog"
