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
