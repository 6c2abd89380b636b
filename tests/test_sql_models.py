"""Exact answers of the SQL sources and models: the LeRobot-written fixture, many-shard synthetic datasets,
injected quality problems, the catalog file, corrupted shards and remote (S3) roots."""

from __future__ import annotations

import json
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
    find_lerobot_fixture,
    moto_s3,
    upload,
    write_synthetic_dataset,
    write_synthetic_home,
)

from lerobot_assets.sql import (  # noqa: E402
    Catalog,
    CatalogBusyError,
    QueryError,
    QuerySession,
    ReadOnlyError,
    SourceError,
    SqlError,
    discover_datasets,
    load_project,
)

FIXTURE = find_lerobot_fixture()
PROJECT = load_project()


def rows(session: QuerySession, sql: str) -> list[dict[str, Any]]:
    cols, values = session.rows(sql)
    return [dict(zip(cols, r)) for r in values]


# ---- the LeRobot-written fixture -----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> QuerySession:
    with QuerySession.open(None, [FIXTURE], project=PROJECT) as session:
        yield session


def test_fixture_sources(tiny: QuerySession) -> None:
    assert rows(tiny, "select dataset, count(*) as n, sum(length) as frames from episodes group by all") == [
        {"dataset": "lerobot-v3-tiny", "n": 3, "frames": 60}
    ]
    assert rows(tiny, "select count(*) as n, count(distinct episode_index) as e from frames") == [{"n": 60, "e": 3}]
    assert rows(tiny, "select task_index, task from tasks order by task_index") == [
        {"task_index": 0, "task": "pick the cube"},
        {"task_index": 1, "task": "place the cube"},
    ]
    [info] = rows(tiny, "select * from info")
    assert (info["fps"], info["total_episodes"], info["total_frames"], info["total_tasks"]) == (30.0, 3, 60, 2)
    assert (info["robot_type"], info["codebase_version"]) == ("so100", "v3.0")
    assert json.loads(info["features"])["observation.state"]["shape"] == [6]
    # stats.json: 9 features (incl. 2 cameras and 5 index features) x 10 statistics
    assert rows(tiny, "select count(*) as n, count(distinct feature) as f from stats") == [{"n": 90, "f": 9}]
    assert rows(tiny, "select value, shape from stats where feature = 'observation.state' and stat = 'count'") == [
        {"value": [60.0], "shape": [1]}
    ]
    assert rows(tiny, "select shape from stats where feature = 'observation.images.front' and stat = 'mean'") == [
        {"shape": [3, 1, 1]}
    ]
    assert rows(
        tiny,
        "select video_key, from_timestamp, to_timestamp from episode_videos where video_key like '%front' order by episode_index",
    ) == [
        {"video_key": "observation.images.front", "from_timestamp": 0.0, "to_timestamp": 0.6666666666666666},
        {"video_key": "observation.images.front", "from_timestamp": 0.6666666666666666, "to_timestamp": 1.5},
        {"video_key": "observation.images.front", "from_timestamp": 1.5, "to_timestamp": 2.0},
    ]
    assert rows(tiny, "select count(*) as n from byte_index") == [{"n": 0}]  # optional source, absent


def test_fixture_models(tiny: QuerySession) -> None:
    assert rows(tiny, "select * from task_summary") == [
        {"dataset": "lerobot-v3-tiny", "task": "pick the cube", "task_index": 0, "episodes": 2, "frames": 35, "hours": 35 / 30 / 3600},
        {"dataset": "lerobot-v3-tiny", "task": "place the cube", "task_index": 1, "episodes": 1, "frames": 25, "hours": 25 / 30 / 3600},
    ]
    [summary] = rows(tiny, "select * from dataset_summary")
    assert {k: summary[k] for k in ("episodes", "frames", "tasks", "cameras", "data_files", "episode_files", "video_files")} == {
        "episodes": 3, "frames": 60, "tasks": 2, "cameras": 2, "data_files": 1, "episode_files": 1, "video_files": 2
    }
    assert summary["hours"] == 60 / 30 / 3600
    assert summary["video_bytes"] == 11674 + 9991
    assert (summary["totals_match_info"], summary["flagged_episodes"]) == (True, 0)
    assert rows(tiny, "select video_key, codec, width, height, frames, video_bytes, bytes_per_frame from camera_summary") == [
        {"video_key": "observation.images.front", "codec": "av1", "width": 128, "height": 96, "frames": 60,
         "video_bytes": 11674, "bytes_per_frame": 11674 / 60},
        {"video_key": "observation.images.wrist", "codec": "av1", "width": 80, "height": 64, "frames": 60,
         "video_bytes": 9991, "bytes_per_frame": 9991 / 60},
    ]
    quality = rows(tiny, "select episode_index, length, n_frames, min_video_frames, max_video_frames, n_flags from episode_quality")
    assert quality == [
        {"episode_index": 0, "length": 20, "n_frames": 20, "min_video_frames": 20, "max_video_frames": 20, "n_flags": 0},
        {"episode_index": 1, "length": 25, "n_frames": 25, "min_video_frames": 25, "max_video_frames": 25, "n_flags": 0},
        {"episode_index": 2, "length": 15, "n_frames": 15, "min_video_frames": 15, "max_video_frames": 15, "n_flags": 0},
    ]


def test_discovery_at_any_depth(tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(FIXTURE, home / "lerobot_dataset")
    shutil.copytree(FIXTURE, home / "sessions" / "sim-0000-0009")
    (home / "catalog").mkdir()
    (home / "notes").mkdir()  # not a dataset: ignored
    names = [d.name for d in discover_datasets(home)]
    assert names == ["lerobot_dataset", "sessions/sim-0000-0009"]
    with QuerySession.open(home, project=PROJECT) as session:
        assert rows(session, "select dataset, episodes, frames from dataset_summary") == [
            {"dataset": "lerobot_dataset", "episodes": 3, "frames": 60},
            {"dataset": "sessions/sim-0000-0009", "episodes": 3, "frames": 60},
        ]
        assert rows(session, "select dataset, count(*) as n from frames group by all order by dataset") == [
            {"dataset": "lerobot_dataset", "n": 60},
            {"dataset": "sessions/sim-0000-0009", "n": 60},
        ]
    # an extra root inside the home is not counted twice; one with a clashing name is an error
    assert [d.name for d in discover_datasets(home, [home / "lerobot_dataset"])] == names
    with pytest.raises(SourceError, match="both named 'lerobot_dataset'"):
        discover_datasets(home, [_copy(FIXTURE, tmp_path / "x" / "lerobot_dataset")])
    with pytest.raises(SourceError, match="not a LeRobot dataset root"):
        discover_datasets(None, [tmp_path])


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---- many shards ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    home = tmp_path_factory.mktemp("many")
    # 3 episodes per file and 2 files per chunk: 13 episodes → 5 files over 3 chunk directories
    written = write_synthetic_home(home, 3, 13, episodes_per_file=3, chunks_size=2, min_frames=15, max_frames=40)
    # a fourth dataset with 14 joints (vectors of another size must union with the 6-joint ones)
    written.append(
        write_synthetic_dataset(
            home / "sessions" / "wide",
            SyntheticSpec(n_episodes=4, state_dim=14, episodes_per_meta_file=1, episodes_per_data_file=2,
                          episodes_per_video_file=4, chunks_size=1, tasks=("fold",), cameras={"cam": (48, 64)}, seed=9),
        )
    )
    return home, written


def test_many_shards_exact(many: tuple[Path, list[Any]]) -> None:
    home, written = many
    assert len(written[0].meta_files) == 5 and len({p.parent for p in written[0].meta_files}) == 3
    expected_names = ["datasets/ds-000", "datasets/ds-001", "datasets/ds-002", "sessions/wide"]
    with QuerySession.open(home, project=PROJECT) as session:
        summary = rows(session, "select dataset, episodes, frames, data_files, episode_files, video_files, tasks, totals_match_info from dataset_summary")
        assert summary == [
            {
                "dataset": name,
                "episodes": len(w.lengths),
                "frames": w.n_frames,
                "data_files": len(w.data_files),
                "episode_files": len(w.meta_files),
                "video_files": sum(len(v) for v in w.video_files.values()),
                "tasks": len(w.tasks),
                "totals_match_info": True,
            }
            for name, w in zip(expected_names, written)
        ]
        # every frame of every data shard, per episode
        per_episode = rows(session, "select dataset, episode_index, count(*) as n from frames group by all order by all")
        assert per_episode == [
            {"dataset": name, "episode_index": i, "n": n}
            for name, w in zip(expected_names, written)
            for i, n in enumerate(w.lengths)
        ]
        expected_tasks = []
        for name, w in zip(expected_names, written):
            for t_index, task in enumerate(w.tasks):
                lengths = [n for n, ts in zip(w.lengths, w.episode_tasks) if task in ts]
                expected_tasks.append(
                    {"dataset": name, "task": task, "task_index": t_index, "episodes": len(lengths),
                     "frames": sum(lengths), "hours": sum(lengths) / 30 / 3600}
                )
        assert rows(session, "select * from task_summary") == expected_tasks
        cams = rows(session, "select dataset, video_key, frames, video_files, video_bytes, bytes_per_frame from camera_summary")
        assert cams == [
            {"dataset": name, "video_key": key, "frames": w.n_frames, "video_files": len(w.video_files[key]),
             "video_bytes": w.video_bytes[key], "bytes_per_frame": 200.0}
            for name, w in zip(expected_names, written)
            for key in sorted(w.video_files)
        ]
        assert rows(session, "select sum(n_flags) as f from episode_quality") == [{"f": 0}]
        # state vectors of 6 and 14 joints share one column
        assert rows(session, "select dataset, min(len(\"observation.state\")) as d from frames group by all order by 1") == [
            {"dataset": n, "d": 14 if n == "sessions/wide" else 6} for n in expected_names
        ]


def test_quality_flags_exact(tmp_path: Path) -> None:
    anomalies = {
        0: ["nan_state"], 1: ["inf_action"], 2: ["timestamp_gap"], 3: ["non_monotonic"], 4: ["idle"],
        5: ["video_short"], 6: ["video_reversed"], 7: ["missing_frame"],
    }
    write_synthetic_dataset(
        tmp_path / "anom",
        SyntheticSpec(n_episodes=10, lengths=[30] * 8 + [5, 30], anomalies=anomalies,
                      episodes_per_meta_file=4, episodes_per_data_file=3, episodes_per_video_file=4, chunks_size=2),
    )
    flags = ["frame_count_mismatch", "video_length_mismatch", "inconsistent_video_timestamps", "timestamp_gap",
             "non_monotonic_timestamps", "has_nan_or_inf", "idle", "too_short"]
    with QuerySession.open(None, [tmp_path / "anom"], project=PROJECT) as session:
        got = {r["episode_index"]: {f for f in flags if r[f]} for r in rows(session, "select * from episode_quality")}
        assert got == {
            0: {"has_nan_or_inf"},
            1: {"has_nan_or_inf"},
            2: {"timestamp_gap"},
            3: {"non_monotonic_timestamps"},
            4: {"idle"},
            5: {"video_length_mismatch"},
            6: {"video_length_mismatch", "inconsistent_video_timestamps"},
            7: {"frame_count_mismatch", "timestamp_gap"},  # the missing middle frame is also a gap
            8: {"too_short"},
            9: set(),
        }
        assert rows(session, "select n_flags from episode_quality where episode_index in (6, 9) order by episode_index") == [
            {"n_flags": 2}, {"n_flags": 0}
        ]
    # thresholds are vars
    with QuerySession.open(None, [tmp_path / "anom"], project=PROJECT, vars={"min_episode_seconds": 0.1}) as session:
        assert rows(session, "select count(*) filter (where too_short) as n from episode_quality") == [{"n": 0}]


def test_byte_index_counts_when_present(tmp_path: Path) -> None:
    written = write_synthetic_dataset(tmp_path / "ds", SyntheticSpec(n_episodes=3, lengths=[10, 12, 8], cameras={"cam": (8, 8)}))
    frames = []
    for episode, n in enumerate(written.lengths):
        count = n - 1 if episode == 1 else n  # the index finds one frame fewer in episode 1's segment
        frames += [
            {"video_key": "cam", "chunk_index": 0, "file_index": 0, "episode_index": episode, "frame_index": f,
             "pts": f, "pts_s": f / 30, "dts": f, "duration": 1, "byte_offset": 100 * f, "size": 100,
             "keyframe": f % 2 == 0, "sample_index": f}
            for f in range(count)
        ]
    (tmp_path / "ds/meta/byte_index").mkdir()
    pq.write_table(pa.Table.from_pylist(frames), tmp_path / "ds/meta/byte_index/frames.parquet")
    with QuerySession.open(None, [tmp_path / "ds"], project=PROJECT) as session:
        assert rows(session, "select count(*) as n from stg_byte_index") == [{"n": 29}]
        assert rows(session, "select episode_index, max_video_frames, video_length_mismatch from episode_quality") == [
            {"episode_index": 0, "max_video_frames": 10, "video_length_mismatch": False},
            {"episode_index": 1, "max_video_frames": 11, "video_length_mismatch": True},
            {"episode_index": 2, "max_video_frames": 8, "video_length_mismatch": False},
        ]


def test_real_byte_index_of_fixture(tmp_path: Path) -> None:
    byteindex = pytest.importorskip("lerobot_assets.byteindex")
    root = _copy(FIXTURE, tmp_path / "tiny")
    byteindex.build_byte_index(root)
    with QuerySession.open(None, [root], project=PROJECT) as session:
        assert rows(session, "select video_key, count(*) as n from stg_byte_index group by all order by 1") == [
            {"video_key": "observation.images.front", "n": 60},
            {"video_key": "observation.images.wrist", "n": 60},
        ]
        assert rows(session, "select sum(n_flags) as f from episode_quality") == [{"f": 0}]


def test_empty_home_binds_every_view(tmp_path: Path) -> None:
    with QuerySession.open(tmp_path / "nothing-here", project=PROJECT) as session:
        assert session.datasets == []
        for rel in session.relations():
            assert rows(session, f'select count(*) as n from "{rel.name}"') == [{"n": 0}], rel.name
        columns = {r.name: [c for c, _ in r.columns] for r in session.relations()}
        assert columns["frames"][:4] == ["dataset", "data_file", "index", "episode_index"]
        assert "n_flags" in columns["episode_quality"]


# ---- read-only -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "copy (select 1) to '{victim}'",
        "copy episodes to '{victim}' (format parquet)",
        "export database '{dir}'",
        "create table t as select 1",
        "insert into episodes select * from episodes",
        "drop view episodes",
        "attach '{dir}/x.duckdb' as x",
        "install httpfs",
        "set enable_external_access = true",
        "pragma threads=1",
        "select 1; copy (select 1) to '{victim}'",
    ],
)
def test_writes_are_refused(many: tuple[Path, list[Any]], tmp_path: Path, sql: str) -> None:
    home, written = many
    victim = written[0].data_files[0]  # a path the session may read
    before = victim.read_bytes()
    with QuerySession.open(home, project=PROJECT) as session:
        with pytest.raises(QueryError):
            session.query(sql.format(victim=victim, dir=tmp_path))
        # the session still works
        assert rows(session, "select count(*) as n from tasks") == [{"n": 10}]
    assert victim.read_bytes() == before and list(tmp_path.iterdir()) == []


def test_refusal_kinds_and_reads_elsewhere(many: tuple[Path, list[Any]], tmp_path: Path) -> None:
    home, _ = many
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    with QuerySession.open(home, project=PROJECT) as session:
        with pytest.raises(ReadOnlyError, match="refused: COPY statement"):
            session.query("copy (select 1) to 'x.csv'")
        with pytest.raises(QueryError, match="Parser Error"):
            session.query("selec 1")
        with pytest.raises(QueryError, match="Permission Error"):
            session.query(f"select * from read_parquet('{other}')")
        with pytest.raises(QueryError, match="Permission Error"):
            session.query("select * from read_text('/etc/hostname')")
        # DESCRIBE / SUMMARIZE / SHOW and FROM-first are queries
        assert session.query("describe episodes").num_rows > 10
        assert session.query("from tasks limit 1").num_rows == 1
        assert session.query("summarize tasks").num_rows == 3


# ---- corrupted shards ----------------------------------------------------------------------------


def test_corrupted_shard_is_named(tmp_path: Path) -> None:
    written = write_synthetic_dataset(
        tmp_path / "ds", SyntheticSpec(n_episodes=6, episodes_per_meta_file=2, episodes_per_data_file=2)
    )
    bad = written.data_files[1]
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # truncated: no footer
    with pytest.raises(SourceError, match=f"cannot read parquet file {bad}"):
        QuerySession.open(None, [tmp_path / "ds"], project=PROJECT)
    catalog = Catalog(tmp_path / "home", roots=[tmp_path / "ds"], project=PROJECT)
    with pytest.raises(SourceError, match=str(bad)):
        catalog.materialize("stg_frames")


def test_corrupted_page_at_query_time_is_named(tmp_path: Path) -> None:
    written = write_synthetic_dataset(tmp_path / "ds", SyntheticSpec(n_episodes=4, episodes_per_data_file=2))
    bad = written.data_files[0]
    with QuerySession.open(None, [tmp_path / "ds"], project=PROJECT) as session:
        data = bytearray(bad.read_bytes())
        data[4:2000] = b"\xff" * 1996  # garbage pages, footer intact
        bad.write_bytes(bytes(data))
        with pytest.raises(QueryError) as info:
            session.query('select sum(list_sum("observation.state")) from frames')
        assert str(bad) in str(info.value)


# ---- the catalog file ----------------------------------------------------------------------------


def test_catalog_materialize_and_data_tests(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_synthetic_home(home, 2, 7, episodes_per_file=3, chunks_size=2)
    catalog = Catalog(home, project=PROJECT)
    with pytest.raises(SqlError, match="upstream models not materialized"):
        catalog.materialize("task_summary")
    results = {r.name: r for r in catalog.materialize_all()}
    assert catalog.path == home / "catalog" / "metadata.duckdb" and catalog.path.is_file()
    assert list(results) == PROJECT.topological_order()
    ts = results["task_summary"]
    assert (ts.materialized, ts.row_count) == ("table", 6)
    assert [c for c, _ in ts.columns] == ["dataset", "task", "task_index", "episodes", "frames", "hours"]
    assert ts.preview_markdown.splitlines()[0] == "| dataset | task | task_index | episodes | frames | hours |"
    assert len(ts.preview_rows) == 6 and ts.as_metadata()["row_count"] == 6
    assert results["stg_frames"].materialized == "view"
    assert results["episode_quality"].row_count == 14
    # any DuckDB client can read the catalog; frames stay views over the parquet files
    con = duckdb.connect(str(catalog.path), read_only=True)
    kinds = dict(con.execute("select table_name, table_type from information_schema.tables").fetchall())
    assert kinds["frames"] == "VIEW" and kinds["stg_frames"] == "VIEW" and kinds["episodes"] == "VIEW"
    assert kinds["episode_quality"] == "BASE TABLE" and kinds["info"] == "BASE TABLE"
    assert con.execute("select sum(frames) from dataset_summary").fetchone()[0] == con.execute("select count(*) from frames").fetchone()[0]
    con.close()
    # same answers as the live session
    with QuerySession.open(home, project=PROJECT) as session:
        live = session.rows("select * from task_summary")[1]
    assert [tuple(r.values()) for r in ts.preview_rows] == live
    # data tests: all pass on clean data
    outcomes = {t.name: (t.passed, t.failing_rows) for t in catalog.run_data_tests()}
    assert outcomes == {name: (True, 0) for name in PROJECT.tests}
    # break the data: an idle episode and a wrong total in info.json, then re-materialize
    info_path = home / "datasets/ds-001/meta/info.json"
    info = json.loads(info_path.read_text())
    info["total_frames"] += 1
    info_path.write_text(json.dumps(info))
    catalog.materialize_all()
    result = catalog.run_data_test("assert_totals_match_info")
    assert (result.passed, result.failing_rows, result.blocking, result.model) == (False, 1, True, "dataset_summary")
    assert "datasets/ds-001" in result.preview_markdown
    # materializing one model refreshes its sources: a new dataset shows up
    write_synthetic_dataset(home / "datasets/ds-new", SyntheticSpec(n_episodes=2))
    assert catalog.materialize("stg_info").row_count == 3


def test_catalog_switches_materialization(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_synthetic_home(home, 1, 3, episodes_per_file=3)
    proj = tmp_path / "proj"
    shutil.copytree(PROJECT.root, proj)
    catalog = Catalog(home, project=load_project(proj))
    catalog.materialize("task_summary", with_upstream=True)
    path = proj / "models/marts/task_summary.sql"
    path.write_text(path.read_text().replace("materialized='table'", "materialized='view'"))
    catalog = Catalog(home, project=load_project(proj))
    assert catalog.materialize("task_summary").materialized == "view"
    con = duckdb.connect(str(catalog.path), read_only=True)
    assert con.execute("select table_type from information_schema.tables where table_name='task_summary'").fetchone()[0] == "VIEW"
    con.close()


# ---- remote roots (S3-compatible server on loopback) -----------------------------------------------


@pytest.fixture(scope="module")
def s3(many: tuple[Path, list[Any]]):
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with moto_s3() as endpoint:
        home, _ = many
        upload(endpoint, home, "lerobot/home")
        if FIXTURE is not None:
            upload(endpoint, FIXTURE, "lerobot/fixtures/lerobot-v3-tiny")
        yield endpoint


COMPARED = [
    "select * from task_summary",
    "select * exclude (root) from dataset_summary",
    "select * from camera_summary",
    "select * exclude (tasks) from episode_quality",
    "select dataset, data_file, episode_index, sum(timestamp) as t, count(*) as n from frames group by all order by all",
    "select * from stats order by all",
    "select dataset, relative_path, bytes from video_files order by all",
]


def test_remote_home_same_answers_as_local(many: tuple[Path, list[Any]], s3: str, tmp_path: Path) -> None:
    home, _ = many
    options = {"endpoint_url": s3, "client_kwargs": {"region_name": "us-east-1"}}
    with QuerySession.open(home, project=PROJECT) as local, QuerySession.open(
        "s3://lerobot/home", storage_options=options, project=PROJECT
    ) as remote:
        assert [d.name for d in remote.datasets] == [d.name for d in local.datasets]
        for sql in COMPARED:
            assert remote.rows(sql) == local.rows(sql), sql
        assert rows(remote, "select root from info order by 1 limit 1") == [{"root": "s3://lerobot/home/datasets/ds-000"}]
        expected = local.rows("select * from dataset_summary")[1]
    # the catalog over a remote home (several datasets read by one view each, `dataset` from the path)
    with pytest.raises(SourceError, match="remote: pass a local catalog path"):
        Catalog("s3://lerobot/home", storage_options=options, project=PROJECT)
    catalog = Catalog("s3://lerobot/home", storage_options=options, project=PROJECT, path=tmp_path / "cat.duckdb")
    result = catalog.materialize("dataset_summary", with_upstream=True)
    got = [tuple(r.values()) for r in result.preview_rows]
    assert [r[:-1] for r in got] == [r[:-1] for r in expected]  # all but `root` (a URL vs a path)


def test_remote_root_and_catalog(many: tuple[Path, list[Any]], s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3)  # the endpoint from the environment, as the CLI documents
    remote_root = "s3://lerobot/fixtures/lerobot-v3-tiny"
    with QuerySession.open(None, [FIXTURE], project=PROJECT) as local, QuerySession.open(None, [remote_root], project=PROJECT) as remote:
        for sql in COMPARED:
            assert remote.rows(sql) == local.rows(sql), sql
    # the catalog over a remote root: views read the s3 files through the registered fsspec filesystem
    catalog = Catalog(tmp_path / "home", roots=[remote_root], project=PROJECT)
    results = {r.name: r for r in catalog.materialize_all()}
    assert results["task_summary"].preview_rows == [
        {"dataset": "lerobot-v3-tiny", "task": "pick the cube", "task_index": 0, "episodes": 2, "frames": 35, "hours": 35 / 30 / 3600},
        {"dataset": "lerobot-v3-tiny", "task": "place the cube", "task_index": 1, "episodes": 1, "frames": 25, "hours": 25 / 30 / 3600},
    ]
    assert results["stg_frames"].row_count == 60


def test_catalog_held_by_another_process_is_a_named_error(tmp_path: Path) -> None:
    """DuckDB lets one process write a file at a time. Dagster steps queue on the duckdb_catalog pool;
    anything else holding the file gets an error naming it, not a wait or a raw IOException."""
    home = tmp_path / "home"
    write_synthetic_home(home, 1, 3, episodes_per_file=3)
    catalog = Catalog(home, project=PROJECT)
    catalog.materialize("stg_info")
    with duckdb_writer_elsewhere(catalog.path, 30), pytest.raises(CatalogBusyError, match="the catalog is in use by another process") as info:
        catalog.materialize("stg_tasks")
    assert str(catalog.path) in str(info.value)
    assert catalog.materialize("stg_tasks").row_count == 3  # free again once the other process is gone

def test_dataset_recorded_by_our_writer(tmp_path: Path) -> None:
    """Our own writer's output with tiny rollover limits (several data, video and episode shards)."""
    helpers = pytest.importorskip("helpers")
    root = tmp_path / "home" / "sessions" / "rec"
    writer, _ = helpers.record(root, [20, 25, 15, 10, 12], data_files_size_in_mb=0.001, video_files_size_in_mb=0.001)
    writer.finalize()
    data_files = sorted(root.glob("data/chunk-*/file-*.parquet"))
    video_files = sorted(root.glob("videos/*/chunk-*/file-*.mp4"))
    assert len(data_files) > 1 and len(video_files) > 2
    with QuerySession.open(tmp_path / "home", project=PROJECT) as session:
        assert rows(session, "select task, episodes, frames from task_summary") == [
            {"task": "pick the cube", "episodes": 3, "frames": 47},
            {"task": "place the cube", "episodes": 2, "frames": 35},
        ]
        [summary] = rows(session, "select * from dataset_summary")
        assert (summary["dataset"], summary["episodes"], summary["frames"], summary["totals_match_info"]) == ("sessions/rec", 5, 82, True)
        assert (summary["data_files"], summary["video_files"]) == (len(data_files), len(video_files))
        assert rows(session, "select video_key, frames, video_bytes from camera_summary") == [
            {"video_key": key, "frames": 82, "video_bytes": sum(p.stat().st_size for p in video_files if f"/{key}/" in str(p))}
            for key in ("observation.images.front", "observation.images.wrist")
        ]
        # the only flags: episodes 3 and 4 (10 and 12 frames) are shorter than 0.5 s at 30 fps
        assert rows(session, "select episode_index, too_short, n_flags from episode_quality where n_flags > 0") == [
            {"episode_index": 3, "too_short": True, "n_flags": 1},
            {"episode_index": 4, "too_short": True, "n_flags": 1},
        ]
