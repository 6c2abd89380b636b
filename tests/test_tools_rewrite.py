"""The rewrite engine through delete_episodes and split_dataset: values of the output (decoded
frames, renumbered indices, exact stats, tasks, file layout), inputs byte-for-byte unchanged."""

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import FIXTURE, record
from tools_support import tree_digest

from lerobot_assets.checks.validate import validate_dataset
from lerobot_assets.format.atomic import write_parquet
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.format.stats_json import QUANTILES, flatten_stats, unflatten_stats, write_stats
from lerobot_assets.loading import LeRobotV3Dataset
from lerobot_assets.stats.dataset import compute_dataset_stats, read_image_histograms
from lerobot_assets.stats.image import image_stats_from_histogram
from lerobot_assets.stats.numeric import numeric_stats
from lerobot_assets.tools.delete import delete_episodes
from lerobot_assets.tools.output import OutputExistsError
from lerobot_assets.tools.rewrite import rewrite_dataset
from lerobot_assets.tools.split import allocate_fractions, split_dataset
from lerobot_assets.video.config import VideoEncoderConfig

CAMS = ["observation.images.front", "observation.images.wrist"]
NUMERIC = ["observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"]


# ------------------------------------------------------------------------------------- oracles
def items(root: Path) -> list[dict]:
    ds = LeRobotV3Dataset(root, return_uint8=True, video_source="file")
    return [ds[i] for i in range(len(ds))]


def source_frames(root: Path, episodes: list[int]) -> list[dict]:
    """The items of `episodes` (in that order) of the dataset at root."""
    all_items = items(root)
    return [it for e in episodes for it in all_items if int(it["episode_index"]) == e]


def assert_same_frames(got: list[dict], want: list[dict], keys: list[str]) -> None:
    assert len(got) == len(want)
    for j, (a, b) in enumerate(zip(got, want)):
        for k in keys:
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), (j, k)
        assert a["task"] == b["task"]


def data_table(root: Path) -> pa.Table:
    meta = DatasetMeta(root)
    files = sorted({(r["data/chunk_index"], r["data/file_index"]) for r in meta.episodes.to_pylist()})
    return pa.concat_tables([pq.read_table(root / f"data/chunk-{c:03d}/file-{f:03d}.parquet") for c, f in files])


def column(table: pa.Table, key: str) -> np.ndarray:
    return np.asarray(table.column(key).to_pylist(), dtype=np.float64).reshape(table.num_rows, -1)


def assert_stats_equal_numpy(stats: dict, key: str, values: np.ndarray) -> None:
    """stats.json entry `key` against numpy over `values` (N, D)."""
    s = stats[key]
    np.testing.assert_allclose(s["min"], values.min(0), rtol=1e-6)
    np.testing.assert_allclose(s["max"], values.max(0), rtol=1e-6)
    np.testing.assert_allclose(s["mean"], values.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(s["std"], values.std(0), rtol=1e-6, atol=1e-9)
    assert s["count"] == [len(values)]
    for name, q in QUANTILES.items():
        np.testing.assert_allclose(s[name], np.quantile(values, q, axis=0), rtol=1e-6, atol=1e-9)


def check_output(out: Path, src: Path, kept: list[int]) -> None:
    """Everything a kept-episodes output must hold, against the source (the oracle)."""
    report = validate_dataset(out)
    assert report.ok, [str(p) for p in report.errors]
    meta, smeta = DatasetMeta(out), DatasetMeta(src)
    assert meta.episodes.column("episode_index").to_pylist() == list(range(len(kept)))
    src_rows = {r["episode_index"]: r for r in smeta.episodes.to_pylist()}
    lengths = [src_rows[e]["length"] for e in kept]
    assert meta.episodes.column("length").to_pylist() == lengths
    assert meta.info.total_frames == sum(lengths) and meta.info.total_episodes == len(kept)
    assert meta.info.splits == {"train": f"0:{len(kept)}"}
    assert meta.info.robot_type == smeta.info.robot_type

    # Data: renumbered indices, unchanged frame_index/timestamp/values, one row group per episode.
    data, sdata = data_table(out), data_table(src)
    n = data.num_rows
    assert data.column("index").to_pylist() == list(range(n))
    assert data.column("episode_index").to_pylist() == [i for i, e in enumerate(kept) for _ in range(src_rows[e]["length"])]
    sep = np.asarray(sdata.column("episode_index").to_pylist())
    order = np.concatenate([np.flatnonzero(sep == e) for e in kept])
    carried = [k for k in ["observation.state", "action", "timestamp", "frame_index"] if k in meta.info.features]
    for key in carried:
        assert np.array_equal(column(data, key), column(sdata, key)[order]), key
    src_tasks = [smeta.tasks[i] for i in np.asarray(sdata.column("task_index").to_pylist())[order]]
    assert [meta.tasks[i] for i in data.column("task_index").to_pylist()] == src_tasks
    assert meta.tasks == list(dict.fromkeys(src_tasks))  # first appearance, only tasks in use
    for r in meta.episodes.to_pylist():
        pf = pq.ParquetFile(out / f"data/chunk-{r['data/chunk_index']:03d}/file-{r['data/file_index']:03d}.parquet")
        assert r["length"] in [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]

    # stats.json: numpy over the kept frames, with the NEW index values.
    stats = json.loads((out / "meta/stats.json").read_text())
    expected = {k: column(sdata, k)[order] for k in carried}
    expected["index"] = np.arange(n, dtype=np.float64)[:, None]
    expected["episode_index"] = column(data, "episode_index")
    expected["task_index"] = np.asarray([meta.tasks.index(t) for t in src_tasks], dtype=np.float64)[:, None]
    for key, values in expected.items():
        assert_stats_equal_numpy(stats, key, values)
    # Per-episode stats: exact over each episode's new values (LeRobot leaves index stats stale).
    for r in meta.episodes.to_pylist():
        ep_stats = unflatten_stats(r)
        rows = np.arange(r["dataset_from_index"], r["dataset_to_index"])
        for key, values in expected.items():
            np.testing.assert_allclose(ep_stats[key]["mean"], values[rows].mean(0), rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(ep_stats[key]["q50"], np.quantile(values[rows], 0.5, axis=0), rtol=1e-6, atol=1e-9)
    # Image stats: copied with the histogram sidecar rows where the source has them; decoded from
    # the output's video where it has none (LeRobot-written), so every episode has exact ones.
    src_h, out_h = read_image_histograms(src, meta.info.camera_keys), read_image_histograms(out, meta.info.camera_keys)
    for cam in meta.info.camera_keys:
        assert sorted(out_h[cam]) == list(range(len(kept)))
        for i, (e, r) in enumerate(zip(kept, meta.episodes.to_pylist())):
            if e in src_h[cam]:
                assert np.array_equal(out_h[cam][i], src_h[cam][e])
                assert r[f"stats/{cam}/q50"] == src_rows[e][f"stats/{cam}/q50"]
            want = image_stats_from_histogram(out_h[cam][i], r["length"])
            np.testing.assert_allclose(r[f"stats/{cam}/mean"], want["mean"], rtol=1e-9)

    # Decoded frames: the kept frames of the input, bit for bit (packets are copied).
    assert_same_frames(items(out), source_frames(src, kept), [*meta.info.camera_keys, "observation.state"])


def files_under(root: Path, top: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / top).rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------- datasets
@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> Path:
    """5 episodes in one data file and one video file per camera."""
    root = tmp_path_factory.mktemp("ours") / "ds"
    w, _ = record(root, [6, 9, 5, 8, 7])
    w.finalize()
    return root


@pytest.fixture(scope="module")
def small_files(tmp_path_factory) -> Path:
    """One episode per data and video file, two files per chunk directory."""
    root = tmp_path_factory.mktemp("small") / "ds"
    w, _ = record(root, [5, 6, 4, 7, 5], data_files_size_in_mb=0.001, video_files_size_in_mb=0.001, chunks_size=2)
    w.finalize()
    return root


def split_episode_metadata(root: Path, at: int) -> None:
    """Turn the one-episode dataset at root into two episodes, the second starting at frame `at`
    (mid-GOP when that frame is not a keyframe): data, episode rows, stats; histograms dropped."""
    meta = DatasetMeta(root)
    (row,) = meta.episodes.to_pylist()
    fps = meta.info.fps
    path = root / "data/chunk-000/file-000.parquet"
    t = pq.read_table(path)
    n = t.num_rows
    frame = np.r_[np.arange(at), np.arange(n - at)]
    ep = np.r_[np.zeros(at, np.int64), np.ones(n - at, np.int64)]
    t = t.set_column(t.schema.get_field_index("frame_index"), "frame_index", pa.array(frame, pa.int64()))
    t = t.set_column(t.schema.get_field_index("episode_index"), "episode_index", pa.array(ep, pa.int64()))
    t = t.set_column(t.schema.get_field_index("timestamp"), "timestamp", pa.array((frame / fps).astype(np.float32)))
    write_parquet(path, [t.slice(0, at), t.slice(at)])
    rows = []
    for i, (lo, hi) in enumerate([(0, at), (at, n)]):
        r = dict(row, episode_index=i, length=hi - lo, dataset_from_index=lo, dataset_to_index=hi)
        for cam in CAMS:
            r[f"videos/{cam}/from_timestamp"], r[f"videos/{cam}/to_timestamp"] = lo / fps, hi / fps
        part = t.slice(lo, hi - lo)
        r.update(flatten_stats({k: numeric_stats(np.asarray(part.column(k).to_pylist())) for k in NUMERIC}))
        rows.append(r)
    ep_path = root / "meta/episodes/chunk-000/file-000.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(ep_path)), ep_path)
    shutil.rmtree(root / "meta/image_histograms")
    info = json.loads((root / "meta/info.json").read_text())
    info["total_episodes"], info["splits"] = 2, {"train": "0:2"}
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    write_stats(root, compute_dataset_stats(root))


@pytest.fixture(scope="module")
def mid_gop(tmp_path_factory) -> tuple[Path, int]:
    """H.264 with B-frames (g=4), one encoded episode split into two at a non-keyframe whose
    neighbours reference across the boundary."""
    root = tmp_path_factory.mktemp("gop") / "ds"
    w, _ = record(root, [12], encoder=VideoEncoderConfig(vcodec="libx264", g=4))
    w.finalize()
    with av.open(str(root / f"videos/{CAMS[0]}/chunk-000/file-000.mp4")) as c:
        s = c.streams.video[0]
        packets = [(p.pts // 512, p.is_keyframe) for p in c.demux(s) if p.size]
    keys = {f for f, k in packets if k}
    decode_pos = {f: i for i, (f, _) in enumerate(packets)}
    # A non-keyframe boundary where some earlier frame decodes after the boundary frame (a B-frame
    # referencing it): the cut must keep both the leading keyframe and that reference.
    at = next(f for f in range(2, 12) if f not in keys and any(decode_pos[g] > decode_pos[f] for g in range(f)))
    split_episode_metadata(root, at)
    assert validate_dataset(root).ok
    return root, at


# ------------------------------------------------------------------------------------- delete
def test_delete_on_lerobot_fixture(tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(FIXTURE, src)
    info = json.loads((src / "meta/info.json").read_text())
    info["tools"] = [{"name": "say", "description": "speak"}]  # LeRobot's create drops it
    (src / "meta/info.json").write_text(json.dumps(info, indent=4))
    before = tree_digest(src)
    result = delete_episodes(src, [1], tmp_path / "out")
    assert tree_digest(src) == before
    assert (result.episodes, result.frames) == (2, 35)
    assert result.bytes > 0 and result.output == tmp_path / "out"
    check_output(tmp_path / "out", src, [0, 2])
    out_info = json.loads((tmp_path / "out/meta/info.json").read_text())
    assert out_info["tools"] == info["tools"]
    assert out_info["features"][CAMS[0]]["info"] == info["features"][CAMS[0]]["info"]
    assert DatasetMeta(tmp_path / "out").tasks == ["pick the cube"]
    assert "1 cut by packet copy" in result.summary()


def test_delete_cuts_mixed_files_of_ours(tmp_path: Path, ours: Path) -> None:
    before = tree_digest(ours)
    result = delete_episodes(ours, [1, 3], tmp_path / "out")
    assert tree_digest(ours) == before
    check_output(tmp_path / "out", ours, [0, 2, 4])
    rows = DatasetMeta(tmp_path / "out").episodes.to_pylist()
    for cam in CAMS:  # one output file, segments back to back from 0
        starts = [r[f"videos/{cam}/from_timestamp"] for r in rows]
        ends = [r[f"videos/{cam}/to_timestamp"] for r in rows]
        np.testing.assert_allclose(starts, [0.0, *ends[:-1]], atol=1e-9)
        np.testing.assert_allclose(np.diff([0.0, *ends]), [6 / 30, 5 / 30, 7 / 30], atol=1e-9)
    assert files_under(tmp_path / "out", "videos") == [f"videos/{c}/chunk-000/file-000.mp4" for c in sorted(CAMS)]
    assert "cut by packet copy" in result.summary()


def test_delete_copies_whole_files_and_numbers_them_without_gaps(tmp_path: Path, small_files: Path) -> None:
    meta = DatasetMeta(small_files)
    src_rows = meta.episodes.to_pylist()
    assert len({r["data/file_index"] + 10 * r["data/chunk_index"] for r in src_rows}) == 5  # one file each
    delete_episodes(small_files, [0, 3], tmp_path / "out")
    check_output(tmp_path / "out", small_files, [1, 2, 4])
    out = tmp_path / "out"
    rows = DatasetMeta(out).episodes.to_pylist()
    # chunks_size 2: (0,0), (0,1), (1,0) - LeRobot keeps the source numbers, with gaps.
    assert [(r["data/chunk_index"], r["data/file_index"]) for r in rows] == [(0, 0), (0, 1), (1, 0)]
    for cam in CAMS:
        assert [(r[f"videos/{cam}/chunk_index"], r[f"videos/{cam}/file_index"]) for r in rows] == [(0, 0), (0, 1), (1, 0)]
        for r, e in zip(rows, [1, 2, 4]):  # whole files: the same bytes
            s = src_rows[e]
            a = out / f"videos/{cam}/chunk-{r[f'videos/{cam}/chunk_index']:03d}/file-{r[f'videos/{cam}/file_index']:03d}.mp4"
            b = small_files / f"videos/{cam}/chunk-{s[f'videos/{cam}/chunk_index']:03d}/file-{s[f'videos/{cam}/file_index']:03d}.mp4"
            assert a.read_bytes() == b.read_bytes()
    assert json.loads((out / "meta/info.json").read_text())["chunks_size"] == 2


def test_output_rolls_files_over_at_the_inputs_limits(tmp_path: Path, ours: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(ours, src)
    info = json.loads((src / "meta/info.json").read_text())
    info.update(data_files_size_in_mb=0.0001, video_files_size_in_mb=0.0001, chunks_size=3)
    (src / "meta/info.json").write_text(json.dumps(info, indent=4))
    delete_episodes(src, [2], tmp_path / "out")
    check_output(tmp_path / "out", src, [0, 1, 3, 4])
    out = tmp_path / "out"
    rows = DatasetMeta(out).episodes.to_pylist()
    locs = [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert [(r["data/chunk_index"], r["data/file_index"]) for r in rows] == locs
    for cam in CAMS:
        assert [(r[f"videos/{cam}/chunk_index"], r[f"videos/{cam}/file_index"]) for r in rows] == locs
        assert all(r[f"videos/{cam}/from_timestamp"] == 0.0 for r in rows)
    out_info = json.loads((out / "meta/info.json").read_text())
    assert (out_info["data_files_size_in_mb"], out_info["video_files_size_in_mb"], out_info["chunks_size"]) == (0.0001, 0.0001, 3)


@pytest.mark.parametrize("drop", [0, 1])
def test_mid_gop_boundary_is_cut_from_the_keyframe_before(tmp_path: Path, mid_gop: tuple[Path, int], drop: int) -> None:
    src, at = mid_gop
    keep = [1 - drop]
    result = delete_episodes(src, [drop], tmp_path / "out")
    check_output(tmp_path / "out", src, keep)
    out = tmp_path / "out"
    row = DatasetMeta(out).episodes.to_pylist()[0]
    with av.open(str(out / f"videos/{CAMS[0]}/chunk-000/file-000.mp4")) as c:
        frames = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    # Leading frames from the keyframe (and the B-frame reference after the cut) stay, unreferenced.
    assert frames > row["length"]
    if keep == [1]:
        assert row[f"videos/{CAMS[0]}/from_timestamp"] > 0
    assert "not starting on a keyframe" in result.summary() or keep == [0]


def test_annotated_columns_are_carried_through(tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(FIXTURE, src)
    path = src / "data/chunk-000/file-000.parquet"
    t = pq.read_table(path)
    n = t.num_rows
    persistent = [[f"note {i}", "x"] if i % 3 else [] for i in range(n)]
    events = [None if i % 2 else f"event {i}" for i in range(n)]
    t = t.append_column("language_persistent", pa.array(persistent, pa.list_(pa.string())))
    t = t.append_column("language_events", pa.array(events, pa.string()))
    eps = t.column("episode_index").to_pylist()
    write_parquet(path, [t.filter(pa.array([e == k for e in eps])) for k in range(3)])
    delete_episodes(src, [0], tmp_path / "out")
    check_output(tmp_path / "out", src, [1, 2])
    out = pq.read_table(tmp_path / "out/data/chunk-000/file-000.parquet")
    assert out.column("language_persistent").to_pylist() == persistent[20:]
    assert out.column("language_events").to_pylist() == events[20:]
    assert "language_persistent" not in json.loads((tmp_path / "out/meta/stats.json").read_text())


def test_delete_errors_write_nothing(tmp_path: Path) -> None:
    before = tree_digest(FIXTURE)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="no episodes to delete"):
        delete_episodes(FIXTURE, [], out)
    with pytest.raises(ValueError, match="unknown episode 57 of 3"):
        delete_episodes(FIXTURE, [1, 57], out)
    with pytest.raises(ValueError, match="all 3 episodes"):
        delete_episodes(FIXTURE, [0, 1, 2], out)
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        delete_episodes(FIXTURE, [1], out)
    with pytest.raises(OutputExistsError, match="not a dataset"):
        delete_episodes(FIXTURE, [1], out, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    assert tree_digest(FIXTURE) == before


def test_overwrite_replaces_an_earlier_output(tmp_path: Path) -> None:
    delete_episodes(FIXTURE, [1], tmp_path / "out")
    delete_episodes(FIXTURE, [0, 2], tmp_path / "out", overwrite=True)
    assert DatasetMeta(tmp_path / "out").info.total_frames == 25


# ------------------------------------------------------------------------------------- split
def test_largest_remainder_keeps_every_episode() -> None:
    # LeRobot: int(9.5) = 9 for train, int(0.5) = 0 for val (skipped): episode 9 is lost.
    assert allocate_fractions({"train": 0.95, "val": 0.05}, 10) == {"train": list(range(9)), "val": [9]}
    got = allocate_fractions({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10)
    assert sorted(e for v in got.values() for e in v) == list(range(10))
    assert [len(v) for v in got.values()] == [4, 3, 3]
    perm = np.random.default_rng(7).permutation(10)
    assert allocate_fractions({"train": 0.8, "val": 0.2}, 10, seed=7) == {
        "train": sorted(perm[:8].tolist()),
        "val": sorted(perm[8:].tolist()),
    }
    with pytest.raises(ValueError, match="'val' gets zero of 3"):
        allocate_fractions({"train": 0.95, "val": 0.05}, 3)
    with pytest.raises(ValueError, match="sum to"):
        allocate_fractions({"train": 0.8, "val": 0.3}, 10)


def test_split_fixture_by_fractions(tmp_path: Path) -> None:
    before = tree_digest(FIXTURE)
    results = split_dataset(FIXTURE, {"train": 2 / 3, "val": 1 / 3}, tmp_path / "splits")
    assert tree_digest(FIXTURE) == before
    assert {k: (r.episodes, r.frames) for k, r in results.items()} == {"train": (2, 45), "val": (1, 15)}
    check_output(tmp_path / "splits/train", FIXTURE, [0, 1])
    check_output(tmp_path / "splits/val", FIXTURE, [2])


def test_split_explicit_lists_and_seeded(tmp_path: Path, ours: Path) -> None:
    split_dataset(ours, {"a": [4, 0], "b": [2]}, tmp_path / "lists")
    check_output(tmp_path / "lists/a", ours, [0, 4])
    check_output(tmp_path / "lists/b", ours, [2])
    results = split_dataset(ours, {"train": 0.6, "val": 0.4}, tmp_path / "seeded", seed=3)
    perm = np.random.default_rng(3).permutation(5)
    assert results["val"].episodes == 2
    check_output(tmp_path / "seeded/val", ours, sorted(perm[3:].tolist()))


def test_split_errors_write_nothing(tmp_path: Path) -> None:
    before = tree_digest(FIXTURE)
    out = tmp_path / "splits"
    with pytest.raises(ValueError, match="episode 1 is in both split 'a' and split 'b'"):
        split_dataset(FIXTURE, {"a": [0, 1], "b": [1, 2]}, out)
    with pytest.raises(ValueError, match="unknown episode 5 of 3"):
        split_dataset(FIXTURE, {"a": [0], "b": [5]}, out)
    with pytest.raises(ValueError, match="'val' gets zero"):
        split_dataset(FIXTURE, {"train": 0.95, "val": 0.05}, out)
    with pytest.raises(ValueError, match="split name"):
        split_dataset(FIXTURE, {"../x": 0.5, "b": 0.5}, out)
    with pytest.raises(ValueError, match="sum to"):
        split_dataset(FIXTURE, {"a": 0.5, "b": 0.6}, out)
    assert not out.exists()
    split_dataset(FIXTURE, {"a": [0]}, out)
    with pytest.raises(OutputExistsError):
        split_dataset(FIXTURE, {"b": [1], "a": [2]}, out)
    assert not (out / "b").exists()  # b was not written: a's existence was checked first
    split_dataset(FIXTURE, {"b": [1], "a": [2]}, out, overwrite=True)
    assert DatasetMeta(out / "a").info.total_frames == 15
    assert tree_digest(FIXTURE) == before


def test_a_failing_split_swaps_in_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lerobot_assets.tools.split as split_module

    calls = []
    real = split_module.rewrite_dataset

    def failing_second(src, tmp, keep, *args, **kwargs):
        calls.append(keep)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(src, tmp, keep, *args, **kwargs)

    monkeypatch.setattr(split_module, "rewrite_dataset", failing_second)
    with pytest.raises(RuntimeError, match="disk full"):
        split_dataset(FIXTURE, {"a": [0], "b": [1]}, tmp_path / "splits")
    assert not (tmp_path / "splits").exists()


def test_b_frame_segments_join_without_gaps(tmp_path: Path) -> None:
    """H.264 with B-frames: each segment's decode timestamps start before its first pts; joined
    segments must still be back to back (no gap, no overlap) and decode to the same frames."""
    src = tmp_path / "in"
    w, _ = record(src, [6, 7, 5, 6], encoder=VideoEncoderConfig(vcodec="libx264", g=4))
    w.finalize()
    seen: list[tuple[str, int, int]] = []
    delete_episodes(src, [1], tmp_path / "out", progress=lambda label, done, total: seen.append((label, done, total)))
    check_output(tmp_path / "out", src, [0, 2, 3])
    rows = DatasetMeta(tmp_path / "out").episodes.to_pylist()
    for cam in CAMS:
        np.testing.assert_allclose(
            [r[f"videos/{cam}/from_timestamp"] for r in rows], [0.0, 6 / 30, 11 / 30], atol=1e-9
        )
    assert ("data", 3, 3) in seen and (f"video {CAMS[0]}", 1, 1) in seen


def test_remote_input_is_read_through_fsspec(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.put(str(FIXTURE) + "/", "/rewrite-fixture", recursive=True)
    try:
        results = split_dataset("memory://rewrite-fixture", {"a": [2], "b": [0, 1]}, tmp_path / "splits")
        assert (results["a"].frames, results["b"].frames) == (15, 45)
        check_output(tmp_path / "splits/a", FIXTURE, [2])
    finally:
        fs.rm("/rewrite-fixture", recursive=True)


def test_published_prefix_input_is_read_at_its_version(tmp_path: Path) -> None:
    """A prefix holding current.json (what a remote data home publishes), remote or synced to local
    disk: the edit reads the version the pointer names, never the prefix's other versions."""
    import shutil

    import fsspec

    from lerobot_assets.format.versions import POINTER, Pointer

    local = tmp_path / "published"
    shutil.copytree(FIXTURE, local / "v-000001")
    (local / "v-000002" / "meta").mkdir(parents=True)  # a killed publish: no info.json
    (local / POINTER).write_text(Pointer(version="v-000001").model_dump_json())
    fs = fsspec.filesystem("memory")
    fs.put(str(local) + "/", "/published-fixture", recursive=True)
    try:
        for source, out in (("memory://published-fixture", "remote"), (local, "local")):
            results = split_dataset(source, {"a": [2], "b": [0, 1]}, tmp_path / out)
            assert (results["a"].frames, results["b"].frames) == (15, 45)
            check_output(tmp_path / out / "a", FIXTURE, [2])
    finally:
        fs.rm("/published-fixture", recursive=True)


def test_engine_keeps_the_order_it_is_given(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    summary = rewrite_dataset(FIXTURE, out, [2, 0])
    assert (summary.episodes, summary.frames) == (2, 35)
    check_output(out, FIXTURE, [2, 0])
    with pytest.raises(ValueError, match="kept twice"):
        rewrite_dataset(FIXTURE, tmp_path, [0, 0])
