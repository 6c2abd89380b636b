"""DatasetWriter: exact v3.0 layout, values, rollover, resume and crash safety."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import FEATURES, FIXTURE, TASKS, make_frame, record

from lerobot_assets.format import DatasetMeta, data_schema, episodes_schema
from lerobot_assets.recording import DatasetWriter
from lerobot_assets.recording.commit import JOURNAL, Commit, recover
from lerobot_assets.stats.image import spatial_stride
from lerobot_assets.video.probe import video_frame_count


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, list[list[dict]]]:
    root = tmp_path_factory.mktemp("ds") / "tiny"
    w, episodes = record(root, [20, 25, 15])
    w.finalize()
    return root, episodes


def test_layout_matches_lerobot(recorded):
    root, _ = recorded
    ours = json.loads((root / "meta/info.json").read_text())
    theirs = json.loads((FIXTURE / "meta/info.json").read_text())
    assert list(ours) == list(theirs)
    for key in ("codebase_version", "fps", "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb",
                "data_path", "video_path", "robot_type", "splits", "total_episodes", "total_frames", "total_tasks"):
        assert ours[key] == theirs[key], key
    for key in ("observation.images.front", "observation.images.wrist"):
        block, ref = ours["features"][key]["info"], theirs["features"][key]["info"]
        assert list(block) == list(ref)
        assert {k: v for k, v in block.items() if k not in ("video.height", "video.width")} == {
            k: v for k, v in ref.items() if k not in ("video.height", "video.width")
        }
    assert ours["features"]["observation.images.front"]["info"]["video.height"] == 48
    assert ours["features"]["timestamp"] == theirs["features"]["timestamp"]
    meta = DatasetMeta(root)
    assert pq.read_schema(root / "data/chunk-000/file-000.parquet").names == data_schema(meta.info.features).names
    ep_schema = pq.read_schema(root / "meta/episodes/chunk-000/file-000.parquet")
    assert ep_schema.names == pq.read_schema(FIXTURE / "meta/episodes/chunk-000/file-000.parquet").names
    assert ep_schema.equals(episodes_schema(meta.info.features))
    assert meta.tasks == TASKS
    assert not list(root.rglob(".*.tmp*"))


def test_data_values_and_index(recorded):
    root, episodes = recorded
    pf = pq.ParquetFile(root / "data/chunk-000/file-000.parquet")
    assert [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)] == [20, 25, 15]
    t = pf.read().to_pydict()
    assert t["index"] == list(range(60))
    assert t["episode_index"] == [0] * 20 + [1] * 25 + [2] * 15
    assert t["frame_index"] == list(range(20)) + list(range(25)) + list(range(15))
    np.testing.assert_allclose(t["timestamp"], np.array(t["frame_index"]) / 30, atol=1e-6)
    assert t["task_index"] == [0] * 20 + [1] * 25 + [0] * 15
    flat = [f for ep in episodes for f in ep]
    np.testing.assert_array_equal(np.array(t["action"], dtype=np.float32), np.stack([f["action"] for f in flat]))
    meta = DatasetMeta(root)
    rows = [meta.episode(i) for i in range(3)]
    assert [r["length"] for r in rows] == [20, 25, 15]
    assert [(r["dataset_from_index"], r["dataset_to_index"]) for r in rows] == [(0, 20), (20, 45), (45, 60)]
    assert [r["tasks"] for r in rows] == [["pick the cube"], ["place the cube"], ["pick the cube"]]
    froms = [r["videos/observation.images.front/from_timestamp"] for r in rows]
    tos = [r["videos/observation.images.front/to_timestamp"] for r in rows]
    np.testing.assert_allclose(froms, [0, 20 / 30, 45 / 30])
    np.testing.assert_allclose(tos, [20 / 30, 45 / 30, 2.0])


def test_videos_hold_every_frame_at_the_right_time(recorded):
    root, episodes = recorded
    path = root / "videos/observation.images.front/chunk-000/file-000.mp4"
    assert video_frame_count(path) == 60
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        decoded = [(float(f.pts * s.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(s)]
    np.testing.assert_allclose([p for p, _ in decoded], np.arange(60) / 30, atol=1e-6)
    # Frame t of episode 2 sits at from_timestamp(ep2) + t/30: the decoded frame there is the
    # closest (PSNR) to what was fed at t, and close in absolute terms (crf 30, 48x64 pixels).
    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        return 10 * np.log10(255**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))

    for t in (5, 6):
        fed = episodes[2][t]["observation.images.front"]
        scores = {k: psnr(fed, decoded[45 + k][1]) for k in (t - 1, t, t + 1)}
        assert max(scores, key=scores.get) == t, scores
        assert scores[t] > 25, scores


def test_stats_are_exact(recorded):
    root, episodes = recorded
    stats = json.loads((root / "meta/stats.json").read_text())
    flat = [f for ep in episodes for f in ep]
    action = np.stack([f["action"] for f in flat]).astype(np.float64)
    s = stats["action"]
    np.testing.assert_allclose(s["min"], action.min(0))
    np.testing.assert_allclose(s["max"], action.max(0))
    np.testing.assert_allclose(s["mean"], action.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s["std"], action.std(0), rtol=1e-9)
    for name, q in (("q01", 0.01), ("q10", 0.1), ("q50", 0.5), ("q90", 0.9), ("q99", 0.99)):
        # Exact dataset quantiles, not an average of per-episode quantiles (LeRobot 0.6.1's bug).
        np.testing.assert_allclose(s[name], np.quantile(action, q, axis=0), rtol=1e-12)
    assert s["count"] == [60]
    ts = np.concatenate([np.arange(n) / 30 for n in (20, 25, 15)]).astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(stats["timestamp"]["q01"], [np.quantile(ts, 0.01)])
    img = stats["observation.images.front"]
    pixels = np.concatenate(
        [f["observation.images.front"][:: spatial_stride(48, 64), :: spatial_stride(48, 64)].reshape(-1, 3) for f in flat]
    ) / 255.0
    assert np.asarray(img["mean"]).shape == (3, 1, 1)
    np.testing.assert_allclose(np.asarray(img["mean"]).ravel(), pixels.mean(0), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(img["std"]).ravel(), pixels.std(0), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(img["q50"]).ravel(), np.quantile(pixels, 0.5, axis=0), atol=1e-12)
    np.testing.assert_allclose(np.asarray(img["q99"]).ravel(), np.quantile(pixels, 0.99, axis=0), atol=1e-12)
    assert img["count"] == [60]
    # Per-episode stats: episode 1's action stats equal numpy on its frames.
    ep = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()[1]
    a1 = np.stack([f["action"] for f in episodes[1]]).astype(np.float64)
    np.testing.assert_allclose(ep["stats/action/mean"], a1.mean(0), rtol=1e-12)
    np.testing.assert_allclose(ep["stats/action/q90"], np.quantile(a1, 0.9, axis=0), rtol=1e-12)
    assert ep["stats/observation.images.front/count"] == [25]
    assert np.asarray(ep["stats/observation.images.front/mean"]).shape == (3, 1, 1)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda f: f.update(extra=np.zeros(1, np.float32)), r"unknown keys \['extra'\]"),
        (lambda f: f.pop("action"), r"missing keys \['action'\]"),
        (lambda f: f.update(action=np.zeros(5, np.float32)), r"'action': expected shape \(6,\), got \(5,\)"),
        (lambda f: f.update(action=np.zeros(6, np.float64)), r"'action': expected dtype float32, got float64"),
        (lambda f: f.update({"observation.images.front": np.zeros((48, 60, 3), np.uint8)}), r"observation.images.front.*\(48, 64, 3\).*got \(48, 60, 3\)"),
        (lambda f: f.pop("task"), r"missing the 'task' key"),
        (lambda f: f.update(timestamp=0.0), r"set by the writer"),
    ],
)
def test_add_frame_errors_name_key_expected_and_got(tmp_path, mutate, match):
    w = DatasetWriter.create(tmp_path / "d", fps=30, features=FEATURES)
    frame = make_frame(np.random.default_rng(0), 0, "t")
    mutate(frame)
    with pytest.raises(ValueError, match=match):
        w.add_frame(frame)
    w.finalize()


def test_chw_and_float_frames_are_accepted(tmp_path):
    w = DatasetWriter.create(tmp_path / "d", fps=30, features=FEATURES)
    rng = np.random.default_rng(0)
    for t in range(4):
        f = make_frame(rng, t, "t", chw=True)
        f["observation.images.wrist"] = f["observation.images.wrist"].astype(np.float32) / 255.0
        w.add_frame(f)
    w.save_episode()
    w.finalize()
    assert video_frame_count(tmp_path / "d/videos/observation.images.wrist/chunk-000/file-000.mp4") == 4


def test_rollover_across_files_and_chunks(tmp_path):
    root = tmp_path / "roll"
    w, _ = record(root, [5, 6, 7, 8, 9], data_files_size_in_mb=0.001, video_files_size_in_mb=0.001, chunks_size=2)
    w.finalize()
    meta = DatasetMeta(root)
    rows = [meta.episode(i) for i in range(5)]
    locs = [(r["data/chunk_index"], r["data/file_index"]) for r in rows]
    assert locs == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    vlocs = [(r["videos/observation.images.front/chunk_index"], r["videos/observation.images.front/file_index"]) for r in rows]
    assert vlocs == locs
    assert all(r["videos/observation.images.front/from_timestamp"] == 0.0 for r in rows)
    for r in rows:
        assert video_frame_count(meta.episode_video_file(r, "observation.images.wrist")) == r["length"]
        assert pq.read_metadata(meta.data_file(r["data/chunk_index"], r["data/file_index"])).num_rows == r["length"]
    assert len(list(root.glob("meta/episodes/chunk-*/file-*.parquet"))) == 5
    assert json.loads((root / "meta/info.json").read_text())["total_frames"] == 35


def test_reopen_appends(tmp_path, recorded):
    root = tmp_path / "copy"
    shutil.copytree(recorded[0], root)
    w = DatasetWriter.open(root)
    record(root, [10], seed=5, writer=w)
    w.finalize()
    meta = DatasetMeta(root)
    assert meta.info.total_episodes == 4 and meta.info.total_frames == 70
    last = meta.episode(3)
    assert (last["dataset_from_index"], last["dataset_to_index"]) == (60, 70)
    assert last["videos/observation.images.front/from_timestamp"] == pytest.approx(2.0)
    assert video_frame_count(root / "videos/observation.images.front/chunk-000/file-000.mp4") == 70
    idx = pq.read_table(root / "data/chunk-000/file-000.parquet").column("index").to_pylist()
    assert idx == list(range(70))


def test_appending_to_a_lerobot_written_dataset(tmp_path):
    root = tmp_path / "lerobot"
    shutil.copytree(FIXTURE, root)
    w = DatasetWriter.open(root)
    rng = np.random.default_rng(1)
    for t in range(12):
        f = make_frame(rng, t, "stack the cube")
        f["observation.images.front"] = np.zeros((96, 128, 3), np.uint8) + t
        f["observation.images.wrist"] = np.zeros((64, 80, 3), np.uint8) + t
        w.add_frame(f)
    w.save_episode()
    w.finalize()
    meta = DatasetMeta(root)
    assert meta.tasks == ["pick the cube", "place the cube", "stack the cube"]
    assert meta.info.total_frames == 72 and meta.info.total_episodes == 4
    assert video_frame_count(root / "videos/observation.images.front/chunk-000/file-000.mp4") == 72
    assert meta.episode(3)["videos/observation.images.wrist/from_timestamp"] == pytest.approx(2.0)


def test_clear_episode_buffer_discards(tmp_path):
    w = DatasetWriter.create(tmp_path / "d", fps=30, features=FEATURES)
    rng = np.random.default_rng(0)
    for t in range(3):
        w.add_frame(make_frame(rng, t, "a"))
    w.clear_episode_buffer()
    for t in range(4):
        w.add_frame(make_frame(rng, t, "b"))
    s = w.save_episode()
    w.finalize()
    assert (s.episode_index, s.length, s.tasks) == (0, 4, ["b"])
    assert DatasetMeta(tmp_path / "d").tasks == ["b"]


def test_encode_after_episode_path_matches_streaming(tmp_path):
    a, ep_a = record(tmp_path / "a", [8, 9])
    b, ep_b = record(tmp_path / "b", [8, 9], streaming=False)
    a.finalize(), b.finalize()
    for key in ("observation.images.front", "observation.images.wrist"):
        fa = tmp_path / f"a/videos/{key}/chunk-000/file-000.mp4"
        fb = tmp_path / f"b/videos/{key}/chunk-000/file-000.mp4"
        assert video_frame_count(fa) == video_frame_count(fb) == 17
    sa = json.loads((tmp_path / "a/meta/stats.json").read_text())
    sb = json.loads((tmp_path / "b/meta/stats.json").read_text())
    assert sa.keys() == sb.keys()
    for feature in sa:
        for stat in sa[feature]:
            np.testing.assert_allclose(sa[feature][stat], sb[feature][stat], rtol=1e-12, err_msg=f"{feature}/{stat}")


def test_second_writer_on_same_root_is_refused(tmp_path):
    w = DatasetWriter.create(tmp_path / "d", fps=30, features=FEATURES)
    with pytest.raises(RuntimeError, match="another DatasetWriter"):
        DatasetWriter.open(tmp_path / "d")
    w.finalize()


def test_create_refuses_non_empty_root(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty"):
        DatasetWriter.create(tmp_path / "d", fps=30, features=FEATURES)
    assert (tmp_path / "d/keep.txt").read_text() == "user data"


def test_interrupted_commit_is_rolled_forward(tmp_path):
    root = tmp_path / "j"
    (root / "meta").mkdir(parents=True)
    (root / "meta/a.json").write_text("old")
    c = Commit(root)
    tmp = c.stage(root / "meta/a.json")
    tmp.write_text("new")
    stray = c.stage(root / "meta/b.json")
    stray.write_text("x")
    # Simulate a kill after the journal was written but before any rename.
    (root / JOURNAL).parent.mkdir(parents=True, exist_ok=True)
    (root / JOURNAL).write_text(json.dumps([[str(tmp.relative_to(root)), "meta/a.json"]]))
    done = recover(root)
    assert (root / "meta/a.json").read_text() == "new"
    assert not (root / JOURNAL).exists() and not stray.exists()
    assert any("interrupted commit" in d for d in done)


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    sys.path.insert(0, {tests!r})
    from helpers import make_frame, FEATURES
    from lerobot_assets.recording import DatasetWriter
    w = DatasetWriter.create({root!r}, fps=30, features=FEATURES)
    rng = np.random.default_rng(0)
    for ep in range(100):
        for t in range(15):
            w.add_frame(make_frame(rng, t, "task"))
            if ep == 2 and t == 7:
                print("MID", flush=True)
        w.save_episode()
        print("SAVED", ep, flush=True)
    """
)


def test_kill_9_mid_episode_keeps_saved_episodes(tmp_path):
    root = tmp_path / "crash"
    script = CRASH_SCRIPT.format(tests=str(Path(__file__).parent), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    saved = 0
    deadline = time.time() + 120
    for line in proc.stdout:
        if line.startswith("SAVED"):
            saved += 1
        if line.startswith("MID"):
            os.kill(proc.pid, signal.SIGKILL)
            break
        assert time.time() < deadline
    proc.wait()
    assert saved == 2
    # Readable as is, before any recovery: every saved episode is there and consistent.
    meta = DatasetMeta(root)
    assert meta.info.total_episodes == 2 and meta.info.total_frames == 30
    assert pq.read_metadata(root / "data/chunk-000/file-000.parquet").num_rows == 30
    assert video_frame_count(root / "videos/observation.images.front/chunk-000/file-000.mp4") == 30
    # Recording resumes.
    w = DatasetWriter.open(root)
    rng = np.random.default_rng(3)
    for t in range(6):
        w.add_frame(make_frame(rng, t, "task"))
    w.save_episode()
    w.finalize()
    meta = DatasetMeta(root)
    assert meta.info.total_episodes == 3 and meta.info.total_frames == 36
    assert video_frame_count(root / "videos/observation.images.front/chunk-000/file-000.mp4") == 36
    assert not list((root / ".staging").glob("episode-*"))


def test_background_save_writes_the_same_dataset(tmp_path):
    a, _ = record(tmp_path / "sync", [7, 9, 5])
    b, _ = record(tmp_path / "bg", [7, 9, 5], background_save=True)
    a.finalize(), b.finalize()
    for rel in ("data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/tasks.parquet"):
        assert pq.read_table(tmp_path / "sync" / rel).equals(pq.read_table(tmp_path / "bg" / rel)), rel
    assert json.loads((tmp_path / "sync/meta/info.json").read_text()) == json.loads((tmp_path / "bg/meta/info.json").read_text())
    key = "observation.images.front"
    assert video_frame_count(tmp_path / f"bg/videos/{key}/chunk-000/file-000.mp4") == 21


def test_background_failure_stops_the_writer_and_keeps_the_dataset(tmp_path, monkeypatch):
    from lerobot_assets.recording import writer as writer_module

    w, _ = record(tmp_path / "d", [6], background_save=True)
    w.flush()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(writer_module, "concatenate_videos", broken)
    rng = np.random.default_rng(1)
    for t in range(5):
        w.add_frame(make_frame(rng, t, "x"))
    summary = w.save_episode()
    with pytest.raises(OSError, match="disk full"):
        summary.wait()
    with pytest.raises(RuntimeError, match="background save failed.*disk full"):
        w.add_frame(make_frame(rng, 0, "x"))
    with pytest.raises(OSError):
        w.finalize()
    meta = DatasetMeta(tmp_path / "d")
    assert (meta.info.total_episodes, meta.info.total_frames) == (1, 6)
    assert not list((tmp_path / "d").rglob(".*.tmp*"))
    monkeypatch.undo()
    w2 = DatasetWriter.open(tmp_path / "d")  # the lock was released
    record(tmp_path / "d", [4], writer=w2)
    w2.finalize()
    assert DatasetMeta(tmp_path / "d").info.total_frames == 10


def test_live_capture_drops_are_filled_counted_and_saved(tmp_path, slow_encoder):
    # A capture loop that must not stall: a full queue drops frames instead of waiting.
    w = DatasetWriter.create(tmp_path / "d", fps=30, features=FEATURES, queue_maxsize=1, feed_timeout_s=0.0)
    rng = np.random.default_rng(0)
    for t in range(80):
        w.add_frame(make_frame(rng, t, "live"))
    summary = w.save_episode()
    w.finalize()
    assert sum(summary.dropped_frames.values()) > 0
    for key in ("observation.images.front", "observation.images.wrist"):
        assert video_frame_count(tmp_path / f"d/videos/{key}/chunk-000/file-000.mp4") == 80
    from lerobot_assets.checks.validate import validate_dataset

    assert validate_dataset(tmp_path / "d").ok


def test_tasks_parquet_reads_back_in_pandas_like_lerobots(recorded):
    # LeRobot loads meta/tasks.parquet with pandas and expects a frame indexed by the task string.
    import pandas as pd

    ours = pd.read_parquet(recorded[0] / "meta/tasks.parquet")
    theirs = pd.read_parquet(FIXTURE / "meta/tasks.parquet")
    assert ours.index.name == theirs.index.name == "task"
    assert list(ours.columns) == list(theirs.columns) == ["task_index"]
    assert ours.to_dict() == {"task_index": {"pick the cube": 0, "place the cube": 1}} == theirs.to_dict()
