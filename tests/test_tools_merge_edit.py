"""merge as an edit tool: one-line errors naming the first incompatibility (nothing written), cameras
in different encodings kept in separate files with a truthful info.json, optional re-encode, and
`merge_to_new` (a new root; inputs never written)."""

import json
import re
import shutil
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import FIXTURE
from tools_support import tree_digest

from lerobot_assets.checks.validate import validate_dataset
from lerobot_assets.format import DatasetMeta
from lerobot_assets.recording import DatasetWriter
from lerobot_assets.tools.merge import SOURCES_PATH, merge_datasets, merge_to_new
from lerobot_assets.tools.output import OutputExistsError, OutputIsInputError
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.probe import stream_summary

H264 = VideoEncoderConfig(vcodec="libx264")
CAMS = ("observation.images.front", "observation.images.wrist")
SMALL = {
    "observation.state": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
    "action": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
    "observation.images.front": {"dtype": "video", "shape": [16, 16, 3], "names": ["height", "width", "channels"]},
}


def fixture_features() -> dict[str, Any]:
    """The fixture's user features (no index features, no video info blocks)."""
    info = json.loads((FIXTURE / "meta/info.json").read_text())
    skip = {"timestamp", "frame_index", "episode_index", "index", "task_index"}
    return {k: {kk: vv for kk, vv in f.items() if kk != "info"} for k, f in info["features"].items() if k not in skip}


def frame_for(features: dict[str, Any], rng: np.random.Generator, t: int, task: str) -> dict[str, Any]:
    frame: dict[str, Any] = {"task": task}
    for key, spec in features.items():
        if spec["dtype"] == "video":
            h, w = spec["shape"][:2]
            y, x = np.mgrid[0:h, 0:w]
            frame[key] = np.stack([(x * 4 + t * 3) % 256, (y * 5 + t * 2) % 256, np.full_like(x, 60)], -1).astype(np.uint8)
        else:
            frame[key] = rng.standard_normal(spec["shape"]).astype(spec["dtype"])
    return frame


def make(root: Path, features: dict[str, Any], lengths: list[int], fps: int = 30, robot_type: str | None = "so100",
         encoder: VideoEncoderConfig | None = None) -> Path:
    rng = np.random.default_rng(len(lengths))
    w = DatasetWriter.create(root, fps=fps, features=features, robot_type=robot_type, encoder=encoder)
    for i, n in enumerate(lengths):
        for t in range(n):
            w.add_frame(frame_for(features, rng, t, f"task {i % 2}"))
        w.save_episode()
    w.finalize()
    return root


def decode_span(path: Path, start: float, stop: float, fps: int = 30) -> list[np.ndarray]:
    """The frames of `path` in [start, stop) (half a frame of tolerance, as the validator)."""
    half = 0.5 / fps
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])
                if f.time is not None and start - half <= f.time < stop - half]


def episode_frames(root: Path, ep: int, key: str) -> list[np.ndarray]:
    meta = DatasetMeta(root)
    row = meta.episode(ep)
    return decode_span(meta.episode_video_file(row, key), row[f"videos/{key}/from_timestamp"], row[f"videos/{key}/to_timestamp"])


def keyframe_times(path: Path) -> set[float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return {round(float(p.pts * s.time_base), 6) for p in c.demux(s) if p.size and p.is_keyframe}


# ------------------------------------------------------------------------ incompatible inputs
def variant(name: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(features, make kwargs, expected message with {a} and {b} for the roots) of source 'b'."""
    feats = json.loads(json.dumps(SMALL))
    kwargs: dict[str, Any] = {}
    if name == "fps":
        kwargs["fps"] = 10
        return feats, kwargs, "source 'b' ({b}): fps 10 differs from 30 in 'a' ({a})"
    if name == "robot_type":
        kwargs["robot_type"] = "koch"
        return feats, kwargs, "source 'b' ({b}): robot_type 'koch' differs from 'so100' in 'a' ({a})"
    if name == "shape":
        feats["action"] = {"dtype": "float32", "shape": [7], "names": [f"j{i}" for i in range(7)]}
        return feats, kwargs, "source 'b' ({b}): feature 'action' shape [7] differs from [6] in 'a' ({a})"
    if name == "dtype":
        feats["action"]["dtype"] = "float64"
        return feats, kwargs, "source 'b' ({b}): feature 'action' dtype float64 differs from float32 in 'a' ({a})"
    if name == "names":
        feats["action"]["names"] = [f"m{i}" for i in range(6)]
        return feats, kwargs, (
            "source 'b' ({b}): feature 'action' names ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'] differ from "
            "['j0', 'j1', 'j2', 'j3', 'j4', 'j5'] in 'a' ({a})"
        )
    if name == "extra":
        feats["observation.images.top"] = {"dtype": "video", "shape": [16, 16, 3], "names": ["height", "width", "channels"]}
        return feats, kwargs, "source 'b' ({b}): has feature 'observation.images.top' that 'a' ({a}) lacks"
    assert name == "missing"
    del feats["observation.state"]
    return feats, kwargs, "source 'b' ({b}): lacks feature 'observation.state' that 'a' ({a}) has"


@pytest.fixture(scope="module")
def base_a(tmp_path_factory) -> Path:
    return make(tmp_path_factory.mktemp("incompat") / "a", SMALL, [3])


@pytest.mark.parametrize("name", ["fps", "robot_type", "shape", "dtype", "names", "extra", "missing"])
def test_incompatible_input_is_one_line_naming_it_and_writes_nothing(tmp_path, base_a, name):
    feats, kwargs, expected = variant(name)
    b = make(tmp_path / "b", feats, [2], **kwargs)
    message = "^" + re.escape(expected.format(a=base_a, b=b)) + "$"
    inputs = {p: tree_digest(p) for p in (base_a, b)}
    # A new root: the output never appears.
    with pytest.raises(ValueError, match=message):
        merge_to_new([base_a, b], tmp_path / "new")
    assert not (tmp_path / "new").exists()
    # An incremental output that holds 'a': byte-identical after the refused append.
    out = tmp_path / "merged"
    merge_datasets([("a", base_a)], out)
    before = tree_digest(out)
    with pytest.raises(ValueError, match=message):
        merge_datasets([("a", base_a), ("b", b)], out)
    assert tree_digest(out) == before
    assert not [p.name for p in tmp_path.iterdir() if ".rebuild-" in p.name or ".merge-" in p.name]
    assert {p: tree_digest(p) for p in (base_a, b)} == inputs


# -------------------------------------------------------------------- mixed encodings: AV1 + H.264
@pytest.fixture(scope="module")
def h264(tmp_path_factory) -> Path:
    return make(tmp_path_factory.mktemp("h264") / "h264", fixture_features(), [5, 4], encoder=H264)


def assert_close_and_aligned(got: list[np.ndarray], want: list[np.ndarray], atol: float, what: str) -> None:
    """Re-encoded frames: close to the input's, and closer than the input's neighbours are. The
    encoder loses about as much as a frame moves, so closeness alone would not catch a segment
    shifted by one frame. (No bit-exact oracle: libx264's output for the same frames was seen to
    vary from run to run here, even single-threaded.)"""
    g, w = np.stack(got).astype(np.int16), np.stack(want).astype(np.int16)
    aligned = float(np.abs(g - w).mean())
    assert aligned <= atol, (what, aligned)
    if len(got) > 1:
        for shifted in (np.abs(g[1:] - w[:-1]).mean(), np.abs(g[:-1] - w[1:]).mean()):
            assert float(np.abs(g[1:] - w[1:]).mean()) < 0.8 * shifted and aligned < 0.8 * shifted, (what, aligned, shifted)


def assert_frames_equal_inputs(out: Path, parts: list[Path], exact: list[bool], atol: float = 0.0) -> None:
    ep = 0
    for part, is_exact in zip(parts, exact):
        for src_ep in range(DatasetMeta(part).num_episodes):
            for key in CAMS:
                got, want = episode_frames(out, ep, key), episode_frames(part, src_ep, key)
                assert len(got) == len(want) == DatasetMeta(part).episode(src_ep)["length"]
                if is_exact:  # stream copy: bit-identical
                    for g, w in zip(got, want):
                        np.testing.assert_array_equal(g, w)
                else:
                    assert_close_and_aligned(got, want, atol, f"{key} episode {ep}")
            ep += 1


def test_mixed_codecs_go_to_separate_files_and_info_says_null(tmp_path, h264):
    inputs = {p: tree_digest(p) for p in (FIXTURE, h264)}
    result = merge_to_new([FIXTURE, h264], tmp_path / "out")
    out = tmp_path / "out"
    assert (result.operation, result.output, result.episodes, result.frames) == ("merge", out, 5, 69)
    assert result.bytes > 0 and any("video.codec" in n for n in result.notes)
    meta = DatasetMeta(out)
    info = json.loads((out / "meta/info.json").read_text())
    for key in CAMS:
        files = [meta.episode_video_file(meta.episode(i), key) for i in range(5)]
        # The fixture's three episodes share its file; the H.264 recording's two start the next.
        assert [f.name for f in files] == ["file-000.mp4"] * 3 + ["file-001.mp4"] * 2
        assert [stream_summary(f)["codec"] for f in (files[0], files[3])] == ["av1", "h264"]
        block = info["features"][key]["info"]
        src = json.loads((FIXTURE / "meta/info.json").read_text())["features"][key]["info"]
        assert block["video.codec"] is None and block["video.preset"] is None  # av1/12 vs h264/None
        # What both sources agree on stays.
        for field in ("video.height", "video.width", "video.pix_fmt", "video.fps", "video.g", "video.crf", "is_depth_map"):
            assert block[field] == src[field], field
        assert block["video.extra_options"] == {}
    report = validate_dataset(out)
    assert report.ok, [str(p) for p in report.errors]
    assert not report.warnings, [str(p) for p in report.warnings]
    assert_frames_equal_inputs(out, [FIXTURE, h264], [True, True])
    sources = json.loads((out / SOURCES_PATH).read_text())
    assert [s["name"] for s in sources] == ["lerobot-v3-tiny", "h264"]
    assert {p: tree_digest(p) for p in (FIXTURE, h264)} == inputs

    # Appended one source at a time, the info.json is the same: truthful on append too.
    inc = tmp_path / "incremental"
    merge_datasets([("lerobot-v3-tiny", FIXTURE)], inc)
    codec_before = json.loads((inc / "meta/info.json").read_text())["features"][CAMS[0]]["info"]["video.codec"]
    assert codec_before == "av1"
    res = merge_datasets([("lerobot-v3-tiny", FIXTURE), ("h264", h264)], inc)
    assert res.mode == "append" and any("video.codec" in n for n in res.notes)
    assert json.loads((inc / "meta/info.json").read_text()) == info
    assert validate_dataset(inc).ok


def test_same_codec_merge_keeps_the_sources_block(tmp_path):
    # Two copies of the LeRobot fixture: the block is the fixture's, files joined into one.
    merge_to_new([FIXTURE, FIXTURE], tmp_path / "out")
    info = json.loads((tmp_path / "out/meta/info.json").read_text())
    src = json.loads((FIXTURE / "meta/info.json").read_text())
    for key in CAMS:
        assert info["features"][key]["info"] == src["features"][key]["info"]
    sources = json.loads((tmp_path / "out" / SOURCES_PATH).read_text())
    assert [s["name"] for s in sources] == ["lerobot-v3-tiny", "lerobot-v3-tiny-2"]
    assert len(list((tmp_path / "out/videos" / CAMS[0]).rglob("*.mp4"))) == 1


def test_reencode_puts_every_camera_in_one_encoding(tmp_path, h264):
    inputs = {p: tree_digest(p) for p in (FIXTURE, h264)}
    out = tmp_path / "out"
    result = merge_to_new([FIXTURE, h264], out, reencode=H264)
    assert (result.episodes, result.frames) == (5, 69)
    # The fixture's file per camera; the H.264 recording is already in the target encoding.
    assert result.notes == ["re-encoded 2 source video files with libx264"]
    meta = DatasetMeta(out)
    info = json.loads((out / "meta/info.json").read_text())
    for key in CAMS:
        files = sorted((out / "videos" / key).rglob("*.mp4"))
        assert {stream_summary(f)["codec"] for f in files} == {"h264"}
        block = info["features"][key]["info"]
        assert block["video.codec"] == "h264" and block["video.pix_fmt"] == "yuv420p"
        assert {k: block[k] for k in H264.info_fields()} == H264.info_fields()
        # Every episode starts on a keyframe of its file (one encoded segment per episode).
        for i in range(meta.num_episodes):
            row = meta.episode(i)
            assert round(row[f"videos/{key}/from_timestamp"], 6) in keyframe_times(meta.episode_video_file(row, key))
    report = validate_dataset(out)
    assert report.ok and not report.warnings, [str(p) for p in report.problems]
    # The AV1 fixture was re-encoded (close), the H.264 recording already matched (stream copy).
    assert_frames_equal_inputs(out, [FIXTURE, h264], [False, True], atol=4.0)
    # The data and stats are those of the plain merge.
    plain = tmp_path / "plain"
    merge_to_new([FIXTURE, h264], plain)
    assert pq.read_table(out / "data/chunk-000/file-000.parquet").equals(pq.read_table(plain / "data/chunk-000/file-000.parquet"))
    assert {p: tree_digest(p) for p in (FIXTURE, h264)} == inputs
    # An incremental output in another encoding is rebuilt in the requested one.
    inc = tmp_path / "inc"
    merge_datasets([("a", FIXTURE)], inc)
    res = merge_datasets([("a", FIXTURE), ("b", h264)], inc, reencode=H264)
    assert res.mode == "rebuild"
    assert json.loads((inc / "meta/info.json").read_text())["features"] == info["features"]
    assert merge_datasets([("a", FIXTURE), ("b", h264)], inc, reencode=H264).mode == "unchanged"


def test_reencode_starts_every_episode_on_a_keyframe_whatever_the_gop(tmp_path, h264):
    # GOP 50 without scene cuts: one encode of the whole file would have a single keyframe; the H.264 recording's
    # second episode starts at frame 5 and must still start on one.
    sparse = VideoEncoderConfig(vcodec="libx264", g=50, extra_options={"x264-params": "scenecut=0"})
    out = tmp_path / "out"
    merge_to_new([h264, h264], out, reencode=sparse)
    meta = DatasetMeta(out)
    assert meta.num_episodes == 4
    for key in CAMS:
        assert json.loads((out / "meta/info.json").read_text())["features"][key]["info"]["video.g"] == 50
        for i in range(4):
            row = meta.episode(i)
            path = meta.episode_video_file(row, key)
            assert round(row[f"videos/{key}/from_timestamp"], 6) in keyframe_times(path)
            got = episode_frames(out, i, key)
            want = episode_frames(h264, i % 2, key)
            assert len(got) == len(want) == row["length"]
            assert_close_and_aligned(got, want, 6.0, f"{key} episode {i}")
        # Fewer keyframes than a GOP-2 file: the segments were really re-encoded.
        assert len(keyframe_times(meta.episode_video_file(meta.episode(0), key))) == 4
    assert validate_dataset(out).ok


# ------------------------------------------------------------------------------ merge_to_new
def test_merge_to_new_refuses_existing_output_and_inputs(tmp_path):
    a, b = tmp_path / "x" / "d", tmp_path / "y" / "d"
    shutil.copytree(FIXTURE, a)
    shutil.copytree(FIXTURE, b)
    inputs = {p: tree_digest(p) for p in (a, b)}
    out = tmp_path / "out"
    merge_to_new([a], out)
    before = tree_digest(out)
    with pytest.raises(OutputExistsError, match="exists"):
        merge_to_new([a, b], out)
    assert tree_digest(out) == before
    with pytest.raises(OutputIsInputError):
        merge_to_new([a, b], a / "merged")
    assert not (a / "merged").exists()
    seen: list[tuple[str, int, int]] = []
    result = merge_to_new([a, str(b)], out, overwrite=True, progress=lambda *args: seen.append(args))
    assert (result.episodes, result.frames) == (6, 120)
    assert seen[-1] == ("merge", 2, 2)
    sources = json.loads((out / SOURCES_PATH).read_text())
    assert [s["name"] for s in sources] == ["d", "d-2"]
    assert validate_dataset(out).ok
    assert {p: tree_digest(p) for p in (a, b)} == inputs
