"""LeRobotV3Dataset (map-style reader): values, dtypes and shapes as LeRobot returns them, video
frames at from_timestamp + timestamp, delta_timestamps windows, episode subsets, DataLoader workers."""

import json
import pickle
import re
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from lerobot_assets.checks.validate import validate_dataset
from lerobot_assets.loading import DatasetLayoutError, LeRobotV3Dataset
from lerobot_assets.video.decode import FrameTimestampError

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot-v3-tiny"
FRONT, WRIST = "observation.images.front", "observation.images.wrist"
FPS = 30

pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason="LeRobot-written fixture not available")


@pytest.fixture(scope="module")
def ds() -> LeRobotV3Dataset:
    return LeRobotV3Dataset(FIXTURE)


@pytest.fixture(scope="module")
def table() -> dict[str, np.ndarray]:
    t = pq.read_table(FIXTURE / "data/chunk-000/file-000.parquet")
    out = {c: t.column(c).to_numpy() for c in ("timestamp", "frame_index", "episode_index", "index", "task_index")}
    for c in ("observation.state", "action"):
        out[c] = t.column(c).combine_chunks().flatten().to_numpy().reshape(-1, 6).copy()
    return out


@pytest.fixture(scope="module")
def pyav_frames() -> dict[str, dict[int, np.ndarray]]:
    """Every frame of both fixture videos decoded independently with PyAV, keyed by pts (ticks)."""
    out = {}
    for key in (FRONT, WRIST):
        with av.open(str(FIXTURE / f"videos/{key}/chunk-000/file-000.mp4")) as c:
            stream = c.streams.video[0]
            assert stream.time_base == pytest.approx(1 / 15360)
            out[key] = {f.pts: f.to_ndarray(format="rgb24") for f in c.decode(stream)}
    return out


FROM_TS = {0: 0.0, 1: 20 / 30, 2: 45 / 30}  # episodes' from_timestamp in both video files


def test_length_and_metadata(ds: LeRobotV3Dataset) -> None:
    assert len(ds) == 60
    assert ds.num_episodes == 3
    assert ds.fps == 30
    assert [ds.episode_range(k) for k in range(3)] == [(0, 20), (20, 45), (45, 60)]
    assert ds.tasks == ["pick the cube", "place the cube"]


@pytest.mark.parametrize("i, task", [(0, "pick the cube"), (20, "place the cube"), (59, "pick the cube")])
def test_item_values_match_parquet(ds: LeRobotV3Dataset, table: dict, i: int, task: str) -> None:
    item = ds[i]
    assert set(item) == {"observation.state", "action", "timestamp", "frame_index", "episode_index", "index",
                         "task_index", "task", FRONT, WRIST}
    for key in ("observation.state", "action"):
        assert item[key].dtype == torch.float32 and item[key].shape == (6,)
        assert torch.equal(item[key], torch.from_numpy(table[key][i]))
    assert item["timestamp"].dtype == torch.float32 and item["timestamp"].shape == ()
    assert item["timestamp"].item() == table["timestamp"][i]
    for key in ("frame_index", "episode_index", "index", "task_index"):
        assert item[key].dtype == torch.int64 and item[key].shape == ()
        assert item[key].item() == table[key][i]
    assert item["index"].item() == i
    assert item["task"] == task


def test_spot_values(ds: LeRobotV3Dataset) -> None:
    # Values printed in the format reference (written by LeRobot): row 0's state starts 0.12573022.
    item = ds[0]
    assert item["observation.state"][0].item() == pytest.approx(0.12573022, abs=1e-7)
    assert ds[44]["frame_index"].item() == 24 and ds[44]["timestamp"].item() == pytest.approx(0.8)
    assert ds[-1]["index"].item() == 59


def test_images_shape_dtype_range(ds: LeRobotV3Dataset) -> None:
    item = ds[33]
    assert item[FRONT].shape == (3, 96, 128) and item[WRIST].shape == (3, 64, 80)
    for key in (FRONT, WRIST):
        img = item[key]
        assert img.dtype == torch.float32
        assert 0.0 <= img.min().item() and img.max().item() <= 1.0
        assert img.std().item() > 0.01  # real picture content, not a blank frame
    u8 = LeRobotV3Dataset(FIXTURE, return_uint8=True)[33]
    for key in (FRONT, WRIST):
        assert u8[key].dtype == torch.uint8 and u8[key].shape == item[key].shape
        # Float mode is exactly uint8 / 255 (LeRobot's normalisation).
        assert torch.equal(u8[key].to(torch.float32) / 255.0, item[key])


@pytest.mark.parametrize("backend", [None, "pyav"])
@pytest.mark.parametrize("i", [0, 19, 20, 44, 45, 59])
def test_frames_equal_independent_pyav_decode(backend, i: int, pyav_frames) -> None:
    """Frame i is the video frame at pts from_timestamp(episode) + timestamp: compare pixel for pixel."""
    ds = LeRobotV3Dataset(FIXTURE, return_uint8=True, video_backend=backend)
    item = ds[i]
    ep = item["episode_index"].item()
    pts = round((FROM_TS[ep] + item["timestamp"].item()) * 15360)
    assert pts == i * 512  # frames are 512 ticks apart in the concatenated file
    for key in (FRONT, WRIST):
        expected = torch.from_numpy(pyav_frames[key][pts]).permute(2, 0, 1)
        assert torch.equal(item[key], expected)


def test_delta_timestamps_windows_at_episode_boundaries(ds: LeRobotV3Dataset, table: dict) -> None:
    deltas = {"action": [-2 / FPS, -1 / FPS, 0.0, 1 / FPS], "timestamp": [-1 / FPS, 0.0],
              FRONT: [-1 / FPS, 0.0, 1 / FPS]}
    win = LeRobotV3Dataset(FIXTURE, delta_timestamps=deltas)
    action = torch.from_numpy(table["action"])

    first = win[20]  # first frame of episode 1: past offsets clamp to frame 20 and are padding
    assert first["action"].shape == (4, 6)
    assert torch.equal(first["action"], action[[20, 20, 20, 21]])
    assert first["action_is_pad"].tolist() == [True, True, False, False]
    assert first["action_is_pad"].dtype == torch.bool
    assert first["timestamp"].shape == (2,) and first["timestamp"].tolist() == [0.0, 0.0]
    assert first["timestamp_is_pad"].tolist() == [True, False]
    assert first[FRONT].shape == (3, 3, 96, 128)
    assert first[f"{FRONT}_is_pad"].tolist() == [True, False, False]
    assert torch.equal(first[FRONT][0], ds[20][FRONT]) and torch.equal(first[FRONT][1], ds[20][FRONT])
    assert torch.equal(first[FRONT][2], ds[21][FRONT])
    # Keys without delta_timestamps stay single values, and get no _is_pad.
    assert first[WRIST].shape == (3, 64, 80) and f"{WRIST}_is_pad" not in first
    assert first["observation.state"].shape == (6,)

    last = win[44]  # last frame of episode 1: the future offset clamps to frame 44
    assert torch.equal(last["action"], action[[42, 43, 44, 44]])
    assert last["action_is_pad"].tolist() == [False, False, False, True]
    assert last[f"{FRONT}_is_pad"].tolist() == [False, False, True]
    assert torch.equal(last[FRONT][0], ds[43][FRONT]) and torch.equal(last[FRONT][2], ds[44][FRONT])

    middle = win[30]
    assert not middle["action_is_pad"].any()
    assert torch.equal(middle["action"], action[28:32])


def test_delta_timestamps_must_be_on_the_frame_grid() -> None:
    with pytest.raises(ValueError, match="not a multiple of 1/fps"):
        LeRobotV3Dataset(FIXTURE, delta_timestamps={"action": [0.01]})
    with pytest.raises(ValueError, match="not a feature"):
        LeRobotV3Dataset(FIXTURE, delta_timestamps={"nope": [0.0]})


def test_episode_subset(ds: LeRobotV3Dataset) -> None:
    sub = LeRobotV3Dataset(FIXTURE, episodes=[1])
    assert len(sub) == 25
    assert sub[0]["index"].item() == 20 and sub[0]["frame_index"].item() == 0
    assert sub[24]["index"].item() == 44
    assert {sub[i]["episode_index"].item() for i in range(25)} == {1}
    assert sub[0]["task"] == "place the cube"
    assert torch.equal(sub[3][FRONT], ds[23][FRONT])
    two = LeRobotV3Dataset(FIXTURE, episodes=[2, 0])
    assert len(two) == 35
    assert [two[i]["index"].item() for i in (0, 19, 20, 34)] == [0, 19, 45, 59]
    with pytest.raises(ValueError, match=r"episodes \[7\] are not in the dataset"):
        LeRobotV3Dataset(FIXTURE, episodes=[7])


def test_subset_windows_stay_inside_their_episode() -> None:
    sub = LeRobotV3Dataset(FIXTURE, episodes=[0, 2], delta_timestamps={"index": [-1 / FPS, 0.0, 1 / FPS]})
    # Position 20 is episode 2's first frame (global index 45): the previous frame is episode 0's
    # last in this reader's numbering, but windows never cross episodes.
    assert sub[20]["index"].tolist() == [45, 45, 46]
    assert sub[20]["index_is_pad"].tolist() == [True, False, False]
    assert sub[19]["index"].tolist() == [18, 19, 19]


def test_null_video_path_with_video_features_names_the_root(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(FIXTURE, root)
    info = json.loads((root / "meta/info.json").read_text())
    info["video_path"] = None
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetLayoutError, match=re.escape(str(root)) + ": info.json has video feature .* but video_path is null"):
        LeRobotV3Dataset(root)


def test_out_of_range() -> None:
    sub = LeRobotV3Dataset(FIXTURE, episodes=[1])
    with pytest.raises(IndexError):
        sub[25]
    with pytest.raises(IndexError):
        sub[-26]


def test_getitems_batch_equals_items(ds: LeRobotV3Dataset) -> None:
    order = [59, 3, 20, 44, 0, 21]
    batch = ds.__getitems__(order)
    for i, item in zip(order, batch):
        single = ds[i]
        assert item.keys() == single.keys()
        for key, value in single.items():
            assert (value == item[key]) if isinstance(value, str) else torch.equal(value, item[key]), (i, key)


def _assert_batches_match(ds: LeRobotV3Dataset, loader: DataLoader, batch_size: int) -> int:
    seen = 0
    for b, batch in enumerate(loader):
        idx = list(range(b * batch_size, min((b + 1) * batch_size, len(ds))))
        direct = [ds[i] for i in idx]
        for key, value in batch.items():
            if key == "task":
                assert value == [d["task"] for d in direct]
            else:
                assert torch.equal(value, torch.stack([d[key] for d in direct])), key
        seen += len(idx)
    return seen


def test_dataloader_two_workers_matches_direct_indexing() -> None:
    ds = LeRobotV3Dataset(FIXTURE, delta_timestamps={"action": [-1 / FPS, 0.0]})
    ds[5]  # the parent now holds decoders: workers must not reuse them after the fork
    loader = DataLoader(ds, batch_size=8, num_workers=2, shuffle=False)
    assert _assert_batches_match(ds, loader, 8) == 60


def test_dataloader_fork_safety_with_pyav_decoders() -> None:
    """Decoders with live threads (PyAV's dav1d) must never be freed in a forked worker: that
    deadlocks in pthread_cond_destroy. The parent holds a warm PyAV decoder (inherited cache) and
    cyclic PyAV garbage that the worker's collector would otherwise free; the loader must not hang."""
    import gc

    ds = LeRobotV3Dataset(FIXTURE, video_backend="pyav", return_uint8=True)
    ds[5]
    gc.disable()  # keep the garbage below pending until the fork
    try:
        container = av.open(str(FIXTURE / f"videos/{FRONT}/chunk-000/file-000.mp4"))
        next(container.decode(video=0))
        cycle: list = [container]
        cycle.append(cycle)
        del container, cycle
        loader = DataLoader(ds, batch_size=20, num_workers=2, timeout=60,
                            worker_init_fn=lambda _: gc.collect())
        assert _assert_batches_match(ds, loader, 20) == 60
    finally:
        gc.enable()


def test_pickle_drops_decoders_and_columns() -> None:
    ds = LeRobotV3Dataset(FIXTURE)
    before = ds[7]
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # metadata only: no columns, no decoders
    clone = pickle.loads(blob)
    assert clone._file_frames._cache is None and clone._columns is None
    after = clone[7]
    for key, value in before.items():
        assert (value == after[key]) if isinstance(value, str) else torch.equal(value, after[key])


def test_queries_use_from_timestamp(tmp_path: Path) -> None:
    """A from_timestamp off by half a frame makes the query miss every frame by > tolerance."""
    root = tmp_path / "ds"
    shutil.copytree(FIXTURE, root)
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    t = pq.read_table(path)
    name = f"videos/{FRONT}/from_timestamp"
    i = t.schema.get_field_index(name)
    values = t.column(name).to_numpy().copy()
    values[1] += 0.5 / FPS
    pq.write_table(t.set_column(i, t.schema.field(i), pa.array(values)), path)
    ds = LeRobotV3Dataset(root)
    ds[19]  # episode 0 is untouched
    with pytest.raises(FrameTimestampError):
        ds[20]
    # A loose tolerance (LeRobot's knob) accepts the nearest frame again.
    loose = LeRobotV3Dataset(root, tolerance_s=0.5 / FPS + 1e-3, return_uint8=True)
    assert loose[20][FRONT].shape == (3, 96, 128)


# ---------------------------------------------------------------------------------- our writer
def test_reads_what_our_writer_recorded(tmp_path: Path) -> None:
    from lerobot_assets.recording import DatasetWriter

    features = {
        "observation.state": {"dtype": "float32", "shape": [4], "names": None},
        "action": {"dtype": "float32", "shape": [2], "names": None},
        "observation.images.cam": {"dtype": "video", "shape": [32, 48, 3], "names": ["height", "width", "channels"]},
    }
    rng = np.random.default_rng(3)
    root = tmp_path / "ours"
    writer = DatasetWriter.create(root, fps=FPS, features=features, robot_type="test")
    recorded = []
    for ep, (n, task) in enumerate([(12, "a"), (9, "b")]):
        for t in range(n):
            y, x = np.mgrid[0:32, 0:48]
            img = np.stack([(x * 5 + t * 9) % 256, (y * 7) % 256, np.full_like(x, 40 * ep)], -1).astype(np.uint8)
            frame = {"observation.state": rng.standard_normal(4).astype(np.float32),
                     "action": rng.standard_normal(2).astype(np.float32), "observation.images.cam": img, "task": task}
            writer.add_frame(frame)
            recorded.append(frame)
        writer.save_episode()
    writer.finalize()

    report = validate_dataset(root)
    assert report.ok, [str(p) for p in report.problems]
    ds = LeRobotV3Dataset(root, return_uint8=True)
    assert len(ds) == 21
    for i in (0, 11, 12, 20):
        item = ds[i]
        assert torch.equal(item["observation.state"], torch.from_numpy(recorded[i]["observation.state"]))
        assert torch.equal(item["action"], torch.from_numpy(recorded[i]["action"]))
        assert item["task"] == recorded[i]["task"]
        assert item["index"].item() == i
        expected = torch.from_numpy(recorded[i]["observation.images.cam"]).permute(2, 0, 1)
        # Lossy video: close to what was recorded, and closer to it than to any other frame.
        err = (item["observation.images.cam"].float() - expected.float()).abs().mean().item()
        assert err < 8, err
        other = torch.from_numpy(recorded[(i + 5) % 21]["observation.images.cam"]).permute(2, 0, 1)
        assert err < (item["observation.images.cam"].float() - other.float()).abs().mean().item()


def test_image_mode_dataset_is_lossless(tmp_path: Path) -> None:
    """Image features (PNG bytes in the data parquet) decode to exactly what was recorded."""
    from lerobot_assets.recording import DatasetWriter

    features = {
        "observation.state": {"dtype": "float32", "shape": [3], "names": None},
        "observation.images.cam": {"dtype": "image", "shape": [24, 32, 3], "names": ["height", "width", "channels"]},
    }
    rng = np.random.default_rng(5)
    root = tmp_path / "img"
    writer = DatasetWriter.create(root, fps=FPS, features=features)
    images = []
    for n in (4, 3):
        for _ in range(n):
            img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            images.append(img)
            writer.add_frame({"observation.state": rng.standard_normal(3).astype(np.float32),
                              "observation.images.cam": img, "task": "t"})
        writer.save_episode()
    writer.finalize()
    assert validate_dataset(root).ok
    u8 = LeRobotV3Dataset(root, return_uint8=True)
    f32 = LeRobotV3Dataset(root, delta_timestamps={"observation.images.cam": [-1 / FPS, 0.0]})
    for i in (0, 3, 4, 6):
        expected = torch.from_numpy(images[i]).permute(2, 0, 1)
        assert torch.equal(u8[i]["observation.images.cam"], expected)
        window = f32[i]["observation.images.cam"]
        assert window.shape == (2, 3, 24, 32) and window.dtype == torch.float32
        assert torch.equal(window[1], expected.float() / 255.0)
        assert f32[i]["observation.images.cam_is_pad"].tolist() == [i in (0, 4), False]
