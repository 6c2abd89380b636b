"""decode_frames (torchcodec and PyAV), FrameTimestampError, and the LRU VideoDecoderCache."""

import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import FIXTURE

from lerobot_assets.video import cache as cache_module
from lerobot_assets.video import decode as decode_module
from lerobot_assets.video.cache import VideoDecoderCache, cache_size_from_env, default_decoder_cache
from lerobot_assets.video.concat import concatenate_videos
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.decode import FrameTimestampError, decode_frames
from lerobot_assets.video.encode import encode_frames
from lerobot_assets.video.synthetic import moving_scene, psnr

FPS = 30


def _open_fds_to(path: Path) -> int:
    target = str(path)
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                count += 1
        except OSError:
            pass
    return count


@pytest.fixture
def video(tmp_path) -> tuple[Path, np.ndarray]:
    frames = moving_scene(24)
    path = tmp_path / "v.mp4"
    encode_frames(frames, path, FPS)
    return path, frames


def _fixture_queries() -> dict[str, list[float]]:
    """Per camera, the timestamps the episodes parquet implies: from_timestamp + i / fps."""
    episodes = pq.read_table(FIXTURE / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    out = {}
    for key in ("observation.images.front", "observation.images.wrist"):
        ts = []
        for ep in episodes:
            start = ep[f"videos/{key}/from_timestamp"]
            ts += [start + i / FPS for i in range(ep["length"])]
            assert ep[f"videos/{key}/to_timestamp"] == pytest.approx(start + ep["length"] / FPS)
        out[key] = ts
    return out


@pytest.mark.parametrize("backend", ["torchcodec", "pyav"])
def test_fixture_decodes_at_episode_timestamps(backend):
    for key, ts in _fixture_queries().items():
        path = FIXTURE / "videos" / key / "chunk-000" / "file-000.mp4"
        frames = decode_frames(path, ts, backend=backend, cache=VideoDecoderCache(4))
        h, w = (96, 128) if key.endswith("front") else (64, 80)
        assert frames.shape == (60, 3, h, w) and frames.dtype == torch.float32
        assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
        # Consecutive frames differ: nothing was served twice by a bad mapping.
        assert all(not torch.equal(frames[i], frames[i + 1]) for i in range(59))


def test_fixture_backends_agree():
    path = FIXTURE / "videos" / "observation.images.front" / "chunk-000" / "file-000.mp4"
    ts = _fixture_queries()["observation.images.front"]
    a = decode_frames(path, ts, backend="torchcodec", return_uint8=True, cache=VideoDecoderCache(2))
    b = decode_frames(path, ts, backend="pyav", return_uint8=True, cache=VideoDecoderCache(2))
    assert (a.int() - b.int()).abs().float().mean() < 1.0


@pytest.mark.parametrize("vcodec", ["libsvtav1", "libx264"])
@pytest.mark.parametrize("backend", ["torchcodec", "pyav"])
def test_accuracy_and_random_access(tmp_path, vcodec, backend):
    frames = moving_scene(40, 96, 128)
    path = tmp_path / "v.mp4"
    encode_frames(frames, path, FPS, VideoEncoderConfig(vcodec=vcodec))
    cache = VideoDecoderCache(2)
    order = [17, 3, 39, 0, 22, 22, 8]
    out = decode_frames(path, [i / FPS for i in order], backend=backend, return_uint8=True, cache=cache)
    assert out.shape == (len(order), 3, 96, 128) and out.dtype == torch.uint8
    got = out.numpy().transpose(0, 2, 3, 1)
    # Measured ~31.6 dB (AV1) / ~32.2 dB (H.264) at crf 30 at this size.
    assert psnr(got, frames[order]) > 29.5
    for row, i in enumerate(order):
        others = [j for j in (i - 1, i + 1) if 0 <= j < 40]
        assert all(psnr(got[row], frames[i]) > psnr(got[row], frames[j]) for j in others)
    # One call per frame, in any order, through the cached decoder, gives the same frames.
    singles = torch.cat([decode_frames(path, [i / FPS], backend=backend, return_uint8=True, cache=cache) for i in order])
    assert torch.equal(singles, out)


def test_float_is_uint8_over_255(video):
    path, _ = video
    cache = VideoDecoderCache(2)
    u8 = decode_frames(path, [0.1, 0.5], return_uint8=True, cache=cache)
    f32 = decode_frames(path, [0.1, 0.5], cache=cache)
    assert f32.dtype == torch.float32
    assert torch.equal(f32, u8.to(torch.float32) / 255.0)


@pytest.mark.parametrize("backend", ["torchcodec", "pyav"])
def test_tolerance_error_names_queries_loaded_tolerance_and_file(video, backend):
    path, _ = video
    cache = VideoDecoderCache(2)
    # Small float jitter is within the tolerance...
    ok = decode_frames(path, [5 / FPS + 4e-5, 6 / FPS - 4e-5], backend=backend, cache=cache, return_uint8=True)
    assert ok.shape[0] == 2
    # ...half a frame is not.
    bad = 5.5 / FPS
    with pytest.raises(FrameTimestampError) as err:
        decode_frames(path, [0.0, bad], backend=backend, cache=cache)
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert f"queried timestamps: [{bad}]" in msg
    assert "nearest loaded timestamps: [0.166667]" in msg or "nearest loaded timestamps: [0.2]" in msg
    assert "tolerance_s=0.0001" in msg
    assert str(path) in msg and backend in msg
    # Past the end of the video.
    with pytest.raises(FrameTimestampError, match=r"queried timestamps: \[1\.5\]"):
        decode_frames(path, [1.5], backend=backend, cache=cache)


def test_wider_tolerance_accepts_nearest(video):
    path, frames = video
    got = decode_frames(path, [5.4 / FPS], tolerance_s=0.5 / FPS, return_uint8=True, cache=VideoDecoderCache(1))
    assert psnr(got[0].numpy().transpose(1, 2, 0), frames[5]) > 28.0


def test_backend_selection(video, monkeypatch):
    path, _ = video
    with pytest.raises(ValueError, match="Unsupported video backend: opencv"):
        decode_frames(path, [0.0], backend="opencv")
    with pytest.raises(ValueError, match="empty"):
        decode_frames(path, [])
    # torchcodec failing to load -> PyAV, same frames.
    cache = VideoDecoderCache(2)
    want = decode_frames(path, [0.2], backend="pyav", return_uint8=True, cache=VideoDecoderCache(1))
    monkeypatch.setattr(decode_module, "_torchcodec_ok", False)
    got = decode_frames(path, [0.2], return_uint8=True, cache=cache)
    assert torch.equal(got, want)
    assert cache.entry(path)._approx is None  # torchcodec was never opened


def test_header_without_rate_or_frame_count_decodes_in_exact_mode(video, monkeypatch):
    """torchcodec reports average_fps/num_frames as None when the header lacks them: exact mode, same frames."""
    import torchcodec.decoders

    path, _ = video
    real = torchcodec.decoders.VideoDecoder

    class HeaderlessApproximate:
        def __init__(self, source, seek_mode="exact"):
            self._decoder = real(source, seek_mode=seek_mode)
            self.metadata = self._decoder.metadata
            if seek_mode == "approximate":
                self.metadata = SimpleNamespace(average_fps=None, num_frames=None, begin_stream_seconds=None)

        def __getattr__(self, name):
            return getattr(self._decoder, name)

    ts = [0.0, 5 / FPS, 11 / FPS]
    want = decode_frames(path, ts, backend="pyav", return_uint8=True, cache=VideoDecoderCache(1))
    monkeypatch.setattr(torchcodec.decoders, "VideoDecoder", HeaderlessApproximate)
    cache = VideoDecoderCache(1)
    got = decode_frames(path, ts, backend="torchcodec", return_uint8=True, cache=cache)
    assert cache.entry(path)._exact is not None  # the approximate mapping was skipped
    assert (got.int() - want.int()).abs().float().mean() < 1.0


def test_default_cache_is_lazy_and_shared(video):
    path, _ = video
    decode_frames(path, [0.0])
    assert path in default_decoder_cache()
    assert default_decoder_cache() is default_decoder_cache()
    default_decoder_cache().clear()


def _videos(tmp_path: Path, n: int) -> list[Path]:
    out = []
    for k in range(n):
        p = tmp_path / f"v{k}.mp4"
        encode_frames(moving_scene(3, 32, 48, start=10 * k), p, FPS)
        out.append(p)
    return out


def test_cache_is_bounded_lru_and_closes_evicted_handles(tmp_path):
    a, b, c = _videos(tmp_path, 3)
    cache = VideoDecoderCache(max_size=2)
    for p in (a, b):
        decode_frames(p, [0.0], cache=cache)
    assert len(cache) == 2 and cache.keys() == [str(a), str(b)]
    assert _open_fds_to(a) == 1 and _open_fds_to(b) == 1
    decode_frames(a, [0.0], cache=cache)  # a becomes most recently used
    assert cache.keys() == [str(b), str(a)]
    decode_frames(c, [0.0], cache=cache)  # evicts b, the least recently used
    assert cache.keys() == [str(a), str(c)]
    assert b not in cache and a in cache and str(c) in cache
    assert _open_fds_to(b) == 0
    assert _open_fds_to(a) == 1 and _open_fds_to(c) == 1
    cache.clear()
    assert len(cache) == 0
    assert _open_fds_to(a) == 0 and _open_fds_to(c) == 0


def test_cache_closes_pyav_containers_too(tmp_path):
    (a,) = _videos(tmp_path, 1)
    cache = VideoDecoderCache(max_size=1)
    decode_frames(a, [0.0], backend="pyav", cache=cache)
    assert _open_fds_to(a) == 1
    cache.clear()
    assert _open_fds_to(a) == 0


def test_replaced_file_is_reopened(tmp_path):
    a, b = _videos(tmp_path, 2)
    cache = VideoDecoderCache(4)
    before = decode_frames(a, [0.0], return_uint8=True, cache=cache)
    concatenate_videos([b, a], a)  # a now starts with b's frames
    after = decode_frames(a, [0.0], return_uint8=True, cache=cache)
    assert torch.equal(after, decode_frames(b, [0.0], return_uint8=True, cache=cache))
    assert not torch.equal(before, after)
    assert len(cache) == 2


def test_cache_threads_share_decoders_safely(tmp_path):
    paths = _videos(tmp_path, 3)
    cache = VideoDecoderCache(max_size=2)  # small, so eviction happens while others decode
    want = {p: decode_frames(p, [1 / FPS], return_uint8=True, cache=VideoDecoderCache(1)) for p in paths}
    errors = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for _ in range(30):
                p = paths[int(rng.integers(3))]
                assert torch.equal(decode_frames(p, [1 / FPS], return_uint8=True, cache=cache), want[p])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cache) <= 2


def test_cache_size_from_env(monkeypatch):
    for name in cache_module.CACHE_SIZE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    assert cache_size_from_env() == 100 and VideoDecoderCache().max_size == 100
    monkeypatch.setenv("LEROBOT_VIDEO_DECODER_CACHE_SIZE", "12")  # LeRobot's variable
    assert VideoDecoderCache().max_size == 12
    monkeypatch.setenv("LEROBOT_ASSETS_VIDEO_DECODER_CACHE_SIZE", "7")  # ours wins
    assert VideoDecoderCache().max_size == 7
    monkeypatch.setenv("LEROBOT_ASSETS_VIDEO_DECODER_CACHE_SIZE", "none")
    assert VideoDecoderCache().max_size is None
    assert VideoDecoderCache(max_size=3).max_size == 3  # explicit beats the environment


@pytest.mark.parametrize("value", ["lots", "0", "-5", "2.5"])
def test_bad_env_value_fails_at_construction_not_import(monkeypatch, value):
    monkeypatch.setenv("LEROBOT_ASSETS_VIDEO_DECODER_CACHE_SIZE", value)
    with pytest.raises(ValueError) as err:
        cache_module.VideoDecoderCache()
    assert "LEROBOT_ASSETS_VIDEO_DECODER_CACHE_SIZE" in str(err.value) and repr(value) in str(err.value)
    monkeypatch.delenv("LEROBOT_ASSETS_VIDEO_DECODER_CACHE_SIZE")
    monkeypatch.setenv("LEROBOT_VIDEO_DECODER_CACHE_SIZE", value)
    with pytest.raises(ValueError, match="LEROBOT_VIDEO_DECODER_CACHE_SIZE"):
        cache_module.VideoDecoderCache()


def test_bad_env_value_does_not_break_import():
    env = dict(os.environ, LEROBOT_ASSETS_VIDEO_DECODER_CACHE_SIZE="lots")
    code = "import lerobot_assets.video.cache, lerobot_assets.video.concat; print('imported')"
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=repo
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


def test_bad_max_size_argument():
    with pytest.raises(ValueError, match="max_size"):
        VideoDecoderCache(max_size=0)
