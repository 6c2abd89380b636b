"""VideoEncoderConfig: LeRobot's defaults and option mapping, validation against PyAV's encoders."""

import json

import pytest
from helpers import FIXTURE

from lerobot_assets.video.config import X26X_PRESETS, VideoEncoderConfig
from lerobot_assets.video.encode import encode_frames
from lerobot_assets.video.probe import video_frame_count
from lerobot_assets.video.synthetic import moving_scene


def test_defaults_map_to_lerobot_options():
    cfg = VideoEncoderConfig()
    assert cfg.codec_options() == {"g": "2", "crf": "30", "preset": "12", "svtav1-params": "fast-decode=0"}
    assert cfg.codec_options(threads=2)["svtav1-params"] == "fast-decode=0:lp=2"
    assert "threads" not in cfg.codec_options(threads=2)


def test_info_fields_exact_keys_and_order():
    info = VideoEncoderConfig().info_fields()
    assert list(info.items()) == [
        ("video.g", 2),
        ("video.crf", 30),
        ("video.preset", 12),
        ("video.fast_decode", 0),
        ("video.video_backend", "pyav"),
        ("video.extra_options", {}),
    ]


def test_x264_options_tune_threads_and_preset_index():
    cfg = VideoEncoderConfig(vcodec="libx264", crf=23, preset=3, fast_decode=1, g=10)
    assert cfg.codec_options(threads=1) == {
        "g": "10",
        "crf": "23",
        "preset": "faster",
        "tune": "fastdecode",
        "threads": "1",
    }
    assert "tune" not in VideoEncoderConfig(vcodec="libx264").codec_options()


def test_alias_h264_resolves_to_libx264_and_default_preset_falls_back():
    cfg = VideoEncoderConfig(vcodec="h264")
    assert cfg.encoder_name == "libx264"
    # preset 12 is libsvtav1's default, meaningless for x264: left to the encoder's default.
    assert cfg.preset is None
    assert "preset" not in cfg.codec_options()


def test_extra_options_merge_last_and_params_join():
    cfg = VideoEncoderConfig(extra_options={"svtav1-params": "tune=0", "crf": 20, "bf": 0})
    opts = cfg.codec_options(threads=3)
    assert opts["svtav1-params"] == "fast-decode=0:lp=3:tune=0"
    assert opts["crf"] == "20"
    assert opts["bf"] == "0"
    assert cfg.info_fields()["video.extra_options"] == {"svtav1-params": "tune=0", "crf": 20, "bf": 0}


def test_unknown_encoder_names_field_and_choices():
    with pytest.raises(ValueError) as err:
        VideoEncoderConfig(vcodec="not-a-codec")
    msg = str(err.value)
    assert "vcodec='not-a-codec'" in msg
    assert "libsvtav1" in msg and "libx264" in msg


def test_pix_fmt_not_supported_lists_allowed():
    with pytest.raises(ValueError) as err:
        VideoEncoderConfig(pix_fmt="rgb24")
    msg = str(err.value)
    assert "pix_fmt='rgb24'" in msg
    assert "yuv420p" in msg and "libsvtav1" in msg


@pytest.mark.parametrize(
    ("kwargs", "needle", "allowed"),
    [
        ({"crf": 64}, "crf=64", "0..63"),
        ({"crf": -1}, "crf=-1", "0..63"),
        ({"vcodec": "libx264", "crf": 52}, "crf=52", "0..51"),
        ({"vcodec": "libx265", "crf": 60}, "crf=60", "0..51"),
        ({"preset": 14}, "preset=14", "-2..13"),
        ({"preset": "fast"}, "preset='fast'", "-2..13"),
        ({"vcodec": "libx264", "preset": "bogus"}, "preset='bogus'", "ultrafast"),
        ({"vcodec": "libx264", "preset": 10}, "preset=10", "0..9"),
        ({"fast_decode": 3}, "fast_decode=3", "0..2"),
        ({"video_backend": "opencv"}, "video_backend='opencv'", "pyav"),
    ],
)
def test_out_of_range_values_raise_with_field_and_allowed(kwargs, needle, allowed):
    with pytest.raises(ValueError) as err:
        VideoEncoderConfig(**kwargs)
    assert needle in str(err.value)
    assert allowed in str(err.value)


def test_negative_g_rejected():
    with pytest.raises(ValueError, match="g"):
        VideoEncoderConfig(g=0)


def test_assignment_is_validated():
    cfg = VideoEncoderConfig()
    with pytest.raises(ValueError, match="crf=99"):
        cfg.crf = 99


def test_x264_preset_names_accepted():
    for name in X26X_PRESETS:
        assert VideoEncoderConfig(vcodec="libx264", preset=name).codec_options()["preset"] == name


@pytest.mark.parametrize(
    "kwargs",
    [
        {"crf": 0, "preset": 13},
        {"crf": 63, "preset": 13, "fast_decode": 2},
        {"vcodec": "libx264", "crf": 51, "preset": "ultrafast"},
        {"vcodec": "libx264", "crf": 0, "preset": 0},
    ],
)
def test_range_edges_really_encode(tmp_path, kwargs):
    # The table's edges must be values FFmpeg accepts, not just values we let through.
    path = tmp_path / "edge.mp4"
    assert encode_frames(moving_scene(4, 32, 48), path, 30, VideoEncoderConfig(**kwargs)) == 4
    assert video_frame_count(path) == 4


def test_from_info_block_round_trips_fixture_settings():
    info = json.loads((FIXTURE / "meta" / "info.json").read_text())
    block = info["features"]["observation.images.front"]["info"]
    cfg = VideoEncoderConfig.from_info_block(block)
    assert cfg == VideoEncoderConfig()
    h264 = VideoEncoderConfig.from_info_block({**block, "video.codec": "h264", "video.preset": "fast", "video.crf": 23})
    assert (h264.encoder_name, h264.preset, h264.crf) == ("libx264", "fast", 23)
