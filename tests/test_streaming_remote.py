"""StreamingDataset over S3 (a moto server on loopback): items equal the local stream tensor for
tensor in the same order, video comes through the byte index (headers + each emitted episode's
segments, nothing more), data by row group, transient errors are retried with backoff, and a
root without an index reads whole files with a warning naming the command that builds it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from helpers import record
from sql_fixtures import forget_s3_clients
from test_streaming import assert_items_equal

from lerobot_assets.byteindex import ByteIndex, build_byte_index
from lerobot_assets.byteindex.tables import INDEX_DIR
from lerobot_assets.loading.streaming import StreamingDataLoader, StreamingDataset

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
s3fs = pytest.importorskip("s3fs")

BUCKET = "streaming"
FRONT, WRIST = "observation.images.front", "observation.images.wrist"
CAMERAS = (FRONT, WRIST)
FPS = 30
LENGTHS = [15, 22, 9, 30, 12, 18, 25, 10]
DELTAS = {FRONT: [-1 / FPS, 0.0], "action": [0.0, 1 / FPS]}


def _upload(client, local: Path, prefix: str, skip_index: bool = False) -> None:
    for path in sorted(local.rglob("*")):
        rel = path.relative_to(local).as_posix()
        if path.is_file() and not (skip_index and rel.startswith(INDEX_DIR)):
            client.upload_file(str(path), BUCKET, f"{prefix}/{rel}")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    local = tmp_path_factory.mktemp("streaming-remote") / "ds"
    writer, _ = record(local, LENGTHS)
    writer.finalize()
    build_byte_index(local)
    _upload(client, local, "ds")
    _upload(client, local, "noindex", skip_index=True)
    options = {
        "key": "testing", "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    yield {"url": f"s3://{BUCKET}", "options": options, "local": local}
    server.stop()
    forget_s3_clients()


@pytest.fixture
def s3_gets(monkeypatch) -> list[tuple[str, int]]:
    """(key, body bytes) of every GetObject s3fs issues in this process."""
    calls: list[tuple[str, int]] = []
    original = s3fs.S3FileSystem._call_s3

    async def counting(fs, method, *args, **kwargs):
        out = await original(fs, method, *args, **kwargs)
        if method == "get_object":
            calls.append((kwargs.get("Key", ""), int(out.get("ContentLength", 0))))
        return out

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counting)
    return calls


def test_remote_stream_equals_local_and_fetches_each_segment_once(s3, s3_gets) -> None:
    kw = dict(delta_timestamps=DELTAS, episode_pool_size=3, seed=2, return_uint8=True)
    remote = StreamingDataset(f"{s3['url']}/ds", storage_options=s3["options"], **kw)
    local = StreamingDataset(s3["local"], **kw)
    assert remote.roots[0].reader.video_source == "byte_index"
    s3_gets.clear()
    remote_items = list(remote)
    local_items = list(local)
    assert len(remote_items) == len(local_items) == sum(LENGTHS)
    for i, (a, b) in enumerate(zip(remote_items, local_items)):
        assert_items_equal(a, b, i)
    # Video bytes: each file's header once + every episode's segment once, per camera; exactly
    # what left S3 for videos. Data: the footer of the data file + one range per episode.
    index = ByteIndex.load(s3["local"])
    headers = sum(index.segment(k, 0).header_bytes for k in CAMERAS)
    segments = sum(index.segment(k, e).payload_bytes for k in CAMERAS for e in range(len(LENGTHS)))
    video_gets = [n for key, n in s3_gets if "/videos/" in key]
    assert sum(video_gets) == headers + segments
    stats = remote.stats()
    assert stats["video_bytes_fetched"] == headers + segments
    # Data: the footer read once (with the row groups that sit in its probe) + one range per other
    # episode; no byte of the file is asked for twice.
    data_gets = [n for key, n in s3_gets if "/data/" in key]
    data_file = next((s3["local"] / "data").rglob("*.parquet"))
    assert 1 <= len(data_gets) <= len(LENGTHS) + 1 and sum(data_gets) <= data_file.stat().st_size
    assert stats["data_bytes_fetched"] == sum(data_gets)
    assert stats["episodes_admitted"] == len(LENGTHS) and stats["retries"] == 0
    assert stats["fetch_s"] > 0 and stats["decode_s"] > 0


def test_remote_stream_with_workers_and_resume(s3) -> None:
    def make() -> StreamingDataLoader:
        ds = StreamingDataset(f"{s3['url']}/ds", storage_options=s3["options"], episode_pool_size=2, seed=5,
                              return_uint8=True)
        return StreamingDataLoader(ds, batch_size=8, num_workers=2, multiprocessing_context="fork", timeout=60)

    full = list(make())
    local = StreamingDataLoader(StreamingDataset(s3["local"], episode_pool_size=2, seed=5, return_uint8=True),
                                batch_size=8, num_workers=2, multiprocessing_context="fork")
    for b, (x, y) in enumerate(zip(full, local)):
        assert_items_equal(x, y, b)
    first = make()
    for b, _ in enumerate(first):
        if b == 4:
            break
    second = make()
    second.load_state_dict(first.state_dict())
    rest = list(second)
    assert len(rest) == len(full) - 5
    for b, batch in enumerate(rest):
        assert_items_equal(batch, full[5 + b], 5 + b)


def test_transient_errors_are_retried_and_the_last_one_is_named(s3, monkeypatch) -> None:
    original = s3fs.S3FileSystem._call_s3
    failures = {"left": 5}

    async def flaky(fs, method, *args, **kwargs):
        if method == "get_object" and failures["left"] > 0:
            failures["left"] -= 1
            raise ConnectionResetError("connection reset by peer")
        return await original(fs, method, *args, **kwargs)

    kw = dict(episode_pool_size=2, seed=1, return_uint8=True, retry_backoff_s=0.001)
    remote = StreamingDataset(f"{s3['url']}/ds", storage_options=s3["options"], **kw)
    assert remote.roots[0].reader.video_source == "byte_index"
    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", flaky)  # data and video reads from here on
    items = list(remote)
    assert failures["left"] == 0
    for i, (a, b) in enumerate(zip(items, StreamingDataset(s3["local"], **kw))):
        assert_items_equal(a, b, i)
    assert remote.stats()["retries"] == 5

    async def down(fs, method, *args, **kwargs):
        if method == "get_object":
            # (not a timeout: s3fs retries those itself, with seconds of backoff)
            raise ConnectionRefusedError("connection refused")
        return await original(fs, method, *args, **kwargs)

    broken = StreamingDataset(f"{s3['url']}/ds", storage_options=s3["options"], retry_attempts=3, **kw)
    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", down)
    with pytest.raises(OSError, match=r"s3://streaming/ds/data/chunk-000/file-000.parquet.*read failed after 3 "
                                      r"attempts: ConnectionRefusedError: connection refused"):
        next(iter(broken))


def test_remote_without_index_reads_whole_files_with_a_warning(s3, caplog) -> None:
    url = f"{s3['url']}/noindex"
    with caplog.at_level(logging.WARNING):
        remote = StreamingDataset(url, storage_options=s3["options"], shuffle=False, return_uint8=True)
    assert remote.roots[0].reader.video_source == "file"
    assert f"lerobot-assets byte-index {url}" in caplog.text
    local = StreamingDataset(s3["local"], shuffle=False, return_uint8=True)
    for i, (a, b) in enumerate(zip(remote, local)):
        assert_items_equal(a, b, i)
        if i == 30:
            break


def test_prefetch_follows_the_order_within_prefetch_bytes(s3) -> None:
    """The order is known ahead, so episodes are fetched in order of first use; with a budget of
    about one episode, what was fetched after k items is the episodes used so far plus at most
    the next one. Over the epoch every segment is fetched exactly once."""
    index = ByteIndex.load(s3["local"])

    def seg(e: int) -> int:
        return sum(index.segment(k, e).payload_bytes for k in CAMERAS)

    one = max(seg(e) for e in range(len(LENGTHS)))
    remote = StreamingDataset(f"{s3['url']}/ds", storage_options=s3["options"], episode_pool_size=4, seed=3,
                              prefetch_bytes=one, decode_group_size=1, return_uint8=True)
    headers = sum(index.segment(k, 0).header_bytes for k in CAMERAS)
    used: set[int] = set()
    count = 0
    for item in remote:
        used.add(int(item["episode_index"]))
        count += 1
        if count in (1, 5, 20, 60):
            reader = remote._episode_reader(0)
            assert reader is not None
            time.sleep(0.2)  # let the prefetch threads finish what they were given
            fetched = reader.stats().bytes_requested - headers
            assert sum(seg(e) for e in used) <= fetched <= sum(seg(e) for e in used) + one, count
    assert count == sum(LENGTHS)
    total = sum(seg(e) for e in range(len(LENGTHS)))
    assert remote.stats()["video_bytes_fetched"] == headers + total
