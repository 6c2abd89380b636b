"""Schemas of the byte-index tables under `<root>/meta/byte_index/`.

- `files.parquet`: one row per indexed MP4 (change detection, header ranges, codec).
- `segments.parquet`: one row per (camera, episode): the tight byte span and what a reader needs to
  fetch and decode it without opening anything else.
- `frames.parquet`: one row per decoded frame of every segment, in presentation order.

Offsets are absolute file offsets; `byte_end` is exclusive. Timestamps are seconds in the MP4's own
timeline (pts as ffprobe reports it, after ctts and the edit list) plus the exact tick values.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

INDEX_DIR = "meta/byte_index"
FILES_NAME = "files.parquet"
SEGMENTS_NAME = "segments.parquet"
FRAMES_NAME = "frames.parquet"
FORMAT_VERSION = 1

RANGE_TYPE = pa.list_(pa.struct([pa.field("start", pa.int64()), pa.field("end", pa.int64())]))

FILES_SCHEMA = pa.schema(
    [
        pa.field("video_key", pa.string()),
        pa.field("chunk_index", pa.int64()),
        pa.field("file_index", pa.int64()),
        pa.field("path", pa.string()),
        pa.field("file_size", pa.int64()),
        pa.field("file_mtime_ns", pa.int64()),
        pa.field("file_fingerprint", pa.string()),
        pa.field("codec", pa.string()),
        pa.field("codec_name", pa.string()),
        pa.field("timescale", pa.int64()),
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
        pa.field("n_samples", pa.int64()),
        pa.field("n_keyframes", pa.int64()),
        pa.field("faststart", pa.bool_()),
        pa.field("moov_start", pa.int64()),
        pa.field("moov_end", pa.int64()),
        pa.field("header_ranges", RANGE_TYPE),
        pa.field("header_bytes", pa.int64()),
        pa.field("n_segments", pa.int64()),
        pa.field("index_version", pa.int64()),
    ]
)

SEGMENTS_SCHEMA = pa.schema(
    [
        pa.field("video_key", pa.string()),
        pa.field("chunk_index", pa.int64()),
        pa.field("file_index", pa.int64()),
        pa.field("episode_index", pa.int64()),
        pa.field("path", pa.string()),
        pa.field("from_timestamp", pa.float64()),
        pa.field("to_timestamp", pa.float64()),
        pa.field("byte_start", pa.int64()),
        pa.field("byte_end", pa.int64()),
        pa.field("header_ranges", RANGE_TYPE),
        pa.field("header_bytes", pa.int64()),
        pa.field("codec", pa.string()),
        pa.field("codec_name", pa.string()),
        pa.field("timescale", pa.int64()),
        pa.field("width", pa.int64()),
        pa.field("height", pa.int64()),
        pa.field("n_frames", pa.int64()),
        pa.field("expected_frames", pa.int64()),
        pa.field("first_pts_s", pa.float64()),
        pa.field("last_pts_s", pa.float64()),
        pa.field("decode_first_sample", pa.int64()),
        pa.field("decode_last_sample", pa.int64()),
        pa.field("contiguous", pa.bool_()),
        pa.field("file_size", pa.int64()),
        pa.field("file_mtime_ns", pa.int64()),
        pa.field("file_fingerprint", pa.string()),
    ]
)

FRAMES_SCHEMA = pa.schema(
    [
        pa.field("video_key", pa.string()),
        pa.field("chunk_index", pa.int64()),
        pa.field("file_index", pa.int64()),
        pa.field("episode_index", pa.int64()),
        pa.field("frame_index", pa.int64()),
        pa.field("pts", pa.int64()),
        pa.field("pts_s", pa.float64()),
        pa.field("dts", pa.int64()),
        pa.field("duration", pa.int64()),
        pa.field("byte_offset", pa.int64()),
        pa.field("size", pa.int64()),
        pa.field("keyframe", pa.bool_()),
        pa.field("sample_index", pa.int64()),
    ]
)


@dataclass(frozen=True)
class ByteIndexTables:
    """The three tables of one byte index (in memory or as read from parquet)."""

    files: pa.Table
    segments: pa.Table
    frames: pa.Table


def empty_tables() -> ByteIndexTables:
    return ByteIndexTables(FILES_SCHEMA.empty_table(), SEGMENTS_SCHEMA.empty_table(), FRAMES_SCHEMA.empty_table())


def ranges_value(ranges: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> list[dict[str, int]]:
    return [{"start": int(s), "end": int(e)} for s, e in ranges]
