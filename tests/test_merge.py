"""merge_datasets: stream-copy merge, renumbering, append vs rebuild, never damaging the output."""

import json
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import FEATURES, FIXTURE, make_frame, record

from lerobot_assets.format import DatasetMeta
from lerobot_assets.recording import DatasetWriter
from lerobot_assets.tools.merge import SOURCES_PATH, merge_datasets
from lerobot_assets.video.probe import video_frame_count

KEY = "observation.images.front"


def decode_all(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(float(f.pts * s.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(s)]


def record_with_tasks(root: Path, lengths: list[int], tasks: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = DatasetWriter.create(root, fps=30, features=FEATURES, robot_type="so100")  # as helpers.record
    for n, task in zip(lengths, tasks):
        for t in range(n):
            w.add_frame(make_frame(rng, t + seed, task))
        w.save_episode()
    w.finalize()


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sessions")
    specs = {
        "s0": ([6, 7], ["pick", "place"], 0),
        "s1": ([5], ["stack"], 1),
        "s2": ([8, 4], ["place", "pick"], 2),
    }
    out = {}
    for name, (lengths, tasks, seed) in specs.items():
        record_with_tasks(base / name, lengths, tasks, seed)
        out[name] = base / name
    return out


def check_merged(out: Path, parts: list[Path]) -> None:
    meta = DatasetMeta(out)
    srcs = [DatasetMeta(p) for p in parts]
    assert meta.info.total_episodes == sum(s.info.total_episodes for s in srcs)
    assert meta.info.total_frames == sum(s.info.total_frames for s in srcs)
    data = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    assert data["index"] == list(range(meta.info.total_frames))
    ep = 0
    offset = 0
    merged_frames = decode_all(out / f"videos/{KEY}/chunk-000/file-000.mp4")
    assert len(merged_frames) == meta.info.total_frames
    for src in srcs:
        sdata = pq.read_table(src.root / "data/chunk-000/file-000.parquet").to_pydict()
        src_frames = decode_all(src.root / f"videos/{KEY}/chunk-000/file-000.mp4")
        for pos in range(src.num_episodes):
            srow, mrow = src.episode(pos), meta.episode(ep)
            assert mrow["episode_index"] == ep and mrow["length"] == srow["length"]
            assert mrow["tasks"] == srow["tasks"]
            a, b = mrow["dataset_from_index"], mrow["dataset_to_index"]
            sa, sb = srow["dataset_from_index"], srow["dataset_to_index"]
            assert data["episode_index"][a:b] == [ep] * (b - a)
            assert data["action"][a:b] == sdata["action"][sa:sb]
            # task_index renumbered but still pointing at the same task string
            assert [meta.tasks[i] for i in data["task_index"][a:b]] == [src.tasks[i] for i in sdata["task_index"][sa:sb]]
            # The video segment moved by stream copy: decoded pixels are bit-identical.
            t0 = mrow[f"videos/{KEY}/from_timestamp"]
            i0 = round(t0 * 30)
            assert merged_frames[i0][0] == pytest.approx(t0, abs=1e-6)
            np.testing.assert_array_equal(merged_frames[i0 + 1][1], src_frames[round(srow[f"videos/{KEY}/from_timestamp"] * 30) + 1][1])
            # per-episode stats of renumbered index features are recomputed
            ep_stats = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()[ep]
            assert ep_stats["stats/episode_index/min"] == [float(ep)]
            assert ep_stats["stats/index/max"] == [float(b - 1)]
            ep += 1
        offset += src.info.total_frames
    stats = json.loads((out / "meta/stats.json").read_text())
    assert stats["index"]["max"] == [float(meta.info.total_frames - 1)]
    action = np.array(data["action"], dtype=np.float64)
    np.testing.assert_allclose(stats["action"]["q10"], np.quantile(action, 0.1, axis=0), rtol=1e-12)


def test_merge_renumbers_and_stream_copies(tmp_path, sessions):
    parts = [sessions["s0"], sessions["s1"], sessions["s2"]]
    res = merge_datasets([(p.name, p) for p in parts], tmp_path / "merged")
    assert (res.mode, res.episodes, res.frames) == ("rebuild", 5, 30)
    assert DatasetMeta(tmp_path / "merged").tasks == ["pick", "place", "stack"]
    check_merged(tmp_path / "merged", parts)


def test_append_only_new_sessions_equals_rebuild(tmp_path, sessions):
    out = tmp_path / "merged"
    first = merge_datasets([("s0", sessions["s0"]), ("s1", sessions["s1"])], out)
    assert first.mode == "rebuild"
    video_before = (out / f"videos/{KEY}/chunk-000/file-000.mp4").stat().st_ino
    res = merge_datasets([("s0", sessions["s0"]), ("s1", sessions["s1"]), ("s2", sessions["s2"])], out)
    assert (res.mode, res.sessions_added, res.episodes) == ("append", ["s2"], 5)
    check_merged(out, [sessions["s0"], sessions["s1"], sessions["s2"]])
    assert (out / f"videos/{KEY}/chunk-000/file-000.mp4").stat().st_ino != video_before
    again = merge_datasets([("s0", sessions["s0"]), ("s1", sessions["s1"]), ("s2", sessions["s2"])], out)
    assert again.mode == "unchanged"
    rebuilt = merge_datasets([(n, sessions[n]) for n in ("s0", "s1", "s2")], tmp_path / "fresh")
    a = pq.read_table(out / "data/chunk-000/file-000.parquet")
    b = pq.read_table(tmp_path / "fresh/data/chunk-000/file-000.parquet")
    assert a.equals(b) and rebuilt.frames == res.frames
    assert json.loads((out / "meta/stats.json").read_text()) == json.loads((tmp_path / "fresh/meta/stats.json").read_text())


def test_changed_session_triggers_rebuild(tmp_path, sessions):
    s0 = tmp_path / "s0"
    shutil.copytree(sessions["s0"], s0)
    out = tmp_path / "merged"
    merge_datasets([("s0", s0), ("s1", sessions["s1"])], out)
    shutil.rmtree(s0)
    record_with_tasks(s0, [9], ["changed"], seed=7)  # re-materialized session
    res = merge_datasets([("s0", s0), ("s1", sessions["s1"])], out)
    assert res.mode == "rebuild" and res.episodes == 2 and res.frames == 14
    meta = DatasetMeta(out)
    assert meta.tasks == ["changed", "stack"]
    assert video_frame_count(out / f"videos/{KEY}/chunk-000/file-000.mp4") == 14
    assert [s["name"] for s in json.loads((out / SOURCES_PATH).read_text())] == ["s0", "s1"]


def test_incompatible_source_leaves_output_intact(tmp_path, sessions):
    out = tmp_path / "merged"
    merge_datasets([("s0", sessions["s0"])], out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    other = tmp_path / "fps10"
    w = DatasetWriter.create(other, fps=10, features=FEATURES)
    rng = np.random.default_rng(0)
    for t in range(3):
        w.add_frame(make_frame(rng, t, "x"))
    w.save_episode()
    w.finalize()
    message = f"source 'fps10' ({other}): fps 10 differs from 30 in 's0' ({sessions['s0']})"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        merge_datasets([("s0", sessions["s0"]), ("fps10", other)], out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".merged.rebuild-")]


def test_merge_lerobot_written_datasets(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(FIXTURE, a)
    shutil.copytree(FIXTURE, b)
    res = merge_datasets([("a", a), ("b", b)], tmp_path / "merged")
    assert (res.episodes, res.frames) == (6, 120)
    meta = DatasetMeta(tmp_path / "merged")
    assert meta.tasks == ["pick the cube", "place the cube"]
    froms = [meta.episode(i)[f"videos/{KEY}/from_timestamp"] for i in range(6)]
    np.testing.assert_allclose(froms, [0, 20 / 30, 1.5, 2.0, 2 + 20 / 30, 3.5], atol=1e-6)
    assert video_frame_count(tmp_path / f"merged/videos/{KEY}/chunk-000/file-000.mp4") == 120


def test_merge_rolls_over_files(tmp_path, sessions):
    # Tiny limits on the first source propagate to the output: each source file starts a new one.
    small = tmp_path / "small"
    w, _ = record(small, [5, 6], data_files_size_in_mb=0.001, video_files_size_in_mb=0.001, chunks_size=2)
    w.finalize()
    res = merge_datasets([("small", small), ("s1", sessions["s1"])], tmp_path / "merged")
    meta = DatasetMeta(tmp_path / "merged")
    locs = [(meta.episode(i)["data/chunk_index"], meta.episode(i)["data/file_index"]) for i in range(res.episodes)]
    assert locs == [(0, 0), (0, 1), (1, 0)]
    for i in range(res.episodes):
        row = meta.episode(i)
        assert video_frame_count(meta.episode_video_file(row, KEY)) == row["length"]


def test_force_and_damaged_output_rebuild(tmp_path, sessions):
    out = tmp_path / "merged"
    pair = [("s0", sessions["s0"]), ("s1", sessions["s1"])]
    merge_datasets(pair, out)
    assert merge_datasets(pair, out, force=True).mode == "rebuild"
    info = json.loads((out / "meta/info.json").read_text())
    info["total_frames"] += 1  # hand-edited: the recorded sources no longer describe it
    (out / "meta/info.json").write_text(json.dumps(info))
    res = merge_datasets(pair, out)
    assert (res.mode, res.frames) == ("rebuild", 18)
    assert json.loads((out / "meta/info.json").read_text())["total_frames"] == 18


def test_fingerprint_follows_the_templates_not_a_glob(tmp_path):
    from lerobot_assets.tools.merge import dataset_fingerprint

    root = tmp_path / "d"
    w, _ = record(root, [4, 3])
    w.finalize()
    info = json.loads((root / "meta/info.json").read_text())
    info["data_path"] = "data/chunk-{chunk_index:03d}/part-{file_index:03d}.parquet"
    (root / "data/chunk-000/file-000.parquet").rename(root / "data/chunk-000/part-000.parquet")
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    before = dataset_fingerprint(root)
    # A stray file the templates do not name is not part of the dataset.
    (root / "data/chunk-000/file-009.parquet").write_bytes(b"stray")
    assert dataset_fingerprint(root) == before
    # The custom-named data file is: a change of its size changes the fingerprint.
    with open(root / "data/chunk-000/part-000.parquet", "ab") as f:
        f.write(b"x")
    assert dataset_fingerprint(root) != before
