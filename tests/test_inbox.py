"""The raw recording format (raw-v1): round trip, and errors that name the file and the row."""

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_defs_support import CAM, FEATURES, episode_frames, image, make_inbox_session

from lerobot_assets.home import (
    inbox_session_key,
    next_free_seed,
    overlapping_sim_sessions,
    parse_session_key,
    sim_session_key,
    sim_session_keys,
)
from lerobot_assets.sources import inbox
from lerobot_assets.sources.inbox import RawFormatError, read_session, validate_session


def _rewrite_frames(path: Path, **columns: pa.Array) -> None:
    table = pq.read_table(path)
    for name, values in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, values)
    pq.write_table(table, path)


def _error(root: Path) -> RawFormatError:
    with pytest.raises(RawFormatError) as info:
        read_session(root)
    return info.value


@pytest.mark.parametrize("camera_format", ["png", "mp4"])
def test_round_trip_values(tmp_path: Path, camera_format: str) -> None:
    root = make_inbox_session(tmp_path, "s1", [5, 3], ["pick", "place"], camera_format=camera_format)
    assert sorted(p.name for p in root.iterdir()) == ["_COMPLETE", "episode_000000", "episode_000001", "session.json"]
    session = read_session(root)
    assert [e.length for e in session.episodes] == [5, 3]
    assert session.frames == 8 and session.duration_s == pytest.approx(0.8)
    assert session.tasks == ["pick", "place"]
    assert session.camera_kinds() == {CAM: camera_format}
    assert session.spec.writer_features()[CAM]["shape"] == [32, 48, 3]
    frames = list(inbox.iter_episode_frames(session, session.episodes[1]))
    assert len(frames) == 3
    assert [f["task"] for f in frames] == ["place"] * 3
    # Episode 1 starts at 1000 (see episode_frames): numeric values survive exactly.
    np.testing.assert_array_equal(frames[2]["observation.state"], np.array([1002.0, -1002.0], np.float32))
    assert frames[2]["observation.state"].dtype == np.float32
    if camera_format == "png":  # lossless
        np.testing.assert_array_equal(frames[2][CAM], image(2))
    else:  # near-lossless H.264
        assert np.abs(frames[2][CAM].astype(int) - image(2).astype(int)).mean() < 3
    t = pq.read_table(root / "episode_000000" / "frames.parquet")
    assert t.column_names == ["timestamp", "observation.state", "action", "task"]
    np.testing.assert_allclose(t.column("timestamp").to_numpy(), np.arange(5) / 10)


@pytest.mark.parametrize("camera_format", ["png", "mp4"])
def test_preview_frame_is_frame_0_of_episode_0_of_that_camera(tmp_path: Path, camera_format: str) -> None:
    wrist = "observation.images.wrist"
    features = {**FEATURES, wrist: {"dtype": "video", "shape": [16, 24, 3]}}
    # Every (episode, frame, camera) gets its own picture, so a preview of the wrong one shows.
    episodes = [
        [{**f, CAM: image(10 * e + t), wrist: 255 - image(10 * e + t, 16, 24)} for t, f in enumerate(episode_frames(3, "a"))]
        for e in range(2)
    ]
    root = inbox.write_session(tmp_path / "s", fps=10, features=features, episodes=episodes, camera_format=camera_format)  # type: ignore[arg-type]
    session = read_session(root)
    first = next(inbox.iter_episode_frames(session, session.episodes[0]))
    pictures = {CAM: lambda i: image(i), wrist: lambda i: 255 - image(i, 16, 24)}
    for key, picture in pictures.items():
        frame = inbox.preview_frame(root, key)
        assert frame is not None and frame.dtype == np.uint8 and frame.shape == picture(0).shape
        np.testing.assert_array_equal(frame, first[key])  # what the conversion reads as that frame
        if camera_format == "png":  # lossless
            np.testing.assert_array_equal(frame, picture(0))
        else:  # near-lossless H.264: closer to frame 0 than to frame 1 or to episode 1's frame 0
            error = {i: np.abs(frame.astype(int) - picture(i).astype(int)).mean() for i in (0, 1, 10)}
            assert error[0] < 3 and error[0] + 1 < min(error[1], error[10]), error
    assert inbox.preview_frame(root, "observation.images.nope") is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert inbox.preview_frame(empty, CAM) is None


def test_incomplete_session_is_not_read(tmp_path: Path) -> None:
    root = make_inbox_session(tmp_path, "s1", [3], complete=False)
    session, problems = validate_session(root)
    assert session is None and "_COMPLETE" in str(problems[0])
    assert read_session(root, require_complete=False).frames == 3


def test_shifted_timestamp_names_file_and_row(tmp_path: Path) -> None:
    root = make_inbox_session(tmp_path, "s1", [6, 4])
    path = root / "episode_000001" / "frames.parquet"
    ts = np.arange(4) / 10
    ts[2:] += 0.1  # frame 2 is late by a whole frame period: a dropped frame
    _rewrite_frames(path, timestamp=pa.array(ts))
    err = _error(root)
    assert err.problems[0].path == path and err.problems[0].row == 2
    assert str(err).startswith(f"{path}: row 2: timestamp 0.3 s, expected 0.2 s")


def test_nan_and_wrong_width_name_the_row(tmp_path: Path) -> None:
    root = make_inbox_session(tmp_path, "s1", [5])
    path = root / "episode_000000" / "frames.parquet"
    state = [[float(i), 0.0] for i in range(5)]
    state[3][1] = float("nan")
    _rewrite_frames(path, **{"observation.state": pa.array(state, pa.list_(pa.float32()))})
    err = _error(root)
    assert (err.problems[0].path, err.problems[0].row) == (path, 3)
    assert "non-finite" in str(err)
    action = [[1.0, 2.0]] * 5
    action[4] = [1.0, 2.0, 3.0]
    state[3][1] = 0.0
    _rewrite_frames(path, **{"observation.state": pa.array(state, pa.list_(pa.float32())), "action": pa.array(action, pa.list_(pa.float32()))})
    err = _error(root)
    assert str(err) == f"{path}: row 4: action has 3 values, expected 2 (shape [2])"


def test_empty_task_missing_and_extra_columns(tmp_path: Path) -> None:
    root = make_inbox_session(tmp_path, "s1", [4])
    path = root / "episode_000000" / "frames.parquet"
    _rewrite_frames(path, task=pa.array(["a", "a", "", "a"]))
    assert str(_error(root)) == f"{path}: row 2: task is empty: every frame names its task"
    table = pq.read_table(path).drop_columns(["action"]).append_column("gripper", pa.array([0.0] * 4))
    pq.write_table(table, path)
    problems = [str(p) for p in _error(root).problems]
    assert any("missing columns ['action']" in p for p in problems)
    assert any("unexpected columns ['gripper']" in p for p in problems)


def test_missing_png_and_mp4_frame_count(tmp_path: Path) -> None:
    root = make_inbox_session(tmp_path, "png", [5])
    missing = root / "episode_000000" / CAM / "000003.png"
    missing.unlink()
    err = _error(root)
    assert (err.problems[0].path, err.problems[0].row) == (missing, 3)
    root = make_inbox_session(tmp_path, "mp4", [5, 4], camera_format="mp4")
    path = root / "episode_000001" / "frames.parquet"
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(3, 1)]).set_column(0, "timestamp", pa.array(np.arange(5) / 10)), path)
    err = _error(root)
    video = root / "episode_000001" / f"{CAM}.mp4"
    assert (err.problems[0].path, err.problems[0].row) == (video, 4)
    assert "4 video frames for 5 rows" in str(err)


def test_wrong_image_size_and_bad_session_json(tmp_path: Path) -> None:
    from PIL import Image

    root = make_inbox_session(tmp_path, "s1", [3])
    bad = root / "episode_000000" / CAM / "000001.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(bad)
    err = _error(root)
    assert (err.problems[0].path, err.problems[0].row) == (bad, 1) and "10x10" in str(err)
    spec = json.loads((root / "session.json").read_text())
    del spec["features"]["action"]
    spec["fps"] = 0
    (root / "session.json").write_text(json.dumps(spec))
    problems = [str(p) for p in _error(root).problems]
    assert all(p.startswith(str(root / "session.json")) for p in problems)
    assert any("fps" in p for p in problems) and any("action" in p for p in problems)


def test_writer_rejects_index_features_and_streams(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        inbox.SessionSpec(fps=10, features={**{k: v for k, v in FEATURES.items() if k != CAM}, "frame_index": {"shape": [1]}})
    w = inbox.RawSessionWriter.create(tmp_path / "s", fps=10, features=FEATURES)
    for f in episode_frames(3, "t"):
        w.add_frame(f)
    assert w.save_episode() == 3
    w.add_frame(episode_frames(1, "t")[0])
    w.clear_episode()  # an aborted episode leaves nothing behind
    w.complete()
    assert [e.length for e in read_session(tmp_path / "s").episodes] == [3]


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    root = make_inbox_session(tmp_path, "s1", [3])
    before = inbox.session_fingerprint(root)
    assert inbox.session_fingerprint(root) == before
    png = root / "episode_000000" / CAM / "000000.png"
    st = png.stat()
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert inbox.session_fingerprint(root) != before


def test_session_names() -> None:
    assert sim_session_key(0, 10) == "sim-s0000-0009"
    assert sim_session_keys(3, 5, first_seed=10) == ["sim-s0010-0014", "sim-s0015-0019", "sim-s0020-0024"]
    assert parse_session_key("sim-s0010-0014").seeds == list(range(10, 15))
    assert parse_session_key("inbox-2024_06_01.a").kind == "inbox"
    assert inbox_session_key("run-7") == "inbox-run-7"
    for bad in ("sim-s0005-0001", "other-x", "inbox-", "inbox-a b", "import-/x"):
        with pytest.raises(ValueError):
            parse_session_key(bad)
    with pytest.raises(ValueError):
        inbox_session_key("bad name!")
    keys = ["sim-s0000-0009", "inbox-a", "sim-s0010-0019"]
    assert next_free_seed(keys) == 20 and next_free_seed(["inbox-a"]) == 0
    assert overlapping_sim_sessions(keys, "sim-s0005-0012") == ["sim-s0000-0009", "sim-s0010-0019"]
    assert overlapping_sim_sessions(keys, "sim-s0020-0029") == []


def test_slow_encoder_backpressures_instead_of_dropping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Building from recorded files waits for a busy encoder: no frame is dropped, no episode lost."""
    import time

    import lerobot_assets.video.streaming as streaming
    from lerobot_assets.format import DatasetMeta
    from lerobot_assets.home import HomeLayout, build_session_dataset, normalize_session

    real_init, real_write = streaming.StreamingVideoEncoder.__init__, streaming.Mp4FrameWriter.write

    def tiny_queue(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["queue_maxsize"] = 1
        real_init(self, *args, **kwargs)

    def slow_write(self, frame):  # type: ignore[no-untyped-def]
        time.sleep(0.25)  # longer than the writer's 0.1 s feed timeout
        real_write(self, frame)

    monkeypatch.setattr(streaming.StreamingVideoEncoder, "__init__", tiny_queue)
    monkeypatch.setattr(streaming.Mp4FrameWriter, "write", slow_write)
    layout = HomeLayout(tmp_path)
    make_inbox_session(tmp_path, "a", [6])
    build = build_session_dataset(normalize_session("inbox-a", layout), layout.session("inbox-a"))
    assert (build.frames, build.dropped_frames) == (6, 0)
    assert DatasetMeta(layout.session("inbox-a")).info.total_frames == 6
