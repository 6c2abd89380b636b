"""encode_frames / reencode_video / probe: exact frame counts and timing, layouts, atomic writes,
and the info.json video block against the LeRobot-written fixture."""

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import FIXTURE

from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.decode import decode_frames
from lerobot_assets.video.encode import encode_frames, reencode_video
from lerobot_assets.video.probe import (
    pixel_channels,
    stream_summary,
    video_duration_s,
    video_frame_count,
    video_info_block,
)
from lerobot_assets.video.synthetic import moving_scene, psnr

FIXTURE_KEYS = ("observation.images.front", "observation.images.wrist")


def _fixture_video(key: str) -> Path:
    return FIXTURE / "videos" / key / "chunk-000" / "file-000.mp4"


def _packet_pts_seconds(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(float(p.pts * s.time_base) for p in c.demux(s) if p.size > 0)


def _decode_all(path: Path, n: int, fps: int) -> np.ndarray:
    return decode_frames(path, [i / fps for i in range(n)], return_uint8=True).numpy().transpose(0, 2, 3, 1)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


@pytest.mark.parametrize("vcodec", ["libsvtav1", "libx264"])
def test_exact_frames_pts_and_duration(tmp_path, vcodec):
    frames = moving_scene(23)
    path = tmp_path / "v.mp4"
    assert encode_frames(frames, path, 15, VideoEncoderConfig(vcodec=vcodec)) == 23
    assert video_frame_count(path) == 23
    assert video_duration_s(path) == pytest.approx(23 / 15, abs=1e-9)
    assert _packet_pts_seconds(path) == pytest.approx([i / 15 for i in range(23)], abs=1e-9)
    summary = stream_summary(path)
    assert summary["fps"] == Fraction(15)
    assert summary["codec"] == {"libsvtav1": "av1", "libx264": "h264"}[vcodec]
    assert (summary["width"], summary["height"], summary["pix_fmt"]) == (96, 64, "yuv420p")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("vcodec", ["libsvtav1", "libx264"])
def test_decoded_frames_match_input(tmp_path, vcodec):
    frames = moving_scene(30, 240, 320)
    path = tmp_path / "v.mp4"
    encode_frames(frames, path, 30, VideoEncoderConfig(vcodec=vcodec))
    decoded = _decode_all(path, 30, 30)
    # Measured on this machine at crf 30: 34.8 dB (AV1, SVT-AV1 4.1) / 36.0 dB (H.264).
    assert psnr(decoded, frames) > 31.0
    # Each decoded frame is nearest to its own source frame: no off-by-one in timing.
    for i in range(1, 29):
        own = psnr(decoded[i], frames[i])
        assert own > psnr(decoded[i], frames[i - 1]) and own > psnr(decoded[i], frames[i + 1])


def test_chw_float_and_4d_inputs_encode_the_same_pictures(tmp_path):
    frames = moving_scene(12)
    encode_frames(list(frames), tmp_path / "hwc.mp4", 30)
    encode_frames([f.transpose(2, 0, 1) for f in frames], tmp_path / "chw.mp4", 30)
    encode_frames((f.astype(np.float32) / 255.0 for f in frames), tmp_path / "float.mp4", 30)
    encode_frames(frames.transpose(0, 3, 1, 2).astype(np.float64) / 255.0, tmp_path / "chw4d.mp4", 30)
    ref = _decode_all(tmp_path / "hwc.mp4", 12, 30)
    for name in ("chw.mp4", "float.mp4", "chw4d.mp4"):
        other = _decode_all(tmp_path / name, 12, 30)
        assert other.shape == ref.shape == (12, 64, 96, 3)
        # Same input pixels; the encoder may still differ run to run by a hair.
        assert psnr(other, ref) > 45.0, name


def test_grayscale_frames(tmp_path):
    levels = (30, 130, 230)
    encode_frames([np.full((64, 96), v, np.uint8) for v in levels], tmp_path / "g.mp4", 30)
    means = decode_frames(tmp_path / "g.mp4", [0, 1 / 30, 2 / 30], return_uint8=True).float().mean(dim=(1, 2, 3))
    assert means.tolist() == pytest.approx(levels, abs=2)


def test_failed_encode_leaves_no_file_and_keeps_old(tmp_path):
    path = tmp_path / "v.mp4"
    encode_frames(moving_scene(5), path, 30)
    before = path.read_bytes()

    def broken():
        yield from moving_scene(3)
        raise RuntimeError("camera unplugged")

    with pytest.raises(RuntimeError, match="camera unplugged"):
        encode_frames(broken(), path, 30)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="No frames"):
        encode_frames([], tmp_path / "empty.mp4", 30)
    assert not (tmp_path / "empty.mp4").exists()
    assert _leftovers(tmp_path) == []


def test_frame_size_change_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="differs from the first frame"):
        encode_frames([moving_scene(1)[0], moving_scene(1, 32, 48)[0]], tmp_path / "v.mp4", 30)
    assert list(tmp_path.iterdir()) == []


def test_reencode_changes_codec_keeps_frames_and_timing(tmp_path):
    src = tmp_path / "src.mp4"
    frames = moving_scene(16)
    encode_frames(frames, src, 10)
    dst = tmp_path / "out" / "dst.mp4"
    assert reencode_video(src, dst, VideoEncoderConfig(vcodec="libx264", crf=18), threads=1) == 16
    assert stream_summary(dst)["codec"] == "h264"
    assert video_frame_count(dst) == 16
    assert _packet_pts_seconds(dst) == pytest.approx([i / 10 for i in range(16)], abs=1e-9)
    assert psnr(_decode_all(dst, 16, 10), frames) > 28.0
    # In place: dst == src.
    reencode_video(str(src), str(src), VideoEncoderConfig(vcodec="libx264"))
    assert stream_summary(src)["codec"] == "h264" and video_frame_count(src) == 16
    assert _leftovers(tmp_path) == []


def test_reencode_output_is_faststart(tmp_path):
    src = tmp_path / "src.mp4"
    encode_frames(moving_scene(6), src, 30)
    dst = tmp_path / "dst.mp4"
    reencode_video(src, dst)
    data = dst.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")


@pytest.mark.parametrize("key", FIXTURE_KEYS)
def test_info_block_matches_lerobot_fixture(key):
    info = json.loads((FIXTURE / "meta" / "info.json").read_text())
    expected = info["features"][key]["info"]
    block = video_info_block(_fixture_video(key), VideoEncoderConfig())
    assert block == expected
    assert list(block) == list(expected)


def test_info_block_of_our_own_h264_file(tmp_path):
    path = tmp_path / "v.mp4"
    cfg = VideoEncoderConfig(vcodec="libx264", preset="veryfast", crf=23)
    encode_frames(moving_scene(4), path, 20, cfg)
    block = video_info_block(path, cfg)
    assert block["video.codec"] == "h264"
    assert (block["video.height"], block["video.width"], block["video.fps"]) == (64, 96, 20)
    assert block["video.preset"] == "veryfast" and block["video.crf"] == 23
    assert block["is_depth_map"] is False and block["has_audio"] is False


def test_fixture_probe_facts():
    path = _fixture_video("observation.images.front")
    assert video_frame_count(path) == 60
    assert video_duration_s(path) == 2.0
    assert stream_summary(path) == {
        "codec": "av1",
        "width": 128,
        "height": 96,
        "pix_fmt": "yuv420p",
        "fps": Fraction(30),
        "time_base": Fraction(1, 15360),
    }


def test_pixel_channels():
    assert pixel_channels("yuv420p") == 3
    assert pixel_channels("gray12le") == 1
    assert pixel_channels("yuva420p") == 4
    with pytest.raises(ValueError, match="Unknown pixel format"):
        pixel_channels("pal8")


def test_reencode_video_follows_the_configured_gop(tmp_path):
    """The source's keyframes (every 2nd frame in the fixture) must not carry over: libx264 keeps a
    decoded frame's I type unless it is reset."""
    import av

    from lerobot_assets.video.config import VideoEncoderConfig
    from lerobot_assets.video.encode import reencode_video

    src = next((Path(__file__).parent / "fixtures/lerobot-v3-tiny/videos/observation.images.front").rglob("*.mp4"))
    dst = tmp_path / "out.mp4"
    frames = reencode_video(src, dst, VideoEncoderConfig(vcodec="libx264", g=50, crf=23, extra_options={"sc_threshold": "0"}))
    with av.open(str(dst)) as c:
        keys = [p.is_keyframe for p in c.demux(c.streams.video[0]) if p.size]
    assert len(keys) == frames == 60
    assert sum(keys) == 2  # frames 0 and 50
