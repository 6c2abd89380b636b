"""Lookup over the byte-index tables: where episode E's bytes for camera K are, and its frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from fsspec import AbstractFileSystem

from lerobot_assets.byteindex.builder import BuildResult, load_tables
from lerobot_assets.byteindex.decode import EpisodeFrames
from lerobot_assets.byteindex.episodes import resolve_root
from lerobot_assets.byteindex.tables import INDEX_DIR, ByteIndexTables


@dataclass(frozen=True)
class Segment:
    """Where one (camera, episode) lives and what a decoder needs of its file."""

    video_key: str
    episode_index: int
    chunk_index: int
    file_index: int
    path: str
    file_size: int
    byte_start: int
    byte_end: int  # exclusive
    header_ranges: tuple[tuple[int, int], ...]
    codec: str
    timescale: int
    n_frames: int
    from_timestamp: float
    to_timestamp: float
    file_fingerprint: str

    @property
    def payload_bytes(self) -> int:
        return self.byte_end - self.byte_start

    @property
    def header_bytes(self) -> int:
        return sum(e - s for s, e in self.header_ranges)

    @property
    def min_fetch_bytes(self) -> int:
        """Header + segment: the least a reader must fetch to decode this episode cold."""
        return self.header_bytes + self.payload_bytes


class ByteIndex:
    """Lookup over the byte-index tables: O(1) per (video_key, episode_index)."""

    def __init__(self, tables: ByteIndexTables):
        # Frame lookups slice contiguous row ranges, so frames must be grouped by segment.
        frames = tables.frames.sort_by(
            [("video_key", "ascending"), ("episode_index", "ascending"), ("frame_index", "ascending")]
        )
        tables = ByteIndexTables(tables.files, tables.segments, frames)
        self.tables = tables
        seg = tables.segments.to_pydict()
        self._segments: dict[tuple[str, int], Segment] = {}
        for i in range(tables.segments.num_rows):
            key = (seg["video_key"][i], int(seg["episode_index"][i]))
            self._segments[key] = Segment(
                video_key=key[0],
                episode_index=key[1],
                chunk_index=int(seg["chunk_index"][i]),
                file_index=int(seg["file_index"][i]),
                path=seg["path"][i],
                file_size=int(seg["file_size"][i]),
                byte_start=int(seg["byte_start"][i]),
                byte_end=int(seg["byte_end"][i]),
                header_ranges=tuple((int(r["start"]), int(r["end"])) for r in seg["header_ranges"][i]),
                codec=seg["codec"][i],
                timescale=int(seg["timescale"][i]),
                n_frames=int(seg["n_frames"][i]),
                from_timestamp=float(seg["from_timestamp"][i]),
                to_timestamp=float(seg["to_timestamp"][i]),
                file_fingerprint=seg["file_fingerprint"][i],
            )
        self._frames = self._frame_columns(tables.frames)
        self._frame_rows = self._frame_bounds(tables.frames)

    @classmethod
    def load(
        cls, root: str | Path, *, fs: AbstractFileSystem | None = None, storage_options: dict | None = None
    ) -> ByteIndex:
        """Read `<root>/meta/byte_index/` (local or fsspec URL)."""
        fs, base = resolve_root(root, fs=fs, storage_options=storage_options)
        tables = load_tables(fs, base)
        if tables is None:
            raise FileNotFoundError(f"byte index missing or unreadable under {base}/{INDEX_DIR}")
        return cls(tables)

    @classmethod
    def from_build(cls, result: BuildResult) -> ByteIndex:
        return cls(result.tables)

    @property
    def video_keys(self) -> list[str]:
        return sorted({k for k, _ in self._segments})

    def episodes(self, video_key: str | None = None) -> list[int]:
        return sorted({e for k, e in self._segments if video_key is None or k == video_key})

    def segment(self, video_key: str, episode_index: int) -> Segment:
        try:
            return self._segments[(video_key, int(episode_index))]
        except KeyError:
            if video_key not in self.video_keys:
                raise KeyError(f"unknown video key {video_key!r}; indexed: {self.video_keys}") from None
            raise KeyError(f"episode {episode_index} is not indexed for {video_key!r}") from None

    def frames(self, video_key: str, episode_index: int) -> EpisodeFrames:
        self.segment(video_key, episode_index)  # same KeyError as segment() for unknown keys
        start, stop = self._frame_rows[(video_key, int(episode_index))]
        c = self._frames
        return EpisodeFrames(
            pts=c["pts"][start:stop],
            pts_s=c["pts_s"][start:stop],
            duration=c["duration"][start:stop],
            keyframe=c["keyframe"][start:stop],
            byte_offset=c["byte_offset"][start:stop],
            size=c["size"][start:stop],
        )

    @staticmethod
    def _frame_columns(frames: pa.Table) -> dict[str, np.ndarray]:
        names = ("pts", "pts_s", "duration", "keyframe", "byte_offset", "size")
        return {n: frames.column(n).to_numpy(zero_copy_only=False) for n in names}

    @staticmethod
    def _frame_bounds(frames: pa.Table) -> dict[tuple[str, int], tuple[int, int]]:
        """Row range of each segment's frames; the table is sorted by (video_key, episode_index)."""
        if frames.num_rows == 0:
            return {}
        keys = frames.column("video_key").combine_chunks().dictionary_encode()
        codes = keys.indices.to_numpy(zero_copy_only=False)
        names = keys.dictionary.to_pylist()
        episodes = frames.column("episode_index").to_numpy()
        change = np.flatnonzero((np.diff(codes) != 0) | (np.diff(episodes) != 0)) + 1
        starts = np.concatenate(([0], change))
        stops = np.concatenate((change, [frames.num_rows]))
        return {(names[codes[s]], int(episodes[s])): (int(s), int(e)) for s, e in zip(starts, stops)}
