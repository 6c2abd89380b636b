"""LeRobotV3Dataset over S3 (a moto server on loopback): items equal the local reader's exactly,
video comes through the byte index (header once per file + one range per sampled episode segment,
counted both by the EpisodeReader and where the bytes leave S3), DataLoader workers build their own
readers, and a root without an index still reads whole files with a warning."""

from __future__ import annotations

import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import FIXTURE, record
from sql_fixtures import forget_s3_clients
from torch.utils.data import DataLoader

from lerobot_assets.byteindex import ByteIndex, EpisodeReader, build_byte_index
from lerobot_assets.byteindex.tables import INDEX_DIR
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.loading import LeRobotV3Dataset

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
s3fs = pytest.importorskip("s3fs")

BUCKET = "remote-reader"
FRONT, WRIST = "observation.images.front", "observation.images.wrist"
CAMERAS = (FRONT, WRIST)
FPS = 30
# Eight episodes in one video file per camera: touching two of them must cost a fraction of it.
LENGTHS = [15, 22, 9, 30, 12, 18, 25, 10]


def _upload(client, local: Path, prefix: str, skip_index: bool = False) -> None:
    for path in sorted(local.rglob("*")):
        rel = path.relative_to(local).as_posix()
        if path.is_file() and not (skip_index and rel.startswith(INDEX_DIR)):
            client.upload_file(str(path), BUCKET, f"{prefix}/{rel}")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server holding: `ds` (our writer, two cameras, with its byte index), `noindex`
    (the same without the index) and `tiny` (LeRobot's own fixture, indexed here)."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)

    base = tmp_path_factory.mktemp("remote-reader")
    local = base / "ds"
    writer, _ = record(local, LENGTHS)
    writer.finalize()
    build_byte_index(local)
    _upload(client, local, "ds")
    _upload(client, local, "noindex", skip_index=True)

    tiny = base / "tiny"
    shutil.copytree(FIXTURE, tiny)
    build_byte_index(tiny)
    _upload(client, tiny, "tiny")

    options = {
        "key": "testing", "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    yield {"url": f"s3://{BUCKET}", "options": options, "local": local, "tiny": tiny}
    server.stop()
    forget_s3_clients()


@pytest.fixture
def s3_gets(monkeypatch) -> list[tuple[str, int]]:
    """(key, body bytes) of every GetObject s3fs issues in this process, whatever the caller."""
    calls: list[tuple[str, int]] = []
    original = s3fs.S3FileSystem._call_s3

    async def counting(fs, method, *args, **kwargs):
        out = await original(fs, method, *args, **kwargs)
        if method == "get_object":
            calls.append((kwargs.get("Key", ""), int(out.get("ContentLength", 0))))
        return out

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counting)
    return calls


def _assert_items_equal(a: dict, b: dict, where: object) -> None:
    assert a.keys() == b.keys(), where
    for key, value in a.items():
        if isinstance(value, str):
            assert value == b[key], (where, key)
        else:
            assert value.dtype == b[key].dtype and value.shape == b[key].shape, (where, key)
            assert torch.equal(value, b[key]), (where, key)


def _boundary_items(ds: LeRobotV3Dataset) -> list[int]:
    """First and last frame of the first and the last episode."""
    first, last = ds.episode_range(0), ds.episode_range(ds.num_episodes - 1)
    return [first[0], first[1] - 1, last[0], last[1] - 1]


def _video_file_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "videos").rglob("*.mp4"))


def test_items_over_s3_equal_local_and_fetch_only_sampled_episodes(s3, s3_gets) -> None:
    remote = LeRobotV3Dataset(f"{s3['url']}/ds", storage_options=s3["options"])
    local = LeRobotV3Dataset(s3["local"])
    assert remote.video_source == "byte_index" and local.video_source == "file"
    assert len(remote) == len(local) == sum(LENGTHS) and remote.num_episodes == len(LENGTHS)
    assert isinstance(remote.root, str) and remote.root.startswith("s3://")
    s3_gets.clear()  # metadata reads so far; from here on: data parquet + video

    picks = _boundary_items(local)
    for i in picks:
        _assert_items_equal(remote[i], local[i], i)

    # Bytes asked for video: the headers of the files touched (once per file) + the segments of the
    # two episodes touched. The writer's files are faststart, so nothing else is read: no slack.
    index = ByteIndex.load(s3["local"])
    touched = [0, len(LENGTHS) - 1]
    headers = {(k, index.segment(k, 0).path): index.segment(k, 0).header_bytes for k in CAMERAS}
    minimum = sum(headers.values()) + sum(index.segment(k, e).payload_bytes for k in CAMERAS for e in touched)
    reader = remote.episode_reader
    assert isinstance(reader, EpisodeReader)
    stats = reader.stats()
    assert stats.lazy_fetched_bytes == 0
    assert reader.bytes_requested == minimum
    assert stats.requests == sum(len(index.segment(k, 0).header_ranges) for k in CAMERAS) + len(CAMERAS) * len(touched)
    # The same count where the bytes leave S3 (every GetObject body), and far below the files.
    video_gets = [n for key, n in s3_gets if "/videos/" in key]
    assert sum(video_gets) == minimum and len(video_gets) == stats.requests
    total = _video_file_bytes(s3["local"])
    ratio = sum(video_gets) / total
    print(f"\nS3 video bytes: {sum(video_gets)} of {total} ({ratio:.1%}) for episodes {touched}")
    assert ratio < 0.3  # 25 of 141 frames touched, plus two small headers: measured 24.7%

    # Coming back to the same episodes costs nothing more: bytes and decoders are cached.
    for i in reversed(picks):
        _assert_items_equal(remote[i], local[i], i)
    assert reader.bytes_requested == minimum and len([k for k, _ in s3_gets if "/videos/" in k]) == len(video_gets)


def test_delta_timestamps_windows_over_s3_equal_local(s3) -> None:
    deltas = {FRONT: [-2 / FPS, 0.0, 1 / FPS], WRIST: [-1 / FPS, 0.0], "action": [-1 / FPS, 0.0, 2 / FPS]}
    remote = LeRobotV3Dataset(f"{s3['url']}/ds", storage_options=s3["options"], delta_timestamps=deltas)
    local = LeRobotV3Dataset(s3["local"], delta_timestamps=deltas)
    picks = _boundary_items(local) + [1, local.episode_range(3)[0]]
    for i in picks:
        item = remote[i]
        assert item[FRONT].shape == (3, 3, 48, 64) and item[WRIST].shape == (2, 3, 32, 40)
        _assert_items_equal(item, local[i], i)
    # Padding really happened at the episode edges (windows clamp to the episode's frames).
    assert remote[0][f"{FRONT}_is_pad"].tolist() == [True, False, False]
    assert remote[len(remote) - 1]["action_is_pad"].tolist() == [False, False, True]
    # A batch (one decode per camera-episode) equals the items one by one.
    batch = remote.__getitems__(picks)
    for i, item in zip(picks, batch):
        _assert_items_equal(item, local[i], ("batch", i))


def test_dataloader_workers_over_s3_match_direct_indexing(s3) -> None:
    ds = LeRobotV3Dataset(f"{s3['url']}/ds", storage_options=s3["options"], return_uint8=True, prefetch_ahead=1)
    ds[3]  # the parent now holds a reader (threads, an s3fs client): workers must build their own
    loader = DataLoader(ds, batch_size=16, num_workers=2, shuffle=False, timeout=60)
    seen = 0
    for b, batch in enumerate(loader):
        idx = list(range(b * 16, min((b + 1) * 16, len(ds))))
        direct = [ds[i] for i in idx]
        assert batch["task"] == [d["task"] for d in direct]
        for key, value in batch.items():
            if key != "task":
                assert torch.equal(value, torch.stack([d[key] for d in direct])), (b, key)
        seen += len(idx)
    assert seen == len(ds)
    # Pickling (spawn workers) carries no reader, index, filesystem, decoder or column.
    blob = pickle.dumps(ds)
    clone = pickle.loads(blob)
    frames = clone._index_frames
    assert frames._reader is None and frames._index is None and clone._files._fs is None and clone._columns is None
    assert len(blob) < 50_000
    _assert_items_equal(clone[len(ds) - 1], ds[len(ds) - 1], "clone")


def test_remote_root_without_index_reads_whole_files_and_warns(s3, caplog, s3_gets) -> None:
    url = f"{s3['url']}/noindex"
    with caplog.at_level(logging.WARNING, logger="lerobot_assets.loading.video_source"):
        remote = LeRobotV3Dataset(url, storage_options=s3["options"])
    assert remote.video_source == "file" and remote.episode_reader is None
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "opened whole" in warning and f"lerobot-assets byte-index {url}" in warning
    local = LeRobotV3Dataset(s3["local"])
    for i in _boundary_items(local):
        _assert_items_equal(remote[i], local[i], i)
    assert any("/videos/" in key for key, _ in s3_gets)  # frames really came from S3 files
    with pytest.raises(FileNotFoundError, match="byte-index"):
        LeRobotV3Dataset(url, storage_options=s3["options"], video_source="byte_index")


def test_explicit_file_source_on_indexed_remote_root(s3, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="lerobot_assets.loading.video_source"):
        remote = LeRobotV3Dataset(f"{s3['url']}/ds", storage_options=s3["options"], video_source="file")
    assert remote.video_source == "file"
    assert "video_source='byte_index'" in " ".join(r.getMessage() for r in caplog.records)
    local = LeRobotV3Dataset(s3["local"])
    _assert_items_equal(remote[len(remote) - 1], local[len(local) - 1], "last")


def test_lerobot_written_fixture_over_s3_equals_local(s3, s3_gets) -> None:
    deltas = {FRONT: [-1 / FPS, 0.0]}
    remote = LeRobotV3Dataset(f"{s3['url']}/tiny", storage_options=s3["options"], delta_timestamps=deltas)
    local = LeRobotV3Dataset(s3["tiny"], delta_timestamps=deltas)
    assert remote.video_source == "byte_index" and len(remote) == len(local) == 60
    s3_gets.clear()
    for i in (0, 19, 20, 44, 45, 59):  # first/last frame of every episode
        _assert_items_equal(remote[i], local[i], i)
    index = ByteIndex.load(s3["tiny"])
    minimum = sum(index.segment(k, 0).header_bytes for k in CAMERAS)
    minimum += sum(index.segment(k, e).payload_bytes for k in CAMERAS for e in range(3))
    reader = remote.episode_reader
    assert reader is not None and reader.bytes_requested == minimum
    assert sum(n for key, n in s3_gets if "/videos/" in key) == minimum


# ------------------------------------------------------------------------------ local roots
def test_local_byte_index_source_equals_file_source(s3) -> None:
    """Every item, both decoder families: the byte-index source is bit-exact with whole files."""
    for backend in (None, "pyav"):
        by_file = LeRobotV3Dataset(s3["local"], video_backend=backend, return_uint8=True)
        by_index = LeRobotV3Dataset(s3["local"], video_backend=backend, return_uint8=True, video_source="byte_index")
        assert by_file.video_source == "file" and by_index.video_source == "byte_index"
        order = np.random.default_rng(0).permutation(len(by_file)).tolist()  # revisits open decoders
        for i in order:
            _assert_items_equal(by_index[i], by_file[i], (backend, i))


def test_stale_index_is_refused_or_skipped(s3, tmp_path, caplog) -> None:
    """A video file that changed after the index was built: "byte_index" refuses to use the index,
    "auto" warns and reads whole files, so no frame ever comes from stale offsets."""
    root = tmp_path / "stale"
    shutil.copytree(s3["local"], root)
    video = root / ByteIndex.load(root).segment(FRONT, 0).path
    with video.open("ab") as f:
        f.write(b"\0" * 64)
    with pytest.raises(ValueError, match="rebuild the index"):
        LeRobotV3Dataset(root, video_source="byte_index")
    fs = s3fs.S3FileSystem(**s3["options"])
    fs.put(f"{root}/", f"{BUCKET}/stale/", recursive=True)
    with caplog.at_level(logging.WARNING, logger="lerobot_assets.loading.video_source"):
        remote = LeRobotV3Dataset(f"{s3['url']}/stale", storage_options=s3["options"])
    assert remote.video_source == "file"
    assert "not using the byte index" in " ".join(r.getMessage() for r in caplog.records)
    local = LeRobotV3Dataset(s3["local"])
    _assert_items_equal(remote[0], local[0], 0)


def test_dataset_meta_reads_remote_roots(s3) -> None:
    remote = DatasetMeta(f"{s3['url']}/ds", storage_options=s3["options"])
    local = DatasetMeta(s3["local"])
    assert remote.info == local.info and remote.tasks == local.tasks
    assert remote.episodes.equals(local.episodes)
    assert remote.stats.keys() == local.stats.keys()
    assert remote.video_file(FRONT, 0, 0) == f"{s3['url']}/ds/videos/{FRONT}/chunk-000/file-000.mp4"


def test_episode_reader_reuses_decoders_bit_exactly(tmp_path) -> None:
    """Open decoders are reused across calls in any order (backward seeks, reads past an episode's
    end, B-frames, non-faststart files) with frames equal to whole-file decoding; the bytes they
    keep alive stay within cache_bytes."""
    from torchcodec.decoders import VideoDecoder

    from lerobot_assets.byteindex.testing import write_sample_dataset

    root = tmp_path / "sample"
    write_sample_dataset(root)
    build_byte_index(root)
    index = ByteIndex.load(root)
    rng = np.random.default_rng(7)
    for key in index.video_keys:
        episodes = index.episodes(key)
        full = VideoDecoder(str(root / index.segment(key, episodes[0]).path))
        largest = max(index.segment(key, e).min_fetch_bytes for e in episodes)
        reader = EpisodeReader(index, root, decoder_cache_size=3, cache_bytes=2 * largest, on_gap="fetch")
        for trial in range(24):
            episode = int(rng.choice(episodes))
            frames = index.frames(key, episode)
            picks = rng.integers(0, len(frames), size=int(rng.integers(1, 4))).tolist()
            if trial % 3 == 0:
                picks.append(len(frames) - 1)  # the decoder reads to the end of the episode's bytes
            got = reader.decode(key, episode, picks).data
            assert torch.equal(got, full.get_frames_played_at(frames.pts_s[picks].tolist()).data), (key, episode, picks)
            assert reader.has_open_decoder(key, episode)
            assert reader._decoder_bytes <= 2 * largest
        stats = reader.stats()
        assert stats.decoder_hits > 0 and stats.decoder_opens + stats.decoder_hits == 24
        reader.close()
