"""concatenate_videos: stream copy with continuous, exact timestamps; compatibility errors that
name the field; atomic output, including appending onto one of the inputs."""

import struct
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import FIXTURE

from lerobot_assets.video.concat import concatenate_videos, segment_durations_s
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.decode import decode_frames
from lerobot_assets.video.encode import encode_frames
from lerobot_assets.video.probe import video_duration_s, video_frame_count
from lerobot_assets.video.synthetic import moving_scene

LENGTHS = (20, 25, 15)


def _segments(directory: Path, vcodec: str = "libsvtav1", fps: int = 30) -> list[Path]:
    paths = []
    for k, n in enumerate(LENGTHS):
        path = directory / f"seg{k}.mp4"
        encode_frames(moving_scene(n, start=100 * k), path, fps, VideoEncoderConfig(vcodec=vcodec))
        paths.append(path)
    return paths


def _packets(path: Path) -> list[tuple[int, int, bool]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(p.pts, p.dts, p.is_keyframe) for p in c.demux(s) if p.size > 0]


def _top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    boxes, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        pos += size
    return boxes


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp" in p.name)


@pytest.mark.parametrize("vcodec", ["libsvtav1", "libx264"])
def test_counts_durations_and_continuous_pts(tmp_path, vcodec):
    segs = _segments(tmp_path, vcodec)
    out = tmp_path / "joined.mp4"
    concatenate_videos(segs, out)
    assert video_frame_count(out) == sum(LENGTHS)
    durations = segment_durations_s(segs)
    assert durations == pytest.approx([n / 30 for n in LENGTHS], abs=1e-12)
    assert video_duration_s(out) == pytest.approx(sum(durations), abs=1e-12)
    packets = _packets(out)
    tick = 15360 // 30  # MP4 time base 1/15360 at 30 fps
    assert sorted(p[0] for p in packets) == [i * tick for i in range(sum(LENGTHS))]
    dts = [p[1] for p in packets]
    assert all(a < b for a, b in zip(dts, dts[1:]))
    # Each segment still opens on a keyframe at its offset.
    key_pts = {p[0] for p in packets if p[2]}
    assert {0, 20 * tick, 45 * tick} <= key_pts
    boxes = _top_level_boxes(out)
    assert boxes.index("moov") < boxes.index("mdat")  # faststart
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("vcodec", ["libsvtav1", "libx264"])
def test_segment_two_decodes_identically_inside_the_join(tmp_path, vcodec):
    segs = _segments(tmp_path, vcodec)
    out = tmp_path / "joined.mp4"
    concatenate_videos(segs, out)
    alone = decode_frames(segs[1], [i / 30 for i in range(25)], return_uint8=True)
    offset = sum(segment_durations_s(segs[:1]))
    joined = decode_frames(out, [offset + i / 30 for i in range(25)], return_uint8=True)
    assert torch_equal(alone, joined)
    joined_pyav = decode_frames(out, [offset + i / 30 for i in range(25)], backend="pyav", return_uint8=True)
    assert torch_equal(alone, joined_pyav)


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())


def test_append_onto_first_input_in_place(tmp_path):
    segs = _segments(tmp_path)
    target = segs[0]
    concatenate_videos([str(target), str(segs[1])], str(target))  # str paths are fine too
    assert video_frame_count(target) == 45
    concatenate_videos([target, segs[2]], target)
    assert video_frame_count(target) == 60
    assert video_duration_s(target) == pytest.approx(2.0, abs=1e-12)
    last = decode_frames(target, [59 / 30], return_uint8=True)
    assert torch_equal(last, decode_frames(segs[2], [14 / 30], return_uint8=True))
    assert _leftovers(tmp_path) == []


def test_lerobot_fixture_file_plus_new_episode(tmp_path):
    fixture = FIXTURE / "videos" / "observation.images.wrist" / "chunk-000" / "file-000.mp4"
    new = tmp_path / "new.mp4"
    encode_frames(moving_scene(10, 64, 80), new, 30)
    out = tmp_path / "file-000.mp4"
    concatenate_videos([fixture, new], out)
    assert video_frame_count(out) == 70
    assert video_duration_s(out) == pytest.approx(2.0 + 10 / 30, abs=1e-12)
    # Our SVT-AV1 build differs from LeRobot's; AV1 carries its sequence header in-band, so the
    # appended episode still decodes exactly as it does alone, and the old ones are untouched.
    ours = decode_frames(out, [2.0 + i / 30 for i in range(10)], return_uint8=True)
    assert torch_equal(ours, decode_frames(new, [i / 30 for i in range(10)], return_uint8=True))
    theirs = [i / 30 for i in range(60)]
    assert torch_equal(decode_frames(out, theirs, return_uint8=True), decode_frames(fixture, theirs, return_uint8=True))


def _mismatch(tmp_path: Path, a_kwargs: dict, b_kwargs: dict) -> ValueError:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    encode_frames(moving_scene(4, *a_kwargs.get("size", (64, 96))), a, a_kwargs.get("fps", 30),
                  VideoEncoderConfig(vcodec=a_kwargs.get("vcodec", "libsvtav1")))
    encode_frames(moving_scene(4, *b_kwargs.get("size", (64, 96))), b, b_kwargs.get("fps", 30),
                  VideoEncoderConfig(vcodec=b_kwargs.get("vcodec", "libsvtav1")))
    out = tmp_path / "out.mp4"
    with pytest.raises(ValueError) as err:
        concatenate_videos([a, b], out)
    assert not out.exists() and _leftovers(tmp_path) == []
    msg = str(err.value)
    assert str(a) in msg and str(b) in msg
    return err.value


def test_mismatch_size_names_field(tmp_path):
    msg = str(_mismatch(tmp_path, {}, {"size": (64, 80)}))
    assert "width differs" in msg and "96" in msg and "80" in msg


def test_mismatch_height_names_field(tmp_path):
    msg = str(_mismatch(tmp_path, {}, {"size": (32, 96)}))
    assert "height differs" in msg and "64" in msg and "32" in msg


def test_mismatch_fps_names_field(tmp_path):
    msg = str(_mismatch(tmp_path, {}, {"fps": 15}))
    assert "fps differs" in msg and "has 30" in msg and "has 15" in msg


def test_mismatch_codec_names_field(tmp_path):
    msg = str(_mismatch(tmp_path, {}, {"vcodec": "libx264"}))
    assert "codec differs" in msg and "av1" in msg and "h264" in msg


def test_h264_different_parameter_sets_rejected(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    encode_frames(moving_scene(4), a, 30, VideoEncoderConfig(vcodec="libx264", crf=20))
    encode_frames(moving_scene(4), b, 30, VideoEncoderConfig(vcodec="libx264", crf=40, preset="ultrafast"))
    with pytest.raises(ValueError, match="extradata"):
        concatenate_videos([a, b], tmp_path / "out.mp4")


def test_error_mid_write_removes_temp_and_keeps_existing_output(tmp_path):
    segs = _segments(tmp_path)
    out = tmp_path / "out.mp4"
    concatenate_videos(segs[:2], out)
    before = out.read_bytes()
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 4)
    with pytest.raises(av.error.InvalidDataError):
        concatenate_videos([segs[0], garbage], out, check=False)
    assert out.read_bytes() == before
    assert _leftovers(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="No input video paths provided"):
        concatenate_videos([], out)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        concatenate_videos([segs[0], tmp_path / "missing.mp4"], out)


def test_uneven_segments_without_check_keep_exact_timing(tmp_path):
    # 30 fps then 10 fps (check=False): the join is not evenly spaced, yet every frame keeps
    # its own pts and decoding by timestamp finds the right frames.
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    frames_a, frames_b = moving_scene(20), moving_scene(10, start=300)
    encode_frames(frames_a, a, 30)
    encode_frames(frames_b, b, 10)
    out = tmp_path / "out.mp4"
    concatenate_videos([a, b], out, check=False)
    assert video_frame_count(out) == 30
    assert video_duration_s(out) == pytest.approx(20 / 30 + 1.0, abs=1e-9)
    ts_b = [20 / 30 + k / 10 for k in range(10)]
    expected = decode_frames(b, [k / 10 for k in range(10)], return_uint8=True)
    for backend in ("torchcodec", "pyav"):
        got = decode_frames(out, ts_b, backend=backend, return_uint8=True)
        assert torch_equal(got, expected), backend
    np.testing.assert_array_equal(
        decode_frames(out, [19 / 30], return_uint8=True), decode_frames(a, [19 / 30], return_uint8=True)
    )
