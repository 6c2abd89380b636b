"""Read episodes through the byte index: one ranged read per segment, header fetched once per file.

`ByteIndex` (`lookup.py`) answers "where are episode E's bytes for camera K" from the index tables.
`EpisodeReader` fetches them from a local path or any fsspec URL (exactly the index's ranges — no
read-ahead), keeps them in a bounded LRU cache (by bytes) with background prefetch, and decodes
frames from a `SparseFile` that holds only the header and the segment. `bytes_requested` counts
every byte asked of storage (`fetch.py`) so tests and benchmarks can assert the cost.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fsspec import AbstractFileSystem

from lerobot_assets.byteindex.builder import BuildResult
from lerobot_assets.byteindex.decode import (
    Backend,
    DecodedFrames,
    EpisodeFrames,
    decode_frames,
    decode_with,
    open_torchcodec,
    resolve_backend,
)
from lerobot_assets.byteindex.episodes import resolve_root
from lerobot_assets.byteindex.fetch import ByteLRU, RangeFetcher
from lerobot_assets.byteindex.lookup import ByteIndex, Segment
from lerobot_assets.byteindex.sparse import GapPolicy, SparseFile
from lerobot_assets.byteindex.tables import ByteIndexTables


@dataclass(frozen=True)
class EpisodeBytes:
    """What a decoder needs for one segment: the file's header ranges and the segment's bytes."""

    segment: Segment
    header: tuple[tuple[int, bytes], ...]
    payload: bytes

    @property
    def nbytes(self) -> int:
        return len(self.payload) + sum(len(b) for _, b in self.header)


@dataclass
class ReaderStats:
    bytes_requested: int = 0
    requests: int = 0
    hits: int = 0
    misses: int = 0
    waits: int = 0  # a fetch found the same segment already in flight and waited for it
    evictions: int = 0
    cached_bytes: int = 0
    lazy_fetched_bytes: int = 0
    decoder_hits: int = 0  # decode() reused an open decoder (decoder_cache_size > 0)
    decoder_opens: int = 0  # decode() opened a torchcodec decoder


class _OpenDecoder:
    """A torchcodec decoder kept open on one segment's SparseFile; use under `lock`."""

    def __init__(self, decoder: Any, frames: EpisodeFrames, sparse: SparseFile, nbytes: int):
        self.decoder = decoder
        self.frames = frames
        self.sparse = sparse  # holds the segment's bytes for as long as the decoder lives
        self.nbytes = nbytes  # header + segment bytes it keeps alive
        self.lock = threading.Lock()


class EpisodeReader:
    """Fetch, cache, prefetch and decode episode segments through a byte index.

    `root`: the dataset root as a local path or fsspec URL (e.g. ``s3://bucket/ds``) — the index's
    relative paths are resolved under it. `on_gap` decides what a decoder read outside the fetched
    bytes does (see `SparseFile`): "raise" (default), "eof", or "fetch" (lazily, counted).

    `decoder_cache_size` > 0 keeps up to that many torchcodec decoders open, one per (camera,
    episode), least recently used first out: opening one parses the file's whole moov (about 2 ms
    for a 30k-frame file), which a map-style reader coming back to an episode need not pay again.
    An open decoder keeps its segment's bytes alive even once the byte cache evicted them, so the
    open decoders are also bounded to `cache_bytes` of segments: memory stays under 2 x cache_bytes.
    """

    def __init__(
        self,
        index: ByteIndex | ByteIndexTables | BuildResult,
        root: str | Path,
        *,
        fs: AbstractFileSystem | None = None,
        storage_options: dict | None = None,
        cache_bytes: int = 512 << 20,
        prefetch_workers: int = 4,
        on_gap: GapPolicy = "raise",
        backend: Backend = "auto",
        decoder_cache_size: int = 0,
    ):
        if isinstance(index, BuildResult):
            index = ByteIndex(index.tables)
        elif isinstance(index, ByteIndexTables):
            index = ByteIndex(index)
        if cache_bytes <= 0:
            raise ValueError(f"cache_bytes must be positive; got {cache_bytes}")
        self.index = index
        fs, base = resolve_root(root, fs=fs, storage_options=storage_options)
        self.fetcher = RangeFetcher(fs, base)
        self._cache = ByteLRU(cache_bytes)
        self._inflight: dict[Any, Future] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, prefetch_workers), thread_name_prefix="byteindex-prefetch")
        self._stats = ReaderStats()
        self.on_gap = on_gap
        self.backend = backend
        self.decoder_cache_size = max(0, int(decoder_cache_size))
        self._decoders: OrderedDict[tuple[str, int], _OpenDecoder] = OrderedDict()
        self._decoder_bytes = 0
        self._cache_bytes = cache_bytes

    # ----------------------------------------------------------------- counters
    @property
    def bytes_requested(self) -> int:
        return self.fetcher.bytes_requested

    def stats(self) -> ReaderStats:
        with self._lock:
            s = ReaderStats(**vars(self._stats))
        s.bytes_requested = self.fetcher.bytes_requested
        s.requests = self.fetcher.requests
        s.evictions = self._cache.evictions
        s.cached_bytes = self._cache.used
        return s

    # ----------------------------------------------------------------- fetching
    def fetch(self, video_key: str, episode_index: int) -> EpisodeBytes:
        """Header + segment bytes of one episode (from the cache when present)."""
        segment = self.index.segment(video_key, episode_index)
        return self._cached(
            ("segment", video_key, int(episode_index)),
            lambda: self._load_episode(segment),
            lambda v: len(v.payload),
        )

    def _load_episode(self, segment: Segment) -> EpisodeBytes:
        header = self._header(segment)
        payload = self.fetcher.fetch(segment.path, segment.byte_start, segment.byte_end)
        if len(payload) != segment.payload_bytes:
            raise OSError(
                f"{segment.path}: read {len(payload)} of {segment.payload_bytes} bytes at {segment.byte_start}; "
                "the file is shorter than the index says (rebuild the byte index)"
            )
        return EpisodeBytes(segment, header, payload)

    def _header(self, segment: Segment) -> tuple[tuple[int, bytes], ...]:
        def load() -> tuple[tuple[int, bytes], ...]:
            return tuple((s, self.fetcher.fetch(segment.path, s, e)) for s, e in segment.header_ranges)

        return self._cached(
            ("header", segment.path, segment.file_fingerprint), load, lambda v: sum(len(b) for _, b in v)
        )

    def _cached(self, key: Any, load: Any, size_of: Any) -> Any:
        """Cache lookup with in-flight de-duplication: concurrent callers share one fetch."""
        with self._lock:
            value = self._cache.get(key)
            if value is not None:
                self._stats.hits += 1
                return value
            future = self._inflight.get(key)
            owner = future is None
            if owner:
                future = Future()
                self._inflight[key] = future
                self._stats.misses += 1
            else:
                self._stats.waits += 1
        assert future is not None
        if not owner:
            return future.result()
        try:
            value = load()
            self._cache.put(key, value, size_of(value))
            future.set_result(value)
            return value
        except BaseException as e:
            future.set_exception(e)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def prefetch(self, episode_ids: Iterable[int | tuple[str, int]]) -> list[Future]:
        """Start fetching episodes in the background; ints mean every camera of that episode."""
        futures = []
        for item in episode_ids:
            keys = [item] if isinstance(item, tuple) else [(k, int(item)) for k in self.index.video_keys]
            for video_key, episode in keys:
                futures.append(self._pool.submit(self.fetch, video_key, episode))
        return futures

    # ----------------------------------------------------------------- decoding
    def open(self, video_key: str, episode_index: int, *, on_gap: GapPolicy | None = None) -> SparseFile:
        """A seekable file object holding only this episode's header and segment bytes."""
        data = self.fetch(video_key, episode_index)
        seg = data.segment
        policy = on_gap or self.on_gap

        def lazy(start: int, end: int) -> bytes:
            out = self.fetcher.fetch(seg.path, start, end)
            with self._lock:
                self._stats.lazy_fetched_bytes += len(out)
            return out

        return SparseFile(
            seg.file_size,
            [*data.header, (seg.byte_start, data.payload)],
            payload=(seg.byte_start, seg.byte_end),
            on_gap=policy,
            fetch=lazy,
            name=f"{seg.path}#episode={seg.episode_index}",
        )

    def decode(
        self,
        video_key: str,
        episode_index: int,
        frame_indices: Sequence[int] | np.ndarray | None = None,
        *,
        backend: Backend | None = None,
        num_threads: int = 1,
    ) -> DecodedFrames:
        """Frames of one episode (episode-local indices; all frames when None) as uint8 NCHW."""
        frames = self.index.frames(video_key, episode_index)
        indices = np.arange(len(frames)) if frame_indices is None else np.asarray(frame_indices, dtype=np.int64)
        which = resolve_backend(backend or self.backend)
        if which == "torchcodec" and self.decoder_cache_size > 0 and num_threads == 1:
            entry = self._open_decoder(video_key, int(episode_index), frames)
            with entry.lock:
                return decode_with(entry.decoder, entry.frames, indices)
        sparse = self.open(video_key, episode_index)
        if which == "torchcodec":
            with self._lock:
                self._stats.decoder_opens += 1
        return decode_frames(sparse, frames, indices, backend=which, num_threads=num_threads)

    def _open_decoder(self, video_key: str, episode_index: int, frames: EpisodeFrames) -> _OpenDecoder:
        key = (video_key, episode_index)
        with self._lock:
            entry = self._decoders.get(key)
            if entry is not None:
                self._decoders.move_to_end(key)
                self._stats.decoder_hits += 1
                return entry
        nbytes = self.index.segment(video_key, episode_index).min_fetch_bytes
        sparse = self.open(video_key, episode_index)
        entry = _OpenDecoder(open_torchcodec(sparse, frames), frames, sparse, nbytes)
        with self._lock:
            self._stats.decoder_opens += 1
            # Another thread may have opened the same one meanwhile: keep the first, drop ours.
            if key in self._decoders:
                entry = self._decoders[key]
            else:
                self._decoders[key] = entry
                self._decoder_bytes += entry.nbytes
            self._decoders.move_to_end(key)
            while len(self._decoders) > 1 and (
                len(self._decoders) > self.decoder_cache_size or self._decoder_bytes > self._cache_bytes
            ):
                _, old = self._decoders.popitem(last=False)  # freed when its last user releases it
                self._decoder_bytes -= old.nbytes
        return entry

    def has_open_decoder(self, video_key: str, episode_index: int) -> bool:
        """Whether decode() of this segment would reuse an open decoder (and fetch nothing)."""
        with self._lock:
            return (video_key, int(episode_index)) in self._decoders

    def decode_timestamps(
        self,
        video_key: str,
        episode_index: int,
        timestamps: Sequence[float] | np.ndarray,
        *,
        tolerance_s: float = 1e-4,
        backend: Backend | None = None,
    ) -> DecodedFrames:
        """Frames at episode-local timestamps (LeRobot's `timestamp` column: from_timestamp + t)."""
        return self.decode(
            video_key,
            episode_index,
            self.frame_indices_at(video_key, episode_index, timestamps, tolerance_s=tolerance_s),
            backend=backend,
        )

    def frame_indices_at(
        self, video_key: str, episode_index: int, timestamps: Sequence[float] | np.ndarray, *, tolerance_s: float = 1e-4
    ) -> np.ndarray:
        seg = self.index.segment(video_key, episode_index)
        pts = self.index.frames(video_key, episode_index).pts_s
        query = seg.from_timestamp + np.asarray(timestamps, dtype=np.float64)
        nearest = np.clip(np.searchsorted(pts, query), 1, len(pts) - 1) if len(pts) > 1 else np.zeros(len(query), int)
        if len(pts) > 1:
            left = nearest - 1
            nearest = np.where(np.abs(pts[left] - query) <= np.abs(pts[nearest] - query), left, nearest)
        off = np.abs(pts[nearest] - query)
        if np.any(off > tolerance_s):
            bad = int(np.argmax(off))
            raise ValueError(
                f"timestamp {float(np.asarray(timestamps)[bad])} of episode {episode_index} ({video_key}) is "
                f"{off[bad]:.6f}s from the nearest frame, more than tolerance_s={tolerance_s}"
            )
        return nearest.astype(np.int64)

    # ----------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._decoders.clear()
            self._decoder_bytes = 0

    def __enter__(self) -> EpisodeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
