"""Every reader given a dataset's published prefix (format.versions: `v-<n>/` versions beside a
`current.json` pointer) reads the version the pointer names, on a real S3-compatible server (moto on
loopback) and on a local directory laid out the same way; a plain root reads as before, a corrupt
pointer is one error naming current.json, and nothing writes into a published version.

The published prefix holds three versions that cannot be mistaken for one another:
v-000001 is LeRobot's own tiny fixture (3 episodes, 60 frames), v-000002 ours (5 episodes, 54
frames, with its byte index), v-000003 a killed publish (no meta/info.json); the pointer names
v-000002.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import FIXTURE, record
from sql_fixtures import moto_s3, upload
from test_streaming import assert_items_equal

from lerobot_assets.byteindex import ByteIndex, EpisodeReader, build_byte_index
from lerobot_assets.byteindex.episodes import PublishedDatasetError
from lerobot_assets.byteindex.verify import verify_with_ffprobe
from lerobot_assets.checks.validate import validate_dataset
from lerobot_assets.cli.main import main
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.format.versions import POINTER, POINTER_FORMAT, Pointer, PointerError
from lerobot_assets.loading import LeRobotV3Dataset
from lerobot_assets.loading.streaming import StreamingDataset
from lerobot_assets.sql import Catalog, QuerySession, discover_datasets, load_project

s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

FRONT = "observation.images.front"
LENGTHS = [12, 9, 15, 10, 8]  # v-000002
TINY_EPISODES, TINY_FRAMES = 3, 60  # v-000001, LeRobot's fixture
NAME = "datasets/lerobot_dataset"  # the prefix, relative to the home
BUCKET = "lerobot"
PROJECT = load_project()

BAD_POINTERS = {
    "not-json": b"{not json",
    "escaping-version": json.dumps({"format": POINTER_FORMAT, "version": "../x"}).encode(),
}


def write_pointer(prefix: Path, version: str, previous: str | None = None) -> None:
    (prefix / POINTER).write_text(Pointer(version=version, previous=previous).model_dump_json())


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A local home holding one published prefix (see the module docstring)."""
    base = tmp_path_factory.mktemp("published")
    home = base / "home"
    prefix = home / NAME
    shutil.copytree(FIXTURE, prefix / "v-000001")
    writer, _ = record(prefix / "v-000002", LENGTHS)
    writer.finalize()
    build_byte_index(prefix / "v-000002")  # the publisher indexes before publishing
    shutil.copytree(prefix / "v-000002", prefix / "v-000003")
    (prefix / "v-000003/meta/info.json").unlink()
    write_pointer(prefix, "v-000002", "v-000001")
    return {"home": home, "prefix": prefix, "v2": prefix / "v-000002"}


@pytest.fixture
def local_copy(layout: dict[str, Path], tmp_path: Path) -> Path:
    """A copy of the layout's home a test may change (move or break the pointer)."""
    home = tmp_path / "home"
    shutil.copytree(layout["home"], home)
    return home


@pytest.fixture(scope="module")
def s3(layout: dict[str, Path]) -> Any:
    """The layout's home uploaded to s3://lerobot/home, and v-000002 alone as the plain root s3://lerobot/plain/ds."""
    with moto_s3(BUCKET) as endpoint:
        upload(endpoint, layout["home"], f"{BUCKET}/home")
        upload(endpoint, layout["v2"], f"{BUCKET}/plain/ds")
        options = {"endpoint_url": endpoint, "client_kwargs": {"region_name": "us-east-1"}}
        yield {
            "endpoint": endpoint,
            "options": options,
            "prefix": f"s3://{BUCKET}/home/{NAME}",
            "home": f"s3://{BUCKET}/home",
            "plain": f"s3://{BUCKET}/plain/ds",
        }


def s3_fs(s3: Any) -> Any:
    return s3fs.S3FileSystem(endpoint_url=s3["endpoint"], client_kwargs={"region_name": "us-east-1"})


def sql_rows(session: QuerySession, sql: str) -> list[tuple[Any, ...]]:
    return session.rows(sql)[1]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def boundary_items(ds: LeRobotV3Dataset) -> list[int]:
    """The first and last frame of every episode."""
    out = []
    for e in range(ds.num_episodes):
        start, stop = ds.episode_range(e)
        out += [start, stop - 1]
    return out


# ---------------------------------------------------------------------------------------- S3


def test_meta_over_s3_reads_the_pointed_version(s3: Any) -> None:
    meta = DatasetMeta(s3["prefix"], storage_options=s3["options"])
    assert meta.version == "v-000002"
    assert meta.root == f"{s3['prefix']}/v-000002" and meta.fs_root == f"{BUCKET}/home/{NAME}/v-000002"
    assert (meta.info.total_episodes, meta.info.total_frames, meta.num_episodes) == (len(LENGTHS), sum(LENGTHS), len(LENGTHS))
    assert meta.data_file(0, 0) == f"{s3['prefix']}/v-000002/data/chunk-000/file-000.parquet"
    # given the filesystem and its path instead of a URL: the same
    by_fs = DatasetMeta(f"{BUCKET}/home/{NAME}", fs=s3_fs(s3))
    assert by_fs.root == by_fs.fs_root == f"{BUCKET}/home/{NAME}/v-000002" and by_fs.num_episodes == len(LENGTHS)
    # the older version is still there, for readers that were reading it
    assert DatasetMeta(f"{s3['prefix']}/v-000001", storage_options=s3["options"]).info.total_frames == TINY_FRAMES


def test_map_style_reader_over_s3_equals_the_version_read_directly(s3: Any, layout: dict[str, Path]) -> None:
    remote = LeRobotV3Dataset(s3["prefix"], storage_options=s3["options"])
    local = LeRobotV3Dataset(layout["v2"])
    assert remote.root == f"{s3['prefix']}/v-000002"
    assert remote.video_source == "byte_index"  # v-000002's own index, found under the version
    assert len(remote) == len(local) == sum(LENGTHS) and remote.num_episodes == len(LENGTHS)
    for i in boundary_items(local):
        assert_items_equal(remote[i], local[i], i)


def test_streaming_reader_over_s3_reads_the_pointed_version(s3: Any, layout: dict[str, Path]) -> None:
    episodes = [1, 3]
    remote = list(StreamingDataset(s3["prefix"], storage_options=s3["options"], shuffle=False, episodes=episodes))
    local = LeRobotV3Dataset(layout["v2"], episodes=episodes)
    assert len(remote) == len(local) == LENGTHS[1] + LENGTHS[3]
    for i, item in enumerate(remote):
        assert_items_equal({k: v for k, v in item.items() if k != "dataset_index"}, local[i], i)


def test_byte_index_lookup_and_reader_over_s3_follow_the_pointer(s3: Any, layout: dict[str, Path]) -> None:
    index = ByteIndex.load(s3["prefix"], storage_options=s3["options"])
    local = ByteIndex.load(layout["v2"])
    assert index.episodes(FRONT) == list(range(len(LENGTHS)))
    assert [index.segment(FRONT, e) for e in range(len(LENGTHS))] == [local.segment(FRONT, e) for e in range(len(LENGTHS))]
    with EpisodeReader(index, s3["prefix"], storage_options=s3["options"]) as remote_reader, EpisodeReader(local, layout["v2"]) as local_reader:
        assert torch.equal(remote_reader.decode(FRONT, 2).data, local_reader.decode(FRONT, 2).data)
    # an in-memory build reads the version too
    built = build_byte_index(s3["prefix"], storage_options=s3["options"], write=False)
    assert built.tables.frames.equals(build_byte_index(layout["v2"], write=False).tables.frames)


def test_byte_index_build_into_a_published_prefix_is_refused(s3: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fs = s3_fs(s3)
    before = sorted(fs.find(f"{BUCKET}/home/{NAME}"))
    for root in (s3["prefix"], f"{s3['prefix']}/v-000002"):
        with pytest.raises(PublishedDatasetError, match=f"^{s3['prefix']} is a published dataset"):
            build_byte_index(root, storage_options=s3["options"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3["endpoint"])  # the CLI has no storage options: botocore's own variable
    code, out, err = run_cli(capsys, "byte-index", s3["prefix"])
    assert code == 1 and err.count("\n") == 1 and err.startswith(f"error: {s3['prefix']} is a published dataset")
    fs.invalidate_cache()
    assert sorted(fs.find(f"{BUCKET}/home/{NAME}")) == before  # nothing written


def test_sql_over_an_s3_home_sees_one_dataset_at_the_pointed_version(s3: Any) -> None:
    found = discover_datasets(s3["home"], storage_options=s3["options"])
    assert [(d.name, d.path) for d in found] == [(NAME, f"{BUCKET}/home/{NAME}/v-000002")]
    with QuerySession.open(s3["home"], storage_options=s3["options"], project=PROJECT) as session:
        assert sql_rows(session, "select count(*) from episodes") == [(len(LENGTHS),)]
        assert sql_rows(session, "select dataset, count(*) from frames group by dataset") == [(NAME, sum(LENGTHS))]
        assert sql_rows(session, "select dataset, root from info") == [(NAME, f"{s3['prefix']}/v-000002")]
    # the prefix as an explicit root: named by the prefix, read at the version
    with QuerySession.open(None, [s3["prefix"]], storage_options=s3["options"], project=PROJECT) as session:
        assert sql_rows(session, "select dataset, count(*) from episodes group by dataset") == [("lerobot_dataset", len(LENGTHS))]


def test_sql_cli_over_an_s3_prefix_prints_the_version(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    options = ["--storage-option", f"endpoint_url={s3['endpoint']}", "--storage-option", "client_kwargs.region_name=us-east-1"]
    code, out, err = run_cli(capsys, "sql", "--root", s3["prefix"], *options, "--format", "json",
                             "select dataset, root, total_episodes from info")
    assert code == 0, err
    assert json.loads(out) == [{"dataset": "lerobot_dataset", "root": f"{s3['prefix']}/v-000002", "total_episodes": len(LENGTHS)}]


def test_incremental_catalog_follows_the_pointer_when_it_moves(s3: Any, layout: dict[str, Path], tmp_path: Path) -> None:
    """An incremental model keyed on (dataset, file): the same name and relative data file in another
    version is another file, so moving the pointer recomputes it and leaves no row of the old version."""
    fs = s3_fs(s3)
    upload(s3["endpoint"], layout["home"], f"{BUCKET}/moving")
    catalog = Catalog(f"s3://{BUCKET}/moving", storage_options=s3["options"], project=PROJECT, path=tmp_path / "cat.duckdb")
    model = "int_episode_frame_checks"

    def built() -> tuple[list[str], int, int]:
        """(datasets, frames, episodes) of the model's rows."""
        rows = catalog.read_model(model).to_pylist()
        return sorted({r["dataset"] for r in rows}), sum(r["n_frames"] for r in rows), len(rows)

    first = catalog.materialize(model, with_upstream=True)
    assert built() == ([NAME], sum(LENGTHS), len(LENGTHS)) and first.files_computed == 1
    fs.pipe(f"{BUCKET}/moving/{NAME}/{POINTER}", Pointer(version="v-000001", previous="v-000002").model_dump_json().encode())
    moved = catalog.materialize(model, with_upstream=True)
    assert built() == ([NAME], TINY_FRAMES, TINY_EPISODES)
    assert (moved.files_computed, moved.files_reused) == (1, 0)


def test_plain_s3_root_reads_as_before(s3: Any) -> None:
    meta = DatasetMeta(s3["plain"], storage_options=s3["options"])
    assert meta.version is None and meta.root == s3["plain"] and meta.num_episodes == len(LENGTHS)
    reader = LeRobotV3Dataset(s3["plain"], storage_options=s3["options"])
    assert reader.root == s3["plain"] and len(reader) == sum(LENGTHS)
    assert ByteIndex.load(s3["plain"], storage_options=s3["options"]).episodes(FRONT) == list(range(len(LENGTHS)))
    found = discover_datasets(f"s3://{BUCKET}/plain", storage_options=s3["options"])
    assert [(d.name, d.path) for d in found] == [("ds", f"{BUCKET}/plain/ds")]


@pytest.mark.parametrize("bad", sorted(BAD_POINTERS))
def test_corrupt_pointer_over_s3_is_an_error_naming_it(s3: Any, bad: str) -> None:
    prefix = f"{BUCKET}/broken-{bad}/{NAME}"
    fs = s3_fs(s3)
    fs.pipe(f"{prefix}/{POINTER}", BAD_POINTERS[bad])
    where = f"{prefix}/{POINTER}"
    with pytest.raises(PointerError, match=where):
        DatasetMeta(f"s3://{prefix}", storage_options=s3["options"])
    with pytest.raises(PointerError, match=where):
        LeRobotV3Dataset(f"s3://{prefix}", storage_options=s3["options"])
    with pytest.raises(PointerError, match=where):
        ByteIndex.load(f"s3://{prefix}", storage_options=s3["options"])


# ------------------------------------------------------------------------------------- local


def test_local_layout_reads_the_pointed_version_everywhere(layout: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    prefix, v2 = layout["prefix"], layout["v2"]
    meta = DatasetMeta(prefix)
    assert meta.root == v2 and meta.version == "v-000002" and meta.num_episodes == len(LENGTHS)
    assert DatasetMeta(f"file://{prefix}").root == v2
    reader, direct = LeRobotV3Dataset(prefix), LeRobotV3Dataset(v2)
    assert reader.root == v2 and len(reader) == len(direct) == sum(LENGTHS)
    for i in boundary_items(direct)[:4]:
        assert_items_equal(reader[i], direct[i], i)
    streamed = list(StreamingDataset(prefix, shuffle=False, episodes=[4]))
    assert [int(x["frame_index"]) for x in streamed] == list(range(LENGTHS[4]))
    assert ByteIndex.load(prefix).segment(FRONT, 4) == ByteIndex.load(v2).segment(FRONT, 4)
    assert verify_with_ffprobe(prefix, sample=16).ok
    # validate: the version's verdict, and its root in the report
    report = validate_dataset(prefix)
    assert report.ok, [str(p) for p in report.problems]
    assert report.root == v2.absolute() and report.num_episodes == len(LENGTHS) and report.num_frames == sum(LENGTHS)
    code, out, err = run_cli(capsys, "validate", str(prefix))
    assert code == 0 and out.strip().startswith(f"OK {v2}: {len(LENGTHS)} episodes, {sum(LENGTHS)} frames"), (out, err)
    code, out, _ = run_cli(capsys, "info", str(prefix))
    assert code == 0 and f"dataset:     {v2}" in out and f"episodes:    {len(LENGTHS)}" in out


def test_local_discovery_lists_the_prefix_once_and_never_a_version(local_copy: Path) -> None:
    # beside it: a plain dataset (listed as before) and a prefix whose first publish was killed
    # before its pointer was written (versions only: not a dataset yet)
    shutil.copytree(local_copy / NAME / "v-000002", local_copy / "datasets/plain")
    shutil.copytree(local_copy / NAME / "v-000001", local_copy / "datasets/unpublished/v-000001")
    found = discover_datasets(local_copy)
    assert [(d.name, d.path) for d in found] == [
        (NAME, str(local_copy / NAME / "v-000002")),
        ("datasets/plain", str(local_copy / "datasets/plain")),
    ]
    with QuerySession.open(local_copy, project=PROJECT) as session:
        assert sql_rows(session, "select dataset, count(*) from episodes group by all order by 1") == [
            (NAME, len(LENGTHS)), ("datasets/plain", len(LENGTHS)),
        ]
    # the prefix and its current version named explicitly as well: still one dataset
    found = discover_datasets(local_copy, [local_copy / NAME, local_copy / NAME / "v-000002"])
    assert [d.name for d in found] == [NAME, "datasets/plain"] and found[0].explicit


def test_a_reader_stays_on_the_version_it_opened(local_copy: Path) -> None:
    prefix = local_copy / NAME
    reader = LeRobotV3Dataset(prefix)
    first = reader[0]
    write_pointer(prefix, "v-000001", "v-000002")  # published meanwhile
    assert reader.root == prefix / "v-000002" and len(reader) == sum(LENGTHS)
    assert_items_equal(reader[0], first, 0)
    assert len(LeRobotV3Dataset(prefix)) == TINY_FRAMES  # a reader opened now reads the new version


def test_local_byte_index_build_into_a_published_prefix_is_refused(local_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = local_copy / NAME
    index_dir = prefix / "v-000002/meta/byte_index"
    stamps = {p.name: p.stat().st_mtime_ns for p in index_dir.iterdir()}
    for root in (prefix, prefix / "v-000002"):
        code, out, err = run_cli(capsys, "byte-index", str(root))
        assert code == 1 and err.count("\n") == 1 and err.startswith(f"error: {prefix} is a published dataset"), err
    assert {p.name: p.stat().st_mtime_ns for p in index_dir.iterdir()} == stamps
    assert not (prefix / "meta").exists()
    # a plain root (here: a copy of the version) is indexed as before
    shutil.copytree(prefix / "v-000002", local_copy / "plain")
    code, out, err = run_cli(capsys, "byte-index", str(local_copy / "plain"))
    assert code == 0 and "(0 indexed, 2 unchanged)" in out, (out, err)


@pytest.mark.parametrize("bad", sorted(BAD_POINTERS))
def test_corrupt_local_pointer_is_a_one_line_error_naming_it(local_copy: Path, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = local_copy / NAME
    (prefix / POINTER).write_bytes(BAD_POINTERS[bad])
    where = str(prefix / POINTER)
    for reader in (DatasetMeta, LeRobotV3Dataset, ByteIndex.load, validate_dataset):
        with pytest.raises(PointerError, match=where):
            reader(prefix)  # type: ignore[operator]
    for argv in (("validate", str(prefix)), ("info", str(prefix)), ("sql", "--root", str(prefix), "select 1")):
        code, out, err = run_cli(capsys, *argv)
        assert code == 1 and err.count("\n") == 1 and err.startswith("error: ") and where in err, (argv, err)
    # under a home: left out with a warning naming it; the rest of the home still answers
    shutil.copytree(prefix / "v-000002", local_copy / "datasets/plain")
    code, out, err = run_cli(capsys, "sql", "--home", str(local_copy), "--format", "csv", "select dataset, count(*) as n from episodes group by 1")
    assert code == 0 and out.split() == ["dataset,n", f"datasets/plain,{len(LENGTHS)}"], (out, err)
    assert f"warning: skipped dataset {NAME}" in err and where in err


def test_discovery_skips_a_data_homes_folders_that_hold_no_dataset(tmp_path: Path) -> None:
    """In a lerobot-assets data home (it has sessions/ and datasets/), raw/, inbox/, checks/, previews/,
    training/ ... are not walked: on object storage listing them was most of a SQL step's requests."""
    import shutil

    from lerobot_assets.sql.discovery import discover_datasets

    home = tmp_path / "home"
    for rel in ("sessions/s1", "datasets/merged", "raw/s1", "previews/x"):
        shutil.copytree(FIXTURE, home / rel)
    assert [d.name for d in discover_datasets(home)] == ["datasets/merged", "sessions/s1"]
    other = tmp_path / "just_datasets"  # any other folder of datasets is walked whole
    for rel in ("sessions/s1", "raw/s1"):
        shutil.copytree(FIXTURE, other / rel)
    assert [d.name for d in discover_datasets(other)] == ["raw/s1", "sessions/s1"]


def test_listings_and_json_of_a_published_version_are_read_once_per_process(tmp_path: Path) -> None:
    import fsspec

    from lerobot_assets.sql.discovery import DatasetRoot
    from lerobot_assets.sql.resolution import match_files

    class Counting(fsspec.implementations.local.LocalFileSystem):
        cachable = False
        finds = 0

        def find(self, *args: Any, **kwargs: Any) -> Any:
            type(self).finds += 1
            return super().find(*args, **kwargs)

    fs = Counting()
    version = DatasetRoot(name="d", path=str(FIXTURE), fs=fs, immutable=True)
    plain = DatasetRoot(name="d", path=str(FIXTURE), fs=fs)
    first = match_files(version, "data/*/*.parquet")
    assert first and match_files(version, "data/*/*.parquet") == first and Counting.finds == 1
    assert match_files(plain, "data/*/*.parquet") == first and match_files(plain, "data/*/*.parquet") == first
    assert Counting.finds == 3  # a plain root may change: listed each time
