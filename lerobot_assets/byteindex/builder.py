"""Build the per-episode byte index of a LeRobot v3 dataset (local path or fsspec URL).

For every MP4 referenced by `meta/episodes`, parse its header (reading only box headers and the
moov, so remote files cost kilobytes) and compute, for every episode segment in it, the tight byte
span and the per-frame table. Files whose size+mtime (or sha256) and episode list did not change
since the last build are reused from the existing index, so appending a file re-indexes one file.
Files are parsed in a thread pool; a progress callback reports each file as it finishes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from lerobot_assets.byteindex.episodes import (
    SegmentSpec,
    locate_root,
    read_segment_specs,
    refuse_published,
    resolve_root,
)
from lerobot_assets.byteindex.mp4 import Mp4Error, Mp4Info, codec_name, parse_mp4
from lerobot_assets.byteindex.source import FileSource
from lerobot_assets.byteindex.spans import TrackTimeline
from lerobot_assets.byteindex.tables import (
    FILES_NAME,
    FILES_SCHEMA,
    FORMAT_VERSION,
    FRAMES_NAME,
    FRAMES_SCHEMA,
    INDEX_DIR,
    SEGMENTS_NAME,
    SEGMENTS_SCHEMA,
    ByteIndexTables,
    ranges_value,
)
from lerobot_assets.format.atomic import remove_stale_temps, write_atomic
from lerobot_assets.format.files import MiB, file_problem, open_metadata

Fingerprint = Literal["stat", "sha256"]
# The tables of a very large dataset (one frames row per frame) are big but bounded; the cap only
# keeps a planted huge or endless file from being read.
INDEX_TABLE_MAX_BYTES = 16 * 1024 * MiB


@dataclass(frozen=True)
class BuildProgress:
    """One file finished (indexed or reused); `done` of `total` files."""

    done: int
    total: int
    path: str
    action: Literal["indexed", "reused"]
    segments: int
    file_size: int


ProgressCallback = Callable[[BuildProgress], None]


@dataclass(frozen=True)
class BuildStats:
    files: int
    files_indexed: int
    files_reused: int
    segments: int
    frames: int
    bytes_indexed: int  # total size of the video files the index covers
    header_bytes_read: int  # bytes read to parse the files indexed in this build
    seconds: float


@dataclass(frozen=True)
class BuildResult:
    tables: ByteIndexTables
    stats: BuildStats
    index_dir: str | None  # where the tables were written (None for an in-memory build)
    indexed_paths: tuple[str, ...]  # files (re)parsed in this build


@dataclass(frozen=True)
class _FileState:
    size: int
    mtime_ns: int | None
    fingerprint: str


@dataclass
class _FileResult:
    file_row: dict
    segment_rows: list[dict]
    frames: pa.Table
    header_bytes_read: int


# --------------------------------------------------------------------------- public API


def build_byte_index(
    root: str | Path,
    *,
    workers: int = 4,
    force: bool = False,
    write: bool = True,
    progress: ProgressCallback | None = None,
    fingerprint: Fingerprint = "stat",
    fs: AbstractFileSystem | None = None,
    storage_options: dict | None = None,
) -> BuildResult:
    """Index every video file of the dataset at `root`; write `<root>/meta/byte_index/` if `write`.

    A published prefix (format.versions) is read at its current version when `write=False`; writing
    into one is refused (PublishedDatasetError): its versions are immutable.

    With `force=False`, files whose fingerprint and episode list match the existing index are
    reused. `fingerprint="sha256"` hashes file contents instead of trusting size+mtime (it reads
    every file). Returns the tables either way (`write=False` builds purely in memory).
    """
    t0 = time.perf_counter()
    if write:
        fs, base = locate_root(root, fs=fs, storage_options=storage_options)
        refuse_published(fs, base, "build the byte index")
    else:
        fs, base = resolve_root(root, fs=fs, storage_options=storage_options)
    specs = read_segment_specs(fs, base)
    by_file: dict[str, list[SegmentSpec]] = {}
    for spec in specs:
        by_file.setdefault(spec.path, []).append(spec)

    previous = None if force else load_tables(fs, base)
    old_files = _files_by_path(previous)
    old_segments = _row_groups(previous.segments, ("video_key", "chunk_index", "file_index")) if previous else {}
    old_frames = _row_groups(previous.frames, ("video_key", "chunk_index", "file_index")) if previous else {}

    total = len(by_file)
    done = 0
    reused: list[tuple[str, _FileState]] = []
    todo: list[tuple[str, _FileState]] = []
    states = _stat_files(fs, base, list(by_file), fingerprint, workers)
    for rel, file_specs in by_file.items():
        state = states[rel]
        old = old_files.get(rel)
        key = file_specs[0].file_key
        if (
            old is not None
            and old["file_fingerprint"] == state.fingerprint
            and old["index_version"] == FORMAT_VERSION
            and key in old_segments
            and _same_segments(previous.segments, old_segments[key], file_specs)  # type: ignore[union-attr]
        ):
            reused.append((rel, state))
        else:
            todo.append((rel, state))

    parts_files: list[pa.Table] = []
    parts_segments: list[pa.Table] = []
    parts_frames: list[pa.Table] = []
    for rel, state in reused:
        key = by_file[rel][0].file_key
        parts_files.append(previous.files.take(pa.array([old_files[rel]["_row"]])))  # type: ignore[union-attr]
        parts_segments.append(previous.segments.take(old_segments[key]))  # type: ignore[union-attr]
        parts_frames.append(previous.frames.take(old_frames.get(key, np.zeros(0, dtype=np.int64))))  # type: ignore[union-attr]
        done += 1
        if progress:
            progress(BuildProgress(done, total, rel, "reused", len(by_file[rel]), state.size))

    header_bytes = 0
    file_rows: list[dict] = []
    segment_rows: list[dict] = []
    if todo:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="byteindex") as pool:
            futures = {pool.submit(index_video_file, fs, base, rel, by_file[rel], state): (rel, state) for rel, state in todo}
            for future in as_completed(futures):
                rel, state = futures[future]
                result = future.result()
                file_rows.append(result.file_row)
                segment_rows.extend(result.segment_rows)
                parts_frames.append(result.frames)
                header_bytes += result.header_bytes_read
                done += 1
                if progress:
                    progress(BuildProgress(done, total, rel, "indexed", len(by_file[rel]), state.size))
    parts_files.append(pa.Table.from_pylist(file_rows, schema=FILES_SCHEMA))
    parts_segments.append(pa.Table.from_pylist(segment_rows, schema=SEGMENTS_SCHEMA))

    tables = ByteIndexTables(
        files=_concat(parts_files, FILES_SCHEMA).sort_by([("video_key", "ascending"), ("chunk_index", "ascending"), ("file_index", "ascending")]),
        segments=_concat(parts_segments, SEGMENTS_SCHEMA).sort_by(
            [("video_key", "ascending"), ("episode_index", "ascending")]
        ),
        frames=_concat(parts_frames, FRAMES_SCHEMA).sort_by(
            [("video_key", "ascending"), ("episode_index", "ascending"), ("frame_index", "ascending")]
        ),
    )
    index_dir = None
    # Every file reused and none dropped: the tables on disk are already these. Rewriting them would
    # only give them new mtimes, and everything that fingerprints them (the SQL catalog) would recompute.
    unchanged = not todo and previous is not None and len(reused) == previous.files.num_rows
    if write:
        index_dir = f"{base}/{INDEX_DIR}"
        if not unchanged:
            write_tables(fs, index_dir, tables)
    stats = BuildStats(
        files=total,
        files_indexed=len(todo),
        files_reused=len(reused),
        segments=tables.segments.num_rows,
        frames=tables.frames.num_rows,
        bytes_indexed=int(sum(s.size for s in states.values())),
        header_bytes_read=header_bytes,
        seconds=time.perf_counter() - t0,
    )
    return BuildResult(tables, stats, index_dir, tuple(sorted(rel for rel, _ in todo)))


def index_video_file(
    fs: AbstractFileSystem, base: str, rel: str, specs: Iterable[SegmentSpec], state: _FileState | None = None
) -> _FileResult:
    """Parse one MP4's header and compute the rows of all its segments."""
    specs = list(specs)
    full = f"{base}/{rel}"
    if state is None:
        state = _stat_file(fs, full, "stat")
    try:
        info, header_bytes = _parse_remote(fs, full, state.size)
    except Mp4Error as e:
        raise Mp4Error(e.path, f"{e.detail} (in {rel})") from e
    timeline = TrackTimeline(info.samples)
    samples = info.samples
    first = specs[0]
    segment_rows: list[dict] = []
    frame_parts: list[dict[str, np.ndarray]] = []
    for spec in specs:
        try:
            span = timeline.span(spec.from_timestamp, spec.to_timestamp)
        except ValueError as e:
            raise ValueError(f"{rel}: episode {spec.episode_index}: {e}") from e
        idx = span.frames
        pts = samples.pts[idx]
        segment_rows.append(
            {
                "video_key": spec.video_key,
                "chunk_index": spec.chunk_index,
                "file_index": spec.file_index,
                "episode_index": spec.episode_index,
                "path": rel,
                "from_timestamp": spec.from_timestamp,
                "to_timestamp": spec.to_timestamp,
                "byte_start": span.byte_start,
                "byte_end": span.byte_end,
                "header_ranges": ranges_value(info.header_ranges),
                "header_bytes": info.header_bytes,
                "codec": info.codec,
                "codec_name": codec_name(info.codec),
                "timescale": info.timescale,
                "width": info.width,
                "height": info.height,
                "n_frames": span.n_frames,
                "expected_frames": spec.length,
                "first_pts_s": float(pts[0]) / info.timescale,
                "last_pts_s": float(pts[-1]) / info.timescale,
                "decode_first_sample": span.decode_first,
                "decode_last_sample": span.decode_last,
                "contiguous": span.contiguous,
                "file_size": state.size,
                "file_mtime_ns": state.mtime_ns,
                "file_fingerprint": state.fingerprint,
            }
        )
        n = span.n_frames
        frame_parts.append(
            {
                "episode_index": np.full(n, spec.episode_index, dtype=np.int64),
                "frame_index": np.arange(n, dtype=np.int64),
                "pts": pts,
                "pts_s": pts / float(info.timescale),
                "dts": samples.dts[idx],
                "duration": samples.duration[idx],
                "byte_offset": samples.offset[idx],
                "size": samples.size[idx],
                "keyframe": samples.keyframe[idx],
                "sample_index": idx.astype(np.int64),
            }
        )
    n_total = sum(len(p["frame_index"]) for p in frame_parts)
    columns: dict[str, pa.Array] = {
        "video_key": pa.array([first.video_key] * n_total, pa.string()),
        "chunk_index": pa.array(np.full(n_total, first.chunk_index, dtype=np.int64)),
        "file_index": pa.array(np.full(n_total, first.file_index, dtype=np.int64)),
    }
    for name in FRAMES_SCHEMA.names[3:]:
        columns[name] = pa.array(np.concatenate([p[name] for p in frame_parts]) if frame_parts else np.zeros(0))
    frames = pa.table(columns).cast(FRAMES_SCHEMA)
    file_row = {
        "video_key": first.video_key,
        "chunk_index": first.chunk_index,
        "file_index": first.file_index,
        "path": rel,
        "file_size": state.size,
        "file_mtime_ns": state.mtime_ns,
        "file_fingerprint": state.fingerprint,
        "codec": info.codec,
        "codec_name": codec_name(info.codec),
        "timescale": info.timescale,
        "width": info.width,
        "height": info.height,
        "n_samples": len(samples),
        "n_keyframes": int(samples.keyframe.sum()),
        "faststart": info.faststart,
        "moov_start": info.moov_range[0],
        "moov_end": info.moov_range[1],
        "header_ranges": ranges_value(info.header_ranges),
        "header_bytes": info.header_bytes,
        "n_segments": len(specs),
        "index_version": FORMAT_VERSION,
    }
    return _FileResult(file_row, segment_rows, frames, header_bytes)


def load_tables(fs: AbstractFileSystem, base: str) -> ByteIndexTables | None:
    """The index written under `base/meta/byte_index`, or None if absent or unreadable."""
    index_dir = f"{base}/{INDEX_DIR}"
    paths = [f"{index_dir}/{name}" for name in (FILES_NAME, SEGMENTS_NAME, FRAMES_NAME)]
    try:
        if not all(fs.exists(p) for p in paths):
            return None
        tables = []
        for p, schema in zip(paths, (FILES_SCHEMA, SEGMENTS_SCHEMA, FRAMES_SCHEMA)):
            # Regular files only: a FIFO planted here must not block the build (MetadataFileError
            # is a ValueError: the index is rebuilt and the FIFO replaced).
            with open_metadata(p, INDEX_TABLE_MAX_BYTES, fs) as f:
                tables.append(pq.read_table(f).select(schema.names).cast(schema))
    except (OSError, pa.ArrowException, KeyError, ValueError):
        return None  # a damaged or older index is rebuilt rather than trusted
    return ByteIndexTables(*tables)


def write_tables(fs: AbstractFileSystem, index_dir: str, tables: ByteIndexTables) -> None:
    """Write the three tables; each lands atomically (temp file + rename) on local disks.

    `files.parquet` is written last: it is the change-detection record, so a crash part-way leaves
    fingerprints that make the next build redo the affected files.
    """
    for name, table in ((FRAMES_NAME, tables.frames), (SEGMENTS_NAME, tables.segments), (FILES_NAME, tables.files)):
        target = f"{index_dir}/{name}"
        if isinstance(fs, LocalFileSystem):
            _write_local_atomic(Path(target), table)
        else:
            # Object stores publish a PUT atomically; there is no rename to use.
            fs.makedirs(index_dir, exist_ok=True)
            with fs.open(target, "wb") as f:
                pq.write_table(table, f, compression="zstd")


# --------------------------------------------------------------------------- helpers


def _write_local_atomic(path: Path, table: pa.Table) -> None:
    # format.atomic's temp file is 0666 less the umask, like the dataset's other files (mkstemp's
    # 0600 made every index private to whoever built it). A build killed mid-write left its temp
    # file beside the table: the next write of that table takes it away.
    remove_stale_temps(path)
    write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def _parse_remote(fs: AbstractFileSystem, full: str, size: int) -> tuple[Mp4Info, int]:
    if isinstance(fs, LocalFileSystem):
        with open(full, "rb") as f:
            src = FileSource(f, size=size)
            return parse_mp4(src), src.bytes_read
    # No read-ahead cache: every read is exactly one ranged GET of the bytes the parser asked for.
    with fs.open(full, "rb", cache_type="none", block_size=1 << 16) as f:
        src = FileSource(f, size=size)
        return parse_mp4(src), src.bytes_read


def _stat_files(
    fs: AbstractFileSystem, base: str, rels: list[str], mode: Fingerprint, workers: int
) -> dict[str, _FileState]:
    if not rels:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        states = list(pool.map(lambda rel: _stat_file(fs, f"{base}/{rel}", mode), rels))
    return dict(zip(rels, states))


def _stat_file(fs: AbstractFileSystem, full: str, mode: Fingerprint) -> _FileState:
    mtime_ns: int | None
    if isinstance(fs, LocalFileSystem):
        # A FIFO would block the parser's open() forever and a device would read without end.
        problem = file_problem(full)
        if problem == "is missing":
            raise FileNotFoundError(f"{full}: video file is missing")
        if problem is not None:
            raise ValueError(f"{full}: video file {problem}")
        st = os.stat(full)
        size, mtime_ns, tag = st.st_size, st.st_mtime_ns, None
    else:
        info = fs.info(full)
        size = int(info["size"])
        tag = info.get("ETag") or info.get("etag")
        mtime_ns = _mtime_ns(info.get("mtime") or info.get("LastModified") or info.get("last_modified"))
    if mode == "sha256":
        digest = hashlib.sha256()
        with fs.open(full, "rb") as f:
            while chunk := f.read(1 << 23):
                digest.update(chunk)
        return _FileState(size, mtime_ns, f"sha256:{digest.hexdigest()}")
    marker = tag.strip('"') if isinstance(tag, str) else (str(mtime_ns) if mtime_ns is not None else "")
    return _FileState(size, mtime_ns, f"size={size};{'etag' if tag else 'mtime_ns'}={marker}")


def _mtime_ns(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1e9)
    if isinstance(value, (int, float)):
        return int(value * 1e9)
    try:
        return int(datetime.fromisoformat(str(value)).timestamp() * 1e9)
    except ValueError:
        return None


def _files_by_path(tables: ByteIndexTables | None) -> dict[str, dict]:
    if tables is None:
        return {}
    rows = tables.files.select(["path", "file_fingerprint", "index_version"]).to_pylist()
    return {row["path"]: {**row, "_row": i} for i, row in enumerate(rows)}


def _row_groups(table: pa.Table, keys: tuple[str, ...]) -> dict[tuple, np.ndarray]:
    """Row indices of `table` grouped by the values of `keys` (one pass in Arrow's C++)."""
    if table.num_rows == 0:
        return {}
    with_rows = table.select(list(keys)).append_column("_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    grouped = with_rows.group_by(list(keys), use_threads=False).aggregate([("_row", "list")]).to_pydict()
    return {
        tuple(grouped[k][i] for k in keys): np.asarray(grouped["_row_list"][i], dtype=np.int64)
        for i in range(len(grouped["_row_list"]))
    }


def _same_segments(segments: pa.Table, rows: np.ndarray, specs: list[SegmentSpec]) -> bool:
    old = segments.take(rows).select(["episode_index", "from_timestamp", "to_timestamp"]).to_pylist()
    return sorted((r["episode_index"], r["from_timestamp"], r["to_timestamp"]) for r in old) == sorted(
        (s.episode_index, s.from_timestamp, s.to_timestamp) for s in specs
    )


def _concat(parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    parts = [p.cast(schema) for p in parts if p.num_rows]
    return pa.concat_tables(parts) if parts else schema.empty_table()
