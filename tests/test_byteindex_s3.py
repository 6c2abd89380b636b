"""Remote reads through a moto S3 server on loopback: the builder reads only MP4 headers, and the
reader fetches header + segment (counted), decoding the same frames as the local file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sql_fixtures import forget_s3_clients
from torchcodec.decoders import VideoDecoder

from lerobot_assets.byteindex import ByteIndex, EpisodeReader, build_byte_index
from lerobot_assets.byteindex.testing import write_sample_dataset

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
s3fs = pytest.importorskip("s3fs")

BUCKET = "datasets"
H264 = "observation.images.h264"
AV1 = "observation.images.av1"
NOFS = "observation.images.nofs"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds)
    client.create_bucket(Bucket=BUCKET)
    local = tmp_path_factory.mktemp("s3src") / "ds"
    write_sample_dataset(local)
    for path in local.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"ds/{path.relative_to(local).as_posix()}")
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    yield {"url": f"s3://{BUCKET}/ds", "options": options, "local": local}
    server.stop()
    forget_s3_clients()


@pytest.fixture(scope="module")
def s3_index(s3) -> ByteIndex:
    """The index built from the local copy and uploaded, so reader tests do not depend on the
    remote-build test having run first."""
    build_byte_index(s3["local"])
    fs = s3fs.S3FileSystem(**s3["options"])
    fs.put(str(Path(s3["local"]) / "meta/byte_index") + "/", f"{BUCKET}/ds/meta/byte_index/", recursive=True)
    return ByteIndex.load(s3["url"], storage_options=s3["options"])


def test_remote_build_reads_only_headers_and_writes_index(s3):
    result = build_byte_index(s3["url"], storage_options=s3["options"], workers=3)
    files = result.tables.files.to_pylist()
    assert result.stats.files_indexed == 3 and result.stats.segments == 12
    headers = sum(f["header_bytes"] for f in files)
    # each file: its header ranges + at most 16 bytes of each top-level box header
    assert headers <= result.stats.header_bytes_read <= headers + 3 * 16 * 5
    assert result.stats.header_bytes_read < result.stats.bytes_indexed / 5
    assert all(f["file_fingerprint"].startswith("size=") and "etag=" in f["file_fingerprint"] for f in files)
    fs = s3fs.S3FileSystem(**s3["options"])
    assert fs.exists(f"{BUCKET}/ds/meta/byte_index/frames.parquet")
    # unchanged ETags: nothing re-indexed
    assert build_byte_index(s3["url"], storage_options=s3["options"]).stats.files_indexed == 0
    # same tables as a local build (fingerprints aside)
    local = build_byte_index(s3["local"], write=False).tables
    assert result.tables.frames.equals(local.frames)
    assert result.tables.segments.drop_columns(["file_mtime_ns", "file_fingerprint"]).equals(
        local.segments.drop_columns(["file_mtime_ns", "file_fingerprint"])
    )


@pytest.mark.parametrize("key", [H264, AV1])
def test_remote_episode_fetch_is_header_plus_segment(s3, s3_index, key):
    index = s3_index
    local_path = Path(s3["local"]) / index.segment(key, 0).path
    full = VideoDecoder(str(local_path))
    for episode in (0, 3):  # first and last episode of the file
        reader = EpisodeReader(index, s3["url"], storage_options=s3["options"])
        got = reader.decode(key, episode)
        ref = full.get_frames_played_at(index.frames(key, episode).pts_s.tolist()).data
        assert torch.equal(got.data, ref)
        seg = index.segment(key, episode)
        stats = reader.stats()
        assert reader.bytes_requested == seg.min_fetch_bytes  # exactly header + segment, 0 slack
        assert stats.requests == len(seg.header_ranges) + 1
        reader.close()


def test_remote_prefetch_and_cache(s3, s3_index):
    index = s3_index
    reader = EpisodeReader(index, s3["url"], storage_options=s3["options"], prefetch_workers=4)
    for f in reader.prefetch([1, 2]):
        f.result(timeout=60)
    fetched = reader.bytes_requested
    minimum = sum(index.segment(k, e).payload_bytes for k in index.video_keys for e in (1, 2))
    minimum += sum(index.segment(k, 1).header_bytes for k in index.video_keys)
    assert fetched == minimum
    for key in (H264, AV1):  # faststart files: nothing but the cached bytes is needed
        reader.decode(key, 1, [0, 5])
    assert reader.bytes_requested == fetched  # decoded from the cache, no further request
    reader.close()


def test_remote_non_faststart_small_file_counts_read_through(s3, s3_index):
    index = s3_index
    reader = EpisodeReader(index, s3["url"], storage_options=s3["options"])
    got = reader.decode(NOFS, 1)
    seg = index.segment(NOFS, 1)
    full = VideoDecoder(str(Path(s3["local"]) / seg.path))
    assert torch.equal(got.data, full.get_frames_played_at(index.frames(NOFS, 1).pts_s.tolist()).data)
    # tiny file: FFmpeg reads through the rest of the mdat to the trailing moov while opening;
    # those bytes are fetched for real and counted, bounded by the file size
    assert seg.min_fetch_bytes <= reader.bytes_requested <= seg.file_size
    assert reader.stats().lazy_fetched_bytes == reader.bytes_requested - seg.min_fetch_bytes
