"""Image stats from video (ensure_image_histograms), recompute_stats and reencode_videos."""

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import FIXTURE, record
from tools_support import tree_digest

from lerobot_assets.format.episodes import read_episodes
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.stats_json import unflatten_stats
from lerobot_assets.stats.dataset import read_image_histograms
from lerobot_assets.stats.image import ImageStatsAccumulator
from lerobot_assets.tools.image_stats import ensure_image_histograms
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.decode import decode_frames

CAMERAS = ["observation.images.front", "observation.images.wrist"]
HIST = "meta/image_histograms/chunk-000/file-000.parquet"
# Lossless RGB: decoded frames equal the recorded ones, so stats from video equal the writer's.
LOSSLESS = {"vcodec": "libx264rgb", "pix_fmt": "rgb24", "crf": 0, "preset": "ultrafast"}


@pytest.fixture(scope="module")
def lossless(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lossless") / "ds"
    w, _ = record(root, [5, 7, 4], encoder=VideoEncoderConfig(**LOSSLESS))
    w.finalize()
    return root


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """Our default encoder (AV1, lossy), 4 episodes."""
    root = tmp_path_factory.mktemp("recorded") / "ds"
    w, _ = record(root, [6, 9, 5, 8])
    w.finalize()
    return root


def copy(src: Path, tmp_path: Path, name: str = "copy") -> Path:
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def decoded_histograms(root: Path, key: str) -> dict[int, ImageStatsAccumulator]:
    """Oracle: each episode's frames fetched by timestamp through the loader's decoder (a
    different path from the sequential decode under test), accumulated like the writer does."""
    info = DatasetInfo.load(root)
    out = {}
    for row in read_episodes(root).to_pylist():
        start = row[f"videos/{key}/from_timestamp"]
        ts = [start + i / info.fps for i in range(row["length"])]
        path = root / info.video_path.format(video_key=key, chunk_index=row[f"videos/{key}/chunk_index"],
                                             file_index=row[f"videos/{key}/file_index"])
        frames = decode_frames(path, ts, backend="pyav", return_uint8=True).numpy()
        acc = ImageStatsAccumulator()
        for f in frames:
            acc.update(f)
        out[row["episode_index"]] = acc
    return out


# ------------------------------------------------------------------ ensure_image_histograms
def test_ensure_reproduces_the_writers_sidecar_and_episode_stats(lossless, tmp_path):
    root = copy(lossless, tmp_path)
    sidecar, episodes = pq.read_table(root / HIST), read_episodes(root)
    shutil.rmtree(root / "meta/image_histograms")
    assert ensure_image_histograms(root) == 6
    assert pq.read_table(root / HIST).equals(sidecar)
    assert read_episodes(root).equals(episodes)
    # Nothing missing now: nothing decoded, nothing rewritten.
    before = tree_digest(root)
    assert ensure_image_histograms(root) == 0
    assert tree_digest(root) == before


def test_ensure_force_recomputes_from_decoded_video(recorded, tmp_path):
    root = copy(recorded, tmp_path)
    assert ensure_image_histograms(root) == 0
    assert ensure_image_histograms(root, force=True) == 8
    hists = read_image_histograms(root, CAMERAS)
    rows = {r["episode_index"]: unflatten_stats(r) for r in read_episodes(root).to_pylist()}
    for key in CAMERAS:
        oracle = decoded_histograms(root, key)
        for ep, acc in oracle.items():
            assert np.array_equal(hists[key][ep], acc.hist)
            want = acc.stats()
            for stat, value in want.items():
                np.testing.assert_array_equal(rows[ep][key][stat], value)


def test_ensure_fills_only_missing_pairs(recorded, tmp_path):
    root = copy(recorded, tmp_path)
    table = pq.read_table(root / HIST)
    kept = table.column(CAMERAS[1]).to_pylist()
    # Episode 1 and 3 lose their front-camera histogram.
    front = table.column(CAMERAS[0]).to_pylist()
    front[1] = front[3] = None
    table = table.set_column(1, CAMERAS[0], pa.array(front, table.schema.field(1).type))
    pq.write_table(table, root / HIST)
    calls = []
    assert ensure_image_histograms(root, progress=lambda *a: calls.append(a)) == 2
    after = pq.read_table(root / HIST)
    assert after.column(CAMERAS[1]).to_pylist() == kept  # untouched camera kept as it was
    oracle = decoded_histograms(root, CAMERAS[0])
    got = after.column(CAMERAS[0]).to_pylist()
    for ep in (1, 3):
        assert got[ep] == oracle[ep].hist.reshape(-1).tolist()
    assert calls and calls[-1] == ("image stats", 9 + 8, 9 + 8)


def test_ensure_on_lerobot_fixture_adds_histograms_from_video(tmp_path):
    root = copy(FIXTURE, tmp_path)
    assert read_image_histograms(root, CAMERAS) == {k: {} for k in CAMERAS}
    n_eps = DatasetInfo.load(root).total_episodes
    assert ensure_image_histograms(root) == 2 * n_eps
    hists = read_image_histograms(root, CAMERAS)
    rows = {r["episode_index"]: unflatten_stats(r) for r in read_episodes(root).to_pylist()}
    for key in CAMERAS:
        for ep, acc in decoded_histograms(root, key).items():
            assert np.array_equal(hists[key][ep], acc.hist)
            np.testing.assert_array_equal(rows[ep][key]["q50"], acc.stats()["q50"])
            assert rows[ep][key]["count"].tolist() == [acc.frames]


# ------------------------------------------------------------------ recompute_stats
NUMERIC = ["observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"]


def frames_of(root: Path) -> dict[str, np.ndarray]:
    """Every numeric feature over every frame, straight from the data parquet."""
    table = pq.read_table(root / "data/chunk-000/file-000.parquet")
    return {k: np.asarray(table.column(k).to_pylist(), dtype=np.float64).reshape(table.num_rows, -1) for k in NUMERIC}


def numpy_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    qs = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
    out = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0)}
    out |= {name: np.quantile(values, q, axis=0, method="linear") for name, q in qs.items()}
    return out


def spoil_stats(root: Path) -> None:
    """Wrong stats everywhere recompute_stats must fix: stats.json and every stats/* cell."""
    (root / "meta/stats.json").write_text("{}")
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    for i, name in enumerate(table.column_names):
        if name.startswith("stats/") and not name.endswith("/count"):
            table = table.set_column(i, name, pa.array([None] * table.num_rows, table.schema.field(i).type))
    pq.write_table(table, path)
    shutil.rmtree(root / "meta/image_histograms", ignore_errors=True)


def check_exact_stats(root: Path) -> None:
    from lerobot_assets.format.stats_json import read_stats

    frames, stats = frames_of(root), read_stats(root)
    eps = frames["episode_index"][:, 0]
    rows = {r["episode_index"]: unflatten_stats(r) for r in read_episodes(root).to_pylist()}
    for key in NUMERIC:
        for stat, want in numpy_stats(frames[key]).items():
            np.testing.assert_allclose(stats[key][stat], want, rtol=1e-12, atol=1e-12, err_msg=f"{key} {stat}")
        for ep, row in rows.items():
            for stat, want in numpy_stats(frames[key][eps == ep]).items():
                np.testing.assert_allclose(row[key][stat], want, rtol=1e-12, atol=1e-12, err_msg=f"ep {ep} {key} {stat}")
            assert row[key]["count"].tolist() == [int((eps == ep).sum())]
    hists = read_image_histograms(root, CAMERAS)
    for key in CAMERAS:
        oracle = decoded_histograms(root, key)
        total = sum(acc.hist for acc in oracle.values())
        from lerobot_assets.stats.image import image_stats_from_histogram

        want = image_stats_from_histogram(total, sum(acc.frames for acc in oracle.values()))
        for stat, value in want.items():
            np.testing.assert_array_equal(stats[key][stat], value)
        for ep, acc in oracle.items():
            assert np.array_equal(hists[key][ep], acc.hist)
            np.testing.assert_array_equal(rows[ep][key]["q99"], acc.stats()["q99"])


def test_recompute_stats_to_new_root_is_exact_and_leaves_input(recorded, tmp_path):
    from lerobot_assets.tools.recompute_stats import recompute_stats

    src = copy(recorded, tmp_path, "src")
    spoil_stats(src)
    before = tree_digest(src)
    result = recompute_stats(src, tmp_path / "out")
    assert tree_digest(src) == before
    out = tmp_path / "out"
    assert result.output == out and result.episodes == 4 and result.frames == 28
    check_exact_stats(out)
    # Data and videos are the input's bytes.
    for rel in ("data/chunk-000/file-000.parquet", f"videos/{CAMERAS[0]}/chunk-000/file-000.mp4"):
        assert tree_digest(out)[rel] == before[rel]
    # An existing output needs overwrite; the output may never be the input.
    from lerobot_assets.tools.output import OutputExistsError, OutputIsInputError

    with pytest.raises(OutputExistsError):
        recompute_stats(src, out)
    recompute_stats(src, out, overwrite=True)
    with pytest.raises(OutputIsInputError):
        recompute_stats(src, src, overwrite=True)
    assert tree_digest(src) == before


def test_recompute_stats_in_place_rewrites_only_meta(recorded, tmp_path):
    from lerobot_assets.tools.recompute_stats import recompute_stats

    root = copy(recorded, tmp_path)
    spoil_stats(root)
    before = tree_digest(root)
    result = recompute_stats(root, in_place=True)
    assert result.output == root
    after = tree_digest(root)
    assert {k: v for k, v in after.items() if not k.startswith("meta/")} == {
        k: v for k, v in before.items() if not k.startswith("meta/")
    }
    assert not [k for k in after if ".tmp" in k]
    check_exact_stats(root)


def test_recompute_stats_arguments_and_not_a_dataset(recorded, tmp_path):
    from lerobot_assets.tools.recompute_stats import recompute_stats

    with pytest.raises(ValueError, match="exactly one"):
        recompute_stats(recorded, tmp_path / "out", in_place=True)
    with pytest.raises(ValueError, match="exactly one"):
        recompute_stats(recorded)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="meta/info.json"):
        recompute_stats(empty, in_place=True)
    with pytest.raises(FileNotFoundError, match="meta/info.json"):
        recompute_stats(empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_recompute_stats_on_lerobot_fixture_decodes_image_stats(tmp_path):
    from lerobot_assets.format.stats_json import read_stats
    from lerobot_assets.stats.image import image_stats_from_histogram
    from lerobot_assets.tools.recompute_stats import recompute_stats

    before = tree_digest(FIXTURE)
    result = recompute_stats(FIXTURE, tmp_path / "out")
    assert tree_digest(FIXTURE) == before
    out = tmp_path / "out"
    assert "image stats decoded from video" in result.summary()
    stats = read_stats(out)
    for key in CAMERAS:
        oracle = decoded_histograms(out, key)
        total = sum(acc.hist for acc in oracle.values())
        want = image_stats_from_histogram(total, sum(a.frames for a in oracle.values()))
        for stat in ("mean", "std", "q01", "q50", "q99"):
            np.testing.assert_array_equal(stats[key][stat], want[stat])
    table = pq.read_table(out / "data/chunk-000/file-000.parquet")
    state = np.asarray(table.column("observation.state").to_pylist())
    np.testing.assert_allclose(stats["observation.state"]["q10"], np.quantile(state, 0.1, axis=0), rtol=1e-12)


def annotate(root: Path) -> None:
    """What LeRobot's annotation pipeline leaves: undeclared language columns (lists of structs)
    in the data parquet, plus a declared `string` feature."""
    import json

    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    n = table.num_rows
    persistent = [[{"role": "user", "content": f"step {i}"}] for i in range(n)]
    events = [[] if i % 3 else [{"style": "vqa", "content": "where is the cube?", "camera": CAMERAS[0]}] for i in range(n)]
    table = table.append_column("language_persistent", pa.array(persistent))
    table = table.append_column("language_events", pa.array(events, pa.list_(pa.struct(
        [("style", pa.string()), ("content", pa.string()), ("camera", pa.string())]))))
    table = table.append_column("language_instruction", pa.array([f"say {i}" for i in range(n)], pa.string()))
    pq.write_table(table, path)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["language_instruction"] = {"dtype": "string", "shape": [1], "names": None}
    # LeRobot 0.6.1 declares the persistent column as a `language` feature; events stay undeclared.
    info["features"]["language_persistent"] = {"dtype": "language", "shape": [1], "names": None}
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))


def test_recompute_stats_on_annotated_dataset(recorded, tmp_path):
    from lerobot_assets.format.stats_json import read_stats
    from lerobot_assets.tools.recompute_stats import recompute_stats

    src = copy(recorded, tmp_path, "src")
    annotate(src)
    before = tree_digest(src)
    recompute_stats(src, tmp_path / "out")
    assert tree_digest(src) == before
    out = tmp_path / "out"
    stats = read_stats(out)
    assert "language_instruction" not in stats and "language_persistent" not in stats
    check_exact_stats(out)
    assert tree_digest(out)["data/chunk-000/file-000.parquet"] == before["data/chunk-000/file-000.parquet"]
    recompute_stats(src, in_place=False, out=tmp_path / "out2")
    recompute_stats(out, in_place=True)


# ------------------------------------------------------------------ reencode_videos
X264 = {"vcodec": "libx264", "crf": 23, "g": 2}


def decode_all(path: Path) -> tuple[list[float], np.ndarray]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [(float(f.pts * s.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(s)]
    return [t for t, _ in frames], np.stack([f for _, f in frames]).astype(np.int16)


def keyframe_indices(path: Path, fps: int) -> set[int]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return {round(float(p.pts * s.time_base) * fps) for p in c.demux(s) if p.is_keyframe and p.pts is not None}


def video_paths(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "videos").rglob("*.mp4"))


@pytest.mark.parametrize("source", ["recorded", "fixture"])
def test_reencode_to_x264_keeps_frames_timestamps_and_recomputes_stats(source, recorded, tmp_path):
    from lerobot_assets.format.stats_json import read_stats
    from lerobot_assets.tools.reencode import reencode_videos

    src = recorded if source == "recorded" else FIXTURE
    before = tree_digest(src)
    out = tmp_path / "out"
    result = reencode_videos(src, VideoEncoderConfig(**X264), out)
    assert tree_digest(src) == before
    assert result.notes[0].startswith("2 video files re-encoded")
    after = tree_digest(out)
    assert after["data/chunk-000/file-000.parquet"] == before["data/chunk-000/file-000.parquet"]
    assert video_paths(out) == video_paths(src)
    info = DatasetInfo.load(out)
    rows_in, rows_out = read_episodes(src).to_pylist(), read_episodes(out).to_pylist()
    for key in CAMERAS:
        block = info.features[key].info
        assert block["video.codec"] == "h264" and block["video.crf"] == 23 and block["video.g"] == 2
        for rel in [p for p in video_paths(src) if f"/{key}/" in p]:
            assert after[rel] != before[rel]
            ts_in, px_in = decode_all(src / rel)
            ts_out, px_out = decode_all(out / rel)
            assert ts_out == ts_in  # same frame count, same pts: from/to_timestamp stay valid
            assert np.abs(px_out - px_in).mean() < 3.0
        for a, b in zip(rows_in, rows_out):
            assert a[f"videos/{key}/from_timestamp"] == b[f"videos/{key}/from_timestamp"]
            assert a[f"videos/{key}/to_timestamp"] == b[f"videos/{key}/to_timestamp"]
    check_video_stats(out)
    assert set(read_stats(out)) >= set(NUMERIC) | set(CAMERAS)


def check_video_stats(root: Path, dataset: bool = True) -> None:
    """Sidecar, episode rows and (with `dataset`) stats.json describe the decoded pixels of root's
    own videos."""
    from lerobot_assets.format.stats_json import read_stats
    from lerobot_assets.stats.image import image_stats_from_histogram

    hists, stats = read_image_histograms(root, CAMERAS), read_stats(root)
    rows = {r["episode_index"]: unflatten_stats(r) for r in read_episodes(root).to_pylist()}
    for key in CAMERAS:
        oracle = decoded_histograms(root, key)
        for ep, acc in oracle.items():
            assert np.array_equal(hists[key][ep], acc.hist)
            np.testing.assert_array_equal(rows[ep][key]["mean"], acc.stats()["mean"])
        want = image_stats_from_histogram(sum(a.hist for a in oracle.values()), sum(a.frames for a in oracle.values()))
        if dataset:
            np.testing.assert_array_equal(stats[key]["q50"], want["q50"])


def test_reencode_skips_files_already_in_the_target_encoding(recorded, tmp_path):
    from lerobot_assets.tools.reencode import already_encoded, reencode_videos

    first = tmp_path / "x264"
    reencode_videos(recorded, VideoEncoderConfig(**X264), first)
    before = tree_digest(first)
    result = reencode_videos(first, VideoEncoderConfig(vcodec="h264", crf=23, g=2), tmp_path / "again")
    assert result.notes == ["0 video files re-encoded with libx264", "2 already in that encoding, copied"]
    again = tree_digest(tmp_path / "again")
    assert tree_digest(first) == before
    assert {k: again[k] for k in video_paths(first)} == {k: before[k] for k in video_paths(first)}
    # Any encoder field that differs is a different encoding (LeRobot's rule).
    block = DatasetInfo.load(first).features[CAMERAS[0]].info
    assert already_encoded(block, VideoEncoderConfig(**X264))
    assert not already_encoded(block, VideoEncoderConfig(**{**X264, "crf": 24}))
    assert not already_encoded(block, VideoEncoderConfig(**{**X264, "g": 4}))
    assert not already_encoded({k: v for k, v in block.items() if k != "video.g"}, VideoEncoderConfig(**X264))


def test_reencode_forces_a_keyframe_at_every_episode_start(recorded, tmp_path):
    from lerobot_assets.tools.reencode import reencode_videos

    out = tmp_path / "out"
    reencode_videos(recorded, VideoEncoderConfig(vcodec="libx264", crf=23, g=50), out)
    starts = {round(r[f"videos/{CAMERAS[0]}/from_timestamp"] * 30) for r in read_episodes(out).to_pylist()}
    assert starts == {0, 6, 15, 20}
    for rel in video_paths(out):
        keys = keyframe_indices(out / rel, 30)
        assert starts <= keys, rel
        assert len(keys) <= len(starts) + 1  # only the forced ones (g=50 > 28 frames)


def test_reencode_keeps_depth_fields_and_never_colour_encodes_depth(recorded, tmp_path):
    import json

    from lerobot_assets.tools.reencode import reencode_videos

    src = copy(recorded, tmp_path, "src")
    info = json.loads((src / "meta/info.json").read_text())
    depth = {"is_depth_map": True, "video.depth_min": 0.01, "video.depth_max": 10.0, "video.shift": 3.5,
             "video.use_log": True}
    info["features"][CAMERAS[1]]["info"].update(depth)
    (src / "meta/info.json").write_text(json.dumps(info, indent=4))
    before = tree_digest(src)
    reencode_videos(src, VideoEncoderConfig(**X264), tmp_path / "rgb")
    rgb = tree_digest(tmp_path / "rgb")
    wrist = f"videos/{CAMERAS[1]}/chunk-000/file-000.mp4"
    assert rgb[wrist] == before[wrist]  # a yuv420p encoder would destroy the depth codes: kept
    assert DatasetInfo.load(tmp_path / "rgb").features[CAMERAS[1]].info == info["features"][CAMERAS[1]]["info"]
    # LeRobot's depth encoder: lossless 12-bit gray HEVC.
    lossless_depth = {"x265-params": "lossless=1:log-level=error"}
    depth_encoder = VideoEncoderConfig(vcodec="libx265", pix_fmt="gray12le", crf=None, g=2, extra_options=lossless_depth)
    reencode_videos(src, depth_encoder, tmp_path / "gray")
    block = DatasetInfo.load(tmp_path / "gray").features[CAMERAS[1]].info
    assert block["video.pix_fmt"] == "gray12le" and block["video.codec"] == "hevc"
    assert {k: block[k] for k in depth} == depth
    assert tree_digest(src) == before


def test_reencode_refuses_unevenly_timed_video_and_existing_output(recorded, tmp_path):
    import av

    from lerobot_assets.tools.output import OutputExistsError
    from lerobot_assets.tools.reencode import reencode_videos

    src = copy(recorded, tmp_path, "src")
    rel = f"videos/{CAMERAS[0]}/chunk-000/file-000.mp4"
    _, frames = decode_all(src / rel)
    with av.open(str(src / rel), "w") as c:  # same frames, but a one-frame gap after frame 2
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for k, arr in enumerate(frames.astype(np.uint8)):
            f = av.VideoFrame.from_ndarray(arr, format="rgb24")
            f.pts = k if k < 3 else k + 1
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    before = tree_digest(src)
    with pytest.raises(ValueError, match=r"file-000\.mp4: frame 3 has pts 0\.133333 s"):
        reencode_videos(src, VideoEncoderConfig(**X264), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "busy").mkdir()
    with pytest.raises(OutputExistsError):
        reencode_videos(recorded, VideoEncoderConfig(**X264), tmp_path / "busy")
    assert tree_digest(src) == before


@pytest.mark.slow
def test_reencode_in_worker_processes_matches_one_process(recorded, tmp_path):
    from lerobot_assets.tools.reencode import reencode_videos

    one, two = tmp_path / "one", tmp_path / "two"
    reencode_videos(recorded, VideoEncoderConfig(**X264), one)
    calls = []
    reencode_videos(recorded, VideoEncoderConfig(**X264), two, workers=2, progress=lambda *a: calls.append(a))
    assert calls[-1] == ("reencode", 56, 56)
    # x264's output may differ with thread timing; the frames, timing and stats must hold for each.
    for rel in video_paths(one):
        (ts_one, px_one), (ts_two, px_two) = decode_all(one / rel), decode_all(two / rel)
        assert ts_one == ts_two
        assert np.abs(px_one - px_two).mean() < 2.0
    check_video_stats(two)


def test_ensure_image_features_from_parquet_pngs_equal_the_writers(tmp_path):
    from lerobot_assets.recording import DatasetWriter

    root = tmp_path / "images"
    features = {
        "observation.state": {"dtype": "float32", "shape": [2], "names": None},
        "observation.image": {"dtype": "image", "shape": [24, 32, 3], "names": ["height", "width", "channels"]},
    }
    rng = np.random.default_rng(3)
    w = DatasetWriter.create(root, fps=10, features=features)
    for n in (3, 5):
        for _ in range(n):
            w.add_frame({"observation.state": rng.standard_normal(2).astype(np.float32),
                         "observation.image": rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), "task": "t"})
        w.save_episode()
    w.finalize()
    sidecar, episodes = pq.read_table(root / HIST), read_episodes(root)
    assert ensure_image_histograms(root, force=True) == 2
    assert pq.read_table(root / HIST).equals(sidecar)
    assert read_episodes(root).equals(episodes)


@pytest.fixture(scope="module")
def many_files(tmp_path_factory) -> Path:
    """Video files rolled over every episode or two, and several data / episodes files."""
    root = tmp_path_factory.mktemp("many") / "ds"
    w, _ = record(root, [6, 9, 5, 8, 7], video_files_size_in_mb=0.004, data_files_size_in_mb=0.004)
    w.finalize()
    return root


def test_many_files_ensure_and_reencode(many_files, tmp_path):
    from lerobot_assets.tools.reencode import reencode_videos

    assert len(video_paths(many_files)) > 2
    root = copy(many_files, tmp_path, "src")
    assert ensure_image_histograms(root, force=True) == 10
    check_video_stats(root, dataset=False)  # ensure_image_histograms leaves stats.json to its caller
    before = tree_digest(many_files)
    out = tmp_path / "out"
    result = reencode_videos(many_files, VideoEncoderConfig(vcodec="libx264", crf=23, g=50), out)
    assert tree_digest(many_files) == before
    assert result.notes[0] == f"{len(video_paths(many_files))} video files re-encoded with libx264"
    check_video_stats(out)
    rows = read_episodes(out).to_pylist()
    for key in CAMERAS:
        for rel in [p for p in video_paths(out) if f"/{key}/" in p]:
            c, f = (int(part.split("-")[1].split(".")[0]) for part in rel.split("/")[-2:])
            starts = {round(r[f"videos/{key}/from_timestamp"] * 30) for r in rows
                      if (r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]) == (c, f)}
            assert starts <= keyframe_indices(out / rel, 30)
            assert decode_all(out / rel)[0] == decode_all(many_files / rel)[0]
