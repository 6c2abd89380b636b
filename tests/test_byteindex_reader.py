"""Range reader: frames decoded from header + segment bytes equal full-file decoding bit for bit;
sparse-file semantics; byte counting; LRU cache and prefetch."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from torchcodec.decoders import VideoDecoder

from lerobot_assets.byteindex import (
    ByteIndex,
    EpisodeReader,
    SparseFile,
    SparseReadError,
    build_byte_index,
    torchcodec_has_frame_mappings,
)
from lerobot_assets.byteindex.decode import decode_frames
from lerobot_assets.byteindex.testing import make_multi_episode_mp4, write_minimal_dataset, write_sample_dataset

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot-v3-tiny"
H264 = "observation.images.h264"
AV1 = "observation.images.av1"
NOFS = "observation.images.nofs"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reader") / "ds"
    write_sample_dataset(root)
    build_byte_index(root)
    return root


@pytest.fixture(scope="module")
def index(dataset) -> ByteIndex:
    return ByteIndex.load(dataset)


def full_torchcodec(path: Path, pts_s: np.ndarray) -> torch.Tensor:
    return VideoDecoder(str(path)).get_frames_played_at(pts_s.tolist()).data


def full_pyav(path: Path, pts: np.ndarray) -> torch.Tensor:
    with av.open(str(path)) as c:
        frames = {f.pts: f.to_ndarray(format="rgb24") for f in c.decode(video=0)}
    return torch.from_numpy(np.stack([frames[int(p)] for p in pts])).permute(0, 3, 1, 2)


def test_torchcodec_supports_custom_frame_mappings():
    assert torchcodec_has_frame_mappings()


@pytest.mark.parametrize("key", [H264, AV1, NOFS])
@pytest.mark.parametrize("backend", ["torchcodec", "pyav"])
def test_decode_through_index_equals_full_file(dataset, index, key, backend):
    path = dataset / index.segment(key, 0).path
    for episode in index.episodes(key):  # first, middle and last episode of the file
        reader = EpisodeReader(index, dataset, backend=backend)  # cold: nothing cached
        got = reader.decode(key, episode)
        frames = index.frames(key, episode)
        ref = full_torchcodec(path, frames.pts_s) if backend == "torchcodec" else full_pyav(path, frames.pts)
        assert got.data.dtype == torch.uint8 and got.data.shape == ref.shape
        assert torch.equal(got.data, ref), f"{key} episode {episode} differs"
        np.testing.assert_array_equal(got.frame_indices, np.arange(len(frames)))
        seg = index.segment(key, episode)
        if key != NOFS:
            # faststart: exactly the header prefix plus the segment, nothing else
            assert reader.bytes_requested == seg.min_fetch_bytes
            assert reader.stats().lazy_fetched_bytes == 0
        else:
            # a small non-faststart file: opening reads through the rest of the mdat to the
            # trailing moov (FFmpeg's short-seek); those bytes are real and counted
            assert seg.min_fetch_bytes <= reader.bytes_requested <= seg.file_size
        reader.close()


def test_lerobot_fixture_first_and_last_episode():
    result = build_byte_index(FIXTURE, write=False)
    reader = EpisodeReader(result, FIXTURE)
    for key in ("observation.images.front", "observation.images.wrist"):
        path = FIXTURE / f"videos/{key}/chunk-000/file-000.mp4"
        for episode in (0, 2):
            got = reader.decode(key, episode)
            assert torch.equal(got.data, full_torchcodec(path, reader.index.frames(key, episode).pts_s))


@pytest.mark.parametrize("codec", ["libx264", "libsvtav1"])
def test_single_episode_file(tmp_path, codec):
    mp4 = tmp_path / "one.mp4"
    bounds = make_multi_episode_mp4(mp4, [40], codec=codec)
    root = tmp_path / "ds"
    write_minimal_dataset(root, {"cam": [(0, 0, mp4, [0], bounds)]})
    reader = EpisodeReader(build_byte_index(root, write=False), root)
    got = reader.decode("cam", 0, [0, 39, 17])
    assert torch.equal(got.data, full_torchcodec(mp4, reader.index.frames("cam", 0).pts_s[[0, 39, 17]]))


def test_large_non_faststart_file_fetches_only_header_and_segment(tmp_path):
    """With episodes far from the trailing moov, FFmpeg seeks instead of reading through: then a
    non-faststart file costs exactly its ftyp + moov + the segment, like a faststart one."""
    mp4 = tmp_path / "big.mp4"
    bounds = make_multi_episode_mp4(
        mp4, [12, 12, 12], codec="libx264", faststart=False, width=256, height=192, gop=6, noise=64
    )
    root = tmp_path / "ds"
    write_minimal_dataset(root, {"cam": [(0, 0, mp4, list(range(3)), bounds)]})
    index = ByteIndex.from_build(build_byte_index(root, write=False))
    # every episode is far larger than FFmpeg's read-through distance (64 KiB buffer + 32 KiB)
    assert min(index.segment("cam", e).payload_bytes for e in range(3)) > 120_000
    for episode in (0, 1, 2):
        reader = EpisodeReader(index, root)
        got = reader.decode("cam", episode)
        assert torch.equal(got.data, full_torchcodec(mp4, index.frames("cam", episode).pts_s))
        assert reader.bytes_requested == index.segment("cam", episode).min_fetch_bytes


def test_sparse_decode_never_misses_with_strict_policy(dataset, index):
    reader = EpisodeReader(index, dataset, on_gap="raise")
    for key in (H264, AV1):
        sparse = reader.open(key, 2)
        frames = index.frames(key, 2)
        decode_frames(sparse, frames, np.array([len(frames) - 1, 0, 5]))
        assert sparse.stats.gap_misses == 0 and sparse.stats.fetched_bytes == 0
        assert sparse.stats.eof_past_payload >= 0


def test_concurrent_decodes_share_one_reader(dataset, index):
    from concurrent.futures import ThreadPoolExecutor

    reader = EpisodeReader(index, dataset)
    jobs = [(k, e) for k in (H264, AV1, NOFS) for e in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: reader.decode(*job).data, jobs))
    for (key, episode), data in zip(jobs, results):
        path = dataset / index.segment(key, episode).path
        assert torch.equal(data, full_torchcodec(path, index.frames(key, episode).pts_s))


def test_subset_and_timestamps(dataset, index):
    reader = EpisodeReader(index, dataset)
    frames = index.frames(AV1, 1)
    got = reader.decode(AV1, 1, [3, 0, 3])
    np.testing.assert_allclose(got.pts_s, frames.pts_s[[3, 0, 3]])
    assert torch.equal(got.data[0], got.data[2])
    by_time = reader.decode_timestamps(AV1, 1, [0.0, 3 / 30, 24 / 30])
    np.testing.assert_array_equal(by_time.frame_indices, [0, 3, 24])
    assert torch.equal(by_time.data[1], got.data[0])
    with pytest.raises(ValueError, match="more than tolerance_s"):
        reader.decode_timestamps(AV1, 1, [1 / 60])
    with pytest.raises(IndexError):
        reader.decode(AV1, 1, [25])


def test_unknown_keys(index, dataset):
    reader = EpisodeReader(index, dataset)
    with pytest.raises(KeyError, match="unknown video key"):
        reader.decode("nope", 0)
    with pytest.raises(KeyError, match="episode 9 is not indexed"):
        reader.fetch(H264, 9)


def test_cache_hits_evictions_and_counters(dataset, index):
    seg0, seg1 = index.segment(H264, 0), index.segment(H264, 1)
    # room for one segment only
    reader = EpisodeReader(index, dataset, cache_bytes=max(seg0.payload_bytes, seg1.payload_bytes) + seg0.header_bytes)
    reader.fetch(H264, 0)
    after_first = reader.bytes_requested
    assert after_first == seg0.min_fetch_bytes
    reader.fetch(H264, 0)
    assert reader.bytes_requested == after_first and reader.stats().hits >= 1
    reader.fetch(H264, 1)  # same file: header from cache, only the segment is fetched
    assert reader.bytes_requested == after_first + seg1.payload_bytes
    reader.fetch(H264, 0)  # evicted by episode 1 -> fetched again
    stats = reader.stats()
    assert stats.evictions >= 1
    assert reader.bytes_requested == after_first + seg1.payload_bytes + seg0.payload_bytes
    assert stats.cached_bytes <= reader._cache.max_bytes
    with pytest.raises(ValueError, match="cache_bytes must be positive"):
        EpisodeReader(index, dataset, cache_bytes=0)


def test_prefetch_in_background_then_decode_without_fetching(dataset, index):
    reader = EpisodeReader(index, dataset, prefetch_workers=3)
    futures = reader.prefetch([0, 3, (AV1, 1), (AV1, 1)])
    assert len(futures) == 3 * 2 + 2
    for f in futures:
        f.result(timeout=30)
    expected = sum(index.segment(k, e).payload_bytes for k in index.video_keys for e in (0, 3))
    expected += index.segment(AV1, 1).payload_bytes
    expected += sum(index.segment(k, 0).header_bytes for k in index.video_keys)
    assert reader.bytes_requested == expected  # the duplicate (AV1, 1) was fetched once
    before = reader.bytes_requested
    reader.decode(H264, 3)
    reader.decode(AV1, 1)
    assert reader.bytes_requested == before
    reader.close()


def test_prefetch_errors_surface(dataset, index):
    reader = EpisodeReader(index, dataset)
    (future,) = reader.prefetch([("missing", 0)])
    with pytest.raises(KeyError):
        future.result(timeout=10)


def test_file_shorter_than_index(tmp_path):
    root = tmp_path / "ds"
    write_sample_dataset(root)
    index = ByteIndex.from_build(build_byte_index(root, write=False))
    seg = index.segment(H264, 3)
    path = root / seg.path
    path.write_bytes(path.read_bytes()[: seg.byte_end - 10])
    with pytest.raises(OSError, match="shorter than the index says"):
        EpisodeReader(index, root).fetch(H264, 3)


def test_load_missing_index(tmp_path):
    with pytest.raises(FileNotFoundError, match="byte index missing"):
        ByteIndex.load(tmp_path)


# --------------------------------------------------------------------------- SparseFile


def make_sparse(**kw) -> SparseFile:
    data = bytes(range(256)) * 4  # a 1024-byte "file"
    kw.setdefault("payload", (600, 800))
    return SparseFile(len(data), [(0, data[:100]), (600, data[600:800])], **kw), data


def test_sparse_reads_inside_ranges_and_short_reads():
    f, data = make_sparse()
    assert f.read(50) == data[:50]
    assert f.read(500) == data[50:100]  # short read at the end of the held range
    f.seek(650)
    assert f.read(10) == data[650:660]
    assert f.seek(-24, io.SEEK_END) == 1000 and f.tell() == 1000
    assert f.seek(-10, io.SEEK_CUR) == 990
    with pytest.raises(ValueError, match="invalid whence"):
        f.seek(0, 7)
    with pytest.raises(ValueError):
        f.seek(-1)


def test_sparse_open_phase_probe_is_eof_and_skips_zero_fill():
    f, data = make_sparse()
    f.seek(100)
    assert f.read(50) == b""  # probe of a gap that does not reach any held range
    assert f.stats.probe_eofs == 1
    f.seek(500)
    out = f.read(200)  # a gap before the payload, skipped through: zeros, then real bytes
    assert out == bytes(100) + data[600:700]
    assert f.stats.zero_filled == 100


def test_sparse_decode_phase_eof_after_payload_and_strict_misses():
    f, data = make_sparse()
    f.phase = "decode"
    f.seek(800)
    assert f.read(100) == b""  # past the episode: end of file
    f.seek(900)
    assert f.read(10) == b""
    assert f.stats.eof_past_payload == 2
    f.seek(200)
    with pytest.raises(SparseReadError, match="read of 10 bytes at offset 200 is outside the fetched ranges"):
        f.read(10)


def test_sparse_lazy_fetch_policy_counts_bytes():
    calls = []
    data = bytes(range(256)) * 4

    def fetch(start, end):
        calls.append((start, end))
        return data[start:end]

    f = SparseFile(1024, [(0, data[:100]), (600, data[600:800])], payload=(600, 800), on_gap="fetch", fetch=fetch)
    f.phase = "decode"
    f.seek(200)
    assert f.read(10) == data[200:210]
    assert calls == [(200, 600)]  # up to the next held range, never past it
    assert f.stats.fetched_bytes == 400
    f.seek(300)
    assert f.read(10) == data[300:310] and len(calls) == 1  # now held
    with pytest.raises(ValueError, match="needs a fetch"):
        SparseFile(10, [], on_gap="fetch")


def test_sparse_eof_policy():
    f, _ = make_sparse(on_gap="eof")
    f.phase = "decode"
    f.seek(200)
    assert f.read(10) == b"" and f.stats.gap_misses == 1


def test_sparse_overlapping_ranges_are_trimmed():
    data = bytes(range(200))
    f = SparseFile(200, [(0, data[:120]), (100, data[100:200])])
    assert f.ranges() == [(0, 120), (120, 200)]
    assert f.read(200) == data[:120] and f.read(200) == data[120:]
