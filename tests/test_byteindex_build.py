"""Index builder: tight spans, per-frame table, parquet output, incremental rebuilds, progress."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_assets.byteindex import INDEX_DIR, BuildProgress, TrackTimeline, build_byte_index, parse_mp4
from lerobot_assets.byteindex.testing import make_multi_episode_mp4, write_sample_dataset

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot-v3-tiny"
H264 = "observation.images.h264"
AV1 = "observation.images.av1"
NOFS = "observation.images.nofs"


@pytest.fixture()
def dataset(tmp_path) -> Path:
    root = tmp_path / "ds"
    write_sample_dataset(root)
    return root


def rows_by(table, *keys):
    return {tuple(r[k] for k in keys): r for r in table.to_pylist()}


def test_build_writes_three_tables_with_expected_rows(dataset):
    result = build_byte_index(dataset, workers=2)
    index_dir = dataset / INDEX_DIR
    assert result.index_dir == str(index_dir)
    assert sorted(p.name for p in index_dir.iterdir()) == ["files.parquet", "frames.parquet", "segments.parquet"]
    files = pq.read_table(index_dir / "files.parquet")
    segments = pq.read_table(index_dir / "segments.parquet")
    frames = pq.read_table(index_dir / "frames.parquet")
    assert (files.num_rows, segments.num_rows, frames.num_rows) == (3, 12, 270)
    assert segments.equals(result.tables.segments) and frames.equals(result.tables.frames)
    assert result.stats.files == result.stats.files_indexed == 3 and result.stats.files_reused == 0
    for column in ("video_key", "chunk_index", "file_index", "episode_index", "frame_index", "pts_s", "byte_offset", "size", "keyframe"):
        assert column in frames.column_names
    for column in ("from_timestamp", "to_timestamp", "byte_start", "byte_end", "header_ranges", "codec", "n_frames", "file_size", "file_mtime_ns", "file_fingerprint"):
        assert column in segments.column_names
    seg = rows_by(segments, "video_key", "episode_index")
    assert [seg[(H264, e)]["n_frames"] for e in range(4)] == [20, 25, 15, 30]
    assert all(r["n_frames"] == r["expected_frames"] for r in seg.values())
    assert {r["codec"] for r in seg.values()} == {"avc1", "av01"}
    assert seg[(AV1, 0)]["codec_name"] == "av1"


@pytest.mark.parametrize("key", [H264, AV1, NOFS])
def test_spans_are_tight_and_frames_match_the_sample_table(dataset, key):
    result = build_byte_index(dataset, write=False)
    segments = [r for r in result.tables.segments.to_pylist() if r["video_key"] == key]
    frames = [r for r in result.tables.frames.to_pylist() if r["video_key"] == key]
    path = dataset / segments[0]["path"]
    info = parse_mp4(open(path, "rb"))
    s = info.samples
    for seg in segments:
        mine = [f for f in frames if f["episode_index"] == seg["episode_index"]]
        assert [f["frame_index"] for f in mine] == list(range(seg["n_frames"]))
        idx = np.array([f["sample_index"] for f in mine])
        np.testing.assert_array_equal([f["byte_offset"] for f in mine], s.offset[idx])
        np.testing.assert_array_equal([f["size"] for f in mine], s.size[idx])
        np.testing.assert_allclose([f["pts_s"] for f in mine], s.pts_s[idx], atol=0)
        pts = np.array([f["pts_s"] for f in mine])
        assert np.all(np.diff(pts) > 0), "frames are in presentation order"
        half = 0.5 / 30
        assert pts[0] >= seg["from_timestamp"] - half and pts[-1] < seg["to_timestamp"] - half
        # LeRobot-style files: every episode starts on a keyframe and its samples are contiguous,
        # so the span is exactly the episode's samples: keyframe offset .. end of its last sample.
        assert mine[0]["keyframe"]
        assert seg["byte_start"] == min(f["byte_offset"] for f in mine)
        assert seg["byte_end"] == max(f["byte_offset"] + f["size"] for f in mine)  # exclusive, no +1
        assert seg["byte_end"] - seg["byte_start"] == sum(f["size"] for f in mine)
        assert seg["contiguous"]
        assert seg["header_ranges"] == [{"start": a, "end": b} for a, b in info.header_ranges]
    # consecutive episodes tile the mdat without gaps or overlaps
    ordered = sorted(segments, key=lambda r: r["byte_start"])
    for a, b in zip(ordered, ordered[1:]):
        assert a["byte_end"] == b["byte_start"]
    assert ordered[0]["byte_start"] == info.mdat_ranges[0][0]
    assert ordered[-1]["byte_end"] == info.mdat_ranges[0][1]


def test_half_frame_tolerance_absorbs_float_rounding(dataset):
    info = parse_mp4(open(next(dataset.glob("videos/observation.images.h264/*/*.mp4")), "rb"))
    timeline = TrackTimeline(info.samples)
    exact = timeline.span(20 / 30, 45 / 30)
    for jitter in (-4e-3, -1e-9, 1e-9, 4e-3, 0.016):  # up to just under half a frame (0.0167 s)
        again = timeline.span(20 / 30 + jitter, 45 / 30 + jitter)
        np.testing.assert_array_equal(again.frames, exact.frames)
        assert (again.byte_start, again.byte_end) == (exact.byte_start, exact.byte_end)
    assert exact.n_frames == 25
    with pytest.raises(ValueError, match="no video frame"):
        timeline.span(100.0, 101.0)


def test_span_starting_mid_gop_reaches_back_to_the_keyframe(dataset):
    info = parse_mp4(open(next(dataset.glob("videos/observation.images.h264/*/*.mp4")), "rb"))
    timeline = TrackTimeline(info.samples)
    s = info.samples
    span = timeline.span(5 / 30, 12 / 30)
    first_frame = span.frames[0]
    assert not s.keyframe[first_frame]
    assert s.keyframe[span.decode_first] and span.decode_first < first_frame
    assert not np.any(s.keyframe[span.decode_first + 1 : first_frame])
    assert span.byte_start == s.offset[span.decode_first]
    # B-frames: the last presented frame is not the last decoded one; the span covers both
    assert span.decode_last == span.frames.max()
    assert span.byte_end == (s.offset + s.size)[span.decode_first : span.decode_last + 1].max()


def test_in_memory_build_writes_nothing_and_matches(dataset):
    in_memory = build_byte_index(dataset, write=False)
    assert in_memory.index_dir is None and not (dataset / INDEX_DIR).exists()
    written = build_byte_index(dataset)
    assert in_memory.tables.frames.equals(written.tables.frames)
    assert in_memory.tables.segments.equals(written.tables.segments)


def test_lerobot_fixture_in_memory():
    result = build_byte_index(FIXTURE, write=False)
    segs = rows_by(result.tables.segments, "video_key", "episode_index")
    assert len(segs) == 6
    for key in ("observation.images.front", "observation.images.wrist"):
        assert [segs[(key, e)]["n_frames"] for e in range(3)] == [20, 25, 15]
        assert segs[(key, 0)]["byte_start"] == segs[(key, 0)]["header_bytes"] == 1172
        assert segs[(key, 0)]["byte_end"] == segs[(key, 1)]["byte_start"]
        assert segs[(key, 2)]["byte_end"] == segs[(key, 2)]["file_size"]
        assert segs[(key, 1)]["first_pts_s"] == pytest.approx(20 / 30, abs=1e-9)
    assert not (FIXTURE / INDEX_DIR).exists()


def test_incremental_rebuild_reindexes_only_the_changed_file(dataset, tmp_path):
    first = build_byte_index(dataset, workers=2)
    index_files = sorted((dataset / "meta/byte_index").glob("*.parquet"))
    stamps = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in index_files]
    again = build_byte_index(dataset)
    assert (again.stats.files_indexed, again.stats.files_reused) == (0, 3)
    # nothing changed: the index files are left as they were (not rewritten with new mtimes)
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in index_files] == stamps
    assert again.indexed_paths == () and again.stats.header_bytes_read == 0
    assert again.tables.frames.equals(first.tables.frames)
    assert again.tables.segments.equals(first.tables.segments)

    # re-encode the AV1 camera's file with other pixels (same episode lengths and bounds)
    av1_rel = next(r["path"] for r in first.tables.files.to_pylist() if r["video_key"] == AV1)
    make_multi_episode_mp4(dataset / av1_rel, (20, 25, 15, 30), codec="libsvtav1", seed=99)
    events: list[BuildProgress] = []
    third = build_byte_index(dataset, progress=events.append)
    assert third.indexed_paths == (av1_rel,)
    assert (third.stats.files_indexed, third.stats.files_reused) == (1, 2)
    assert sorted((e.action, e.path) for e in events)[0] == ("indexed", av1_rel)
    assert [e.done for e in sorted(events, key=lambda e: e.done)] == [1, 2, 3]
    assert all(e.total == 3 for e in events)
    # unchanged files' rows are carried over, the changed file's rows equal a from-scratch build
    full = build_byte_index(dataset, force=True, write=False)
    assert third.tables.frames.equals(full.tables.frames)
    assert third.tables.segments.equals(full.tables.segments)
    assert not third.tables.segments.equals(first.tables.segments)
    assert full.stats.files_indexed == 3


def test_changed_episode_bounds_reindex_that_file(dataset):
    build_byte_index(dataset)
    episodes_path = dataset / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(episodes_path)
    # merge episodes 2 and 3 of the h264 camera into one segment: only that file changes
    rows = table.to_pylist()
    rows[2][f"videos/{H264}/to_timestamp"] = rows[3][f"videos/{H264}/to_timestamp"]
    rows = rows[:3] + [{**rows[3], f"videos/{H264}/chunk_index": None, f"videos/{H264}/file_index": None}]
    pq.write_table(table.from_pylist(rows, schema=table.schema), episodes_path)
    result = build_byte_index(dataset)
    assert result.indexed_paths == (f"videos/{H264}/chunk-000/file-000.mp4",)
    seg = rows_by(result.tables.segments, "video_key", "episode_index")
    assert seg[(H264, 2)]["n_frames"] == 45 and (H264, 3) not in seg


def test_sha256_fingerprint_sees_same_size_same_mtime_edits(dataset):
    build_byte_index(dataset, fingerprint="sha256")
    rel = f"videos/{AV1}/chunk-000/file-000.mp4"
    path = dataset / rel
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # a payload byte: size and header unchanged
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert build_byte_index(dataset, fingerprint="sha256").indexed_paths == (rel,)
    # size+mtime cannot see such an edit; it is the cheap default for a reason
    build_byte_index(dataset, force=True)
    path.write_bytes(bytes(data[:-1]) + bytes([data[-1] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert build_byte_index(dataset).indexed_paths == ()


def test_writes_are_atomic(dataset, monkeypatch):
    build_byte_index(dataset)
    index_dir = dataset / INDEX_DIR
    before = (index_dir / "segments.parquet").read_bytes()
    import lerobot_assets.byteindex.builder as builder

    real = builder.pq.write_table
    calls = {"n": 0}

    def failing(table, where, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # frames written, segments fails half-way
            Path(where).write_bytes(b"partial")
            raise OSError("disk full")
        return real(table, where, **kw)

    monkeypatch.setattr(builder.pq, "write_table", failing)
    with pytest.raises(OSError, match="disk full"):
        build_byte_index(dataset, force=True)
    assert (index_dir / "segments.parquet").read_bytes() == before
    assert sorted(p.name for p in index_dir.iterdir()) == ["files.parquet", "frames.parquet", "segments.parquet"]


def test_episode_without_frames_names_file_and_episode(dataset):
    episodes_path = dataset / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(episodes_path)
    rows = table.to_pylist()
    rows[1][f"videos/{AV1}/from_timestamp"] = 50.0
    rows[1][f"videos/{AV1}/to_timestamp"] = 51.0
    pq.write_table(table.from_pylist(rows, schema=table.schema), episodes_path)
    with pytest.raises(ValueError, match=rf"videos/{AV1}/chunk-000/file-000.mp4: episode 1: no video frame"):
        build_byte_index(dataset, write=False)


def test_damaged_video_reports_box_path_and_file(dataset):
    rel = f"videos/{H264}/chunk-000/file-000.mp4"
    (dataset / rel).write_bytes((dataset / rel).read_bytes()[:500])
    with pytest.raises(ValueError, match=rf"^moov: .*\(in {rel}\)"):
        build_byte_index(dataset, write=False)


def test_missing_metadata(tmp_path):
    # No info.json: not a dataset root (it used to be indexed as an empty dataset and written).
    with pytest.raises(FileNotFoundError, match="meta/info.json is missing"):
        build_byte_index(tmp_path, write=False)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text('{"codebase_version": "v3.0", "fps": 30}')
    with pytest.raises(FileNotFoundError, match="no episodes parquet"):
        build_byte_index(tmp_path, write=False)


def test_copy_of_fixture_is_indexed_and_written(tmp_path):
    root = tmp_path / "tiny"
    shutil.copytree(FIXTURE, root)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    result = build_byte_index(root)
    assert (root / INDEX_DIR / "frames.parquet").exists()
    assert result.stats.frames == 120 and result.stats.segments == 6


def test_index_files_take_the_umask_not_a_private_mode(dataset):
    # Formerly tempfile.mkstemp: every index file was 0600, unreadable to the services sharing it.
    old = os.umask(0o022)
    try:
        build_byte_index(dataset)
    finally:
        os.umask(old)
    files = sorted((dataset / INDEX_DIR).iterdir())
    assert [p.name for p in files] == ["files.parquet", "frames.parquet", "segments.parquet"]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: "0o644" for p in files}
