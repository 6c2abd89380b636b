"""StreamingVideoEncoder: exact files per episode, stats from the encoder thread, drops counted,
crashes surfaced with the camera's name, cancel/close semantics."""

import logging
import shutil
import time

import numpy as np
import pytest

from lerobot_assets.stats.image import ImageStatsAccumulator
from lerobot_assets.video import streaming
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.decode import decode_frames
from lerobot_assets.video.probe import stream_summary, video_duration_s, video_frame_count
from lerobot_assets.video.streaming import EpisodeVideo, StreamingVideoEncoder, UnknownVideoKeyError
from lerobot_assets.video.synthetic import moving_scene, psnr


def _expected_stats(frames) -> dict:
    acc = ImageStatsAccumulator()
    for f in frames:
        acc.update(f)
    return acc.stats()


def _assert_stats_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def _mp4s(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".mp4" in p.name)


def test_one_camera_exact_file_and_stats(tmp_path):
    frames = moving_scene(45)
    with StreamingVideoEncoder(fps=15) as enc:
        enc.start_episode(["observation.images.front"], tmp_path / "ep")
        for f in frames:
            enc.feed_frame("observation.images.front", f)
        results = enc.finish_episode()
    res = results["observation.images.front"]
    assert isinstance(res, EpisodeVideo)
    assert res.path.parent == tmp_path / "ep" and res.path.suffix == ".mp4"
    assert (res.frames, res.dropped) == (45, 0)
    assert video_frame_count(res.path) == 45
    assert video_duration_s(res.path) == pytest.approx(45 / 15, abs=1e-9)
    assert stream_summary(res.path)["codec"] == "av1"
    _assert_stats_equal(res.stats, _expected_stats(frames))
    assert res.stats["mean"].shape == (3, 1, 1) and int(res.stats["count"][0]) == 45
    assert res.histogram.shape == (3, 256) and int(res.histogram.sum()) == 45 * 64 * 96 * 3
    # LeRobot-style tuple unpacking keeps working.
    path, stats = res
    assert path == res.path and stats is res.stats
    assert (res[0], res[1], len(res)) == (res.path, res.stats, 2)
    decoded = decode_frames(res.path, [i / 15 for i in range(45)], return_uint8=True).numpy()
    assert psnr(decoded.transpose(0, 2, 3, 1), frames) > 28.0
    assert enc.dropped_frames == {"observation.images.front": 0}
    assert _mp4s(tmp_path / "ep") == [res.path.name]


def test_chw_and_float_input_give_same_stats_and_frames(tmp_path):
    frames = moving_scene(10)
    enc = StreamingVideoEncoder(fps=30)
    enc.start_episode(["hwc", "chw", "float"], tmp_path)
    for f in frames:
        enc.feed_frame("hwc", f)
        enc.feed_frame("chw", f.transpose(2, 0, 1))
        enc.feed_frame("float", f.astype(np.float32) / 255.0)
    res = enc.finish_episode()
    enc.close()
    want = _expected_stats(frames)
    ts = [i / 30 for i in range(10)]
    ref = decode_frames(res["hwc"].path, ts, return_uint8=True).numpy()
    for key in ("hwc", "chw", "float"):
        assert res[key].frames == 10
        _assert_stats_equal(res[key].stats, want)
        assert psnr(decode_frames(res[key].path, ts, return_uint8=True).numpy(), ref) > 45.0


def test_several_cameras_and_sequential_episodes(tmp_path):
    enc = StreamingVideoEncoder(fps=30)
    seen = set()
    for episode, length in enumerate((12, 7)):
        big, small = moving_scene(length, 64, 96, start=50 * episode), moving_scene(length, 32, 48)
        enc.start_episode(["big", "small"], tmp_path)
        for b, s in zip(big, small):
            enc.feed_frame("big", b)
            enc.feed_frame("small", s)
        res = enc.finish_episode()
        for key, frames in (("big", big), ("small", small)):
            r = res[key]
            assert r.frames == length and video_frame_count(r.path) == length
            assert video_duration_s(r.path) == pytest.approx(length / 30, abs=1e-9)
            summary = stream_summary(r.path)
            assert (summary["height"], summary["width"]) == frames.shape[1:3]
            _assert_stats_equal(r.stats, _expected_stats(frames))
            assert r.path not in seen
            seen.add(r.path)
        first = decode_frames(res["big"].path, [0.0], return_uint8=True)[0].numpy().transpose(1, 2, 0)
        assert psnr(first, big[0]) > 26.0
    enc.close()
    assert all(p.exists() for p in seen)  # finishing episode 2 did not touch episode 1's files


def test_frame_is_copied_on_feed(tmp_path):
    # Drivers reuse buffers: mutate the same array after every feed.
    enc = StreamingVideoEncoder(fps=30, queue_maxsize=64)
    enc.start_episode(["cam"], tmp_path)
    buffer = np.zeros((64, 96, 3), np.uint8)
    levels = [20, 120, 220, 60]
    for level in levels:
        buffer[:] = level
        enc.feed_frame("cam", buffer)
    buffer[:] = 255
    res = enc.finish_episode()["cam"]
    enc.close()
    means = decode_frames(res.path, [i / 30 for i in range(4)], return_uint8=True).float().mean(dim=(1, 2, 3))
    assert means.tolist() == pytest.approx(levels, abs=3)


def test_cancel_removes_files_and_encoder_is_reusable(tmp_path):
    enc = StreamingVideoEncoder(fps=30)
    enc.start_episode(["a", "b"], tmp_path)
    for f in moving_scene(20):
        enc.feed_frame("a", f)
        enc.feed_frame("b", f)
    enc.cancel_episode()
    assert _mp4s(tmp_path) == []
    assert not enc.episode_active
    enc.cancel_episode()  # no-op when nothing is active
    enc.start_episode(["a"], tmp_path)
    enc.feed_frame("a", moving_scene(1)[0])
    res = enc.finish_episode()
    assert res["a"].frames == 1 and _mp4s(tmp_path) == [res["a"].path.name]
    enc.close()


def test_start_while_active_cancels_previous(tmp_path):
    enc = StreamingVideoEncoder(fps=30)
    enc.start_episode(["a"], tmp_path / "one")
    enc.feed_frame("a", moving_scene(1)[0])
    enc.start_episode(["a"], tmp_path / "two")
    assert _mp4s(tmp_path / "one") == []
    enc.feed_frame("a", moving_scene(1)[0])
    assert enc.finish_episode()["a"].frames == 1
    enc.close()


def test_lifecycle_errors(tmp_path):
    enc = StreamingVideoEncoder(fps=30)
    with pytest.raises(RuntimeError, match=r"^No active episode\. Call start_episode\(\) first\.$"):
        enc.feed_frame("a", moving_scene(1)[0])
    with pytest.raises(RuntimeError, match=r"^No active episode to finish\.$"):
        enc.finish_episode()
    enc.start_episode(["a"], tmp_path)
    enc.feed_frame("a", moving_scene(1)[0])
    enc.close()
    enc.close()  # idempotent
    assert enc.closed and _mp4s(tmp_path) == []
    with pytest.raises(RuntimeError, match="closed"):
        enc.start_episode(["a"], tmp_path)


def test_unknown_key_and_shape_change(tmp_path):
    enc = StreamingVideoEncoder(fps=30)
    enc.start_episode(["front", "wrist"], tmp_path)
    with pytest.raises(UnknownVideoKeyError) as err:
        enc.feed_frame("top", moving_scene(1)[0])
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    assert str(err.value) == "Unknown video key 'top'; this episode was started with keys ['front', 'wrist']"
    enc.feed_frame("front", moving_scene(1)[0])
    with pytest.raises(ValueError, match=r"camera 'front' has shape \(32, 48, 3\).*\(64, 96, 3\)"):
        enc.feed_frame("front", moving_scene(1, 32, 48)[0])
    enc.feed_frame("front", moving_scene(1)[0])  # the episode goes on
    enc.feed_frame("wrist", moving_scene(1)[0])
    res = enc.finish_episode()
    assert (res["front"].frames, res["wrist"].frames) == (2, 1)
    enc.close()


def test_drops_are_counted_logged_and_returned(tmp_path, caplog, slow_encoder):
    frames = moving_scene(4, 240, 320)
    enc = StreamingVideoEncoder(fps=30, queue_maxsize=1, feed_timeout_s=0.0)
    enc.start_episode(["cam"], tmp_path)
    with caplog.at_level(logging.WARNING, logger=streaming.__name__):
        for i in range(120):
            enc.feed_frame("cam", frames[i % 4])
        res = enc.finish_episode()["cam"]
    enc.close()
    assert res.dropped > 0
    assert res.frames + res.dropped == 120
    assert enc.dropped_frames == {"cam": res.dropped}
    assert video_frame_count(res.path) == res.frames
    assert int(res.stats["count"][0]) == res.frames
    messages = [r.getMessage() for r in caplog.records]
    assert any("Encoder queue full for camera 'cam'" in m for m in messages)
    assert any(f"Episode finished with {res.dropped} dropped frame(s) for camera 'cam'" in m for m in messages)


def test_threads_option_reaches_the_encoders(tmp_path):
    svt = StreamingVideoEncoder(fps=30, threads=1)
    assert svt.codec_options["svtav1-params"] == "fast-decode=0:lp=1"
    x264 = StreamingVideoEncoder(fps=30, config=VideoEncoderConfig(vcodec="libx264"), threads=1)
    assert x264.codec_options["threads"] == "1"
    for enc in (svt, x264):
        enc.start_episode(["cam"], tmp_path)
        for f in moving_scene(6):
            enc.feed_frame("cam", f)
        res = enc.finish_episode()["cam"]
        enc.close()
        assert video_frame_count(res.path) == 6
        if enc is x264:
            # x264 writes its effective settings into the stream (SEI): the option got there.
            assert b"threads=1 " in res.path.read_bytes()


def test_compute_stats_off(tmp_path):
    enc = StreamingVideoEncoder(fps=30, compute_stats=False)
    enc.start_episode(["cam"], tmp_path)
    enc.feed_frame("cam", moving_scene(1)[0])
    res = enc.finish_episode()["cam"]
    enc.close()
    assert res.stats is None and res.histogram is None and res.frames == 1


def test_empty_episode_writes_no_file(tmp_path):
    enc = StreamingVideoEncoder(fps=30)
    enc.start_episode(["cam"], tmp_path)
    res = enc.finish_episode()["cam"]
    enc.close()
    assert (res.frames, res.stats) == (0, None)
    assert not res.path.exists() and _mp4s(tmp_path) == []


def _feed_until_error(enc, key, frame, deadline_s=10.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        enc.feed_frame(key, frame)  # raises once the thread has died
        time.sleep(0.01)
    raise AssertionError("encoder thread did not fail")


def test_crashed_thread_surfaces_on_feed_then_cancels_cleanly(tmp_path):
    enc = StreamingVideoEncoder(fps=30)
    directory = tmp_path / "ep"
    enc.start_episode(["front", "wrist"], directory)
    enc.feed_frame("front", moving_scene(1)[0])
    shutil.rmtree(directory)  # the wrist encoder cannot create its file now
    with pytest.raises(RuntimeError) as err:
        _feed_until_error(enc, "wrist", moving_scene(1)[0])
    msg = str(err.value)
    assert "camera 'wrist'" in msg and "crashed" in msg
    assert "No such file" in msg or "FileNotFoundError" in msg
    with pytest.raises(RuntimeError, match="camera 'wrist'"):
        enc.finish_episode()
    assert enc.episode_active
    enc.cancel_episode()
    assert not enc.episode_active
    assert not directory.exists() or _mp4s(directory) == []
    enc.start_episode(["front"], tmp_path / "again")
    enc.feed_frame("front", moving_scene(1)[0])
    assert enc.finish_episode()["front"].frames == 1
    enc.close()


def test_crash_in_encoder_thread_surfaces_on_finish(tmp_path, monkeypatch):
    class ExplodingStats(ImageStatsAccumulator):
        def update(self, frame):
            raise ArithmeticError("stats blew up")

    monkeypatch.setattr(streaming, "ImageStatsAccumulator", ExplodingStats)
    enc = StreamingVideoEncoder(fps=30)
    enc.start_episode(["cam"], tmp_path)
    enc.feed_frame("cam", moving_scene(1)[0])
    with pytest.raises(RuntimeError, match=r"camera 'cam' crashed: ArithmeticError: stats blew up"):
        enc.finish_episode()
    enc.cancel_episode()
    assert _mp4s(tmp_path) == []
    enc.close()


def test_blocking_feed_never_drops(tmp_path):
    enc = StreamingVideoEncoder(fps=30, queue_maxsize=1, feed_timeout_s=None)
    enc.start_episode(["cam"], tmp_path)
    frame = np.zeros((32, 48, 3), np.uint8)
    for i in range(60):
        enc.feed_frame("cam", frame + i)
    res = enc.finish_episode()["cam"]
    enc.close()
    assert (res.frames, res.dropped) == (60, 0)


def test_fill_dropped_keeps_one_video_frame_per_fed_frame(tmp_path, slow_encoder):
    from lerobot_assets.video.probe import video_frame_count

    enc = StreamingVideoEncoder(fps=30, queue_maxsize=1, feed_timeout_s=0.0, fill_dropped=True)
    enc.start_episode(["cam"], tmp_path)
    for i in range(120):
        enc.feed_frame("cam", np.full((32, 48, 3), i % 250, np.uint8))
    res = enc.finish_episode()["cam"]
    enc.close()
    assert res.dropped > 0
    assert res.frames == 120 == video_frame_count(res.path)
