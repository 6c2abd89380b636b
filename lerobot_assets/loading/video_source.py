"""Where `LeRobotV3Dataset`'s video frames come from: whole video files, or the per-episode byte index.

- "file" (`FileFrames`): each video file opened whole (local path, or an fsspec file object for
  URLs) through a decoder cache created lazily in the process that decodes.
- "byte_index" (`IndexFrames`): through `meta/byte_index/` (built by `lerobot-assets byte-index
  ROOT`): an `EpisodeReader` per process fetches each file's header once and one byte range per
  (camera, episode) segment, keeps them in an LRU bounded by bytes, and decodes with torchcodec's
  custom frame mappings (or PyAV) from those bytes only. The frames are bit-identical to decoding
  the whole file.

`choose_video_source` decides between them when the dataset is opened. Both sources return uint8
frames; decoders, readers and filesystems are per process and never pickled (see `fork.py`).
"""

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from lerobot_assets.byteindex.builder import load_tables
from lerobot_assets.byteindex.decode import torchcodec_has_frame_mappings
from lerobot_assets.byteindex.lookup import ByteIndex
from lerobot_assets.byteindex.reader import EpisodeReader
from lerobot_assets.byteindex.tables import INDEX_DIR, SEGMENTS_NAME
from lerobot_assets.loading.files import DatasetFiles
from lerobot_assets.loading.fork import keep_inherited, note_decoding
from lerobot_assets.video.cache import VideoDecoderCache
from lerobot_assets.video.decode import FrameTimestampError, decode_frames, resolve_backend

logger = logging.getLogger(__name__)

VideoSource = Literal["auto", "file", "byte_index"]
VIDEO_SOURCES: tuple[str, ...] = ("auto", "file", "byte_index")


# ---------------------------------------------------------------------- choosing the source
def index_exists(files: DatasetFiles) -> bool:
    fs, base = files.index_location()
    return bool(fs.exists(f"{base}/{INDEX_DIR}/{SEGMENTS_NAME}"))


def load_index(files: DatasetFiles) -> ByteIndex | None:
    fs, base = files.index_location()
    tables = load_tables(fs, base)
    return None if tables is None else ByteIndex(tables)


def index_problem(
    files: DatasetFiles,
    index: ByteIndex,
    *,
    video_backend: str | None,
    episode_indices: np.ndarray,
    video_rel: dict[str, list[str]],
    video_from: dict[str, np.ndarray],
    video_path: str | None,
) -> str | None:
    """Why this index cannot serve these episodes exactly, or None when it can.

    `video_rel`/`video_from`: per camera, each selected episode's video file (relative to the root)
    and its from_timestamp in that file.
    """
    # The decoder family the "file" source would use, so both sources return the same frames.
    if resolve_backend(video_backend) == "torchcodec" and not torchcodec_has_frame_mappings():
        return "the installed torchcodec has no custom_frame_mappings (torchcodec >= 0.13 needed)"
    sizes: dict[str, int] = {}
    for key in video_rel:
        for pos, ep in enumerate(episode_indices.tolist()):
            try:
                seg = index.segment(key, ep)
            except KeyError:
                return f"episode {ep} of {key!r} is not indexed (rebuild the index)"
            rel = video_rel[key][pos]
            if seg.path != rel or abs(seg.from_timestamp - video_from[key][pos]) > 1e-9:
                return f"episode {ep} of {key!r} moved since the index was built (rebuild the index)"
            sizes[rel] = seg.file_size
    actual = video_file_sizes(files, list(sizes), video_path)
    for rel, size in sizes.items():
        if actual.get(rel) != size:
            return f"{rel} is {actual.get(rel)} bytes, the index says {size} (rebuild the index)"
    return None


def video_file_sizes(files: DatasetFiles, rels: list[str], video_path: str | None) -> dict[str, int]:
    """Current sizes of these video files: a stat each locally, one listing remotely."""
    if not files.remote:
        out = {}
        for rel in rels:
            try:
                out[rel] = os.stat(Path(files.root) / rel).st_size
            except OSError:
                pass
        return out
    fs, base = files.index_location()
    # One (paginated) LIST of the videos prefix instead of a HEAD per file.
    prefix = video_path.split("{", 1)[0].rstrip("/") if video_path else ""
    top = f"{base}/{prefix}" if prefix else base
    try:
        listing = fs.find(top, detail=True)
    except OSError:
        listing = {}
    out = {}
    for path, info in listing.items():
        rel = str(path).split(f"{base}/", 1)[-1]
        if info.get("size") is not None:
            out[rel] = int(info["size"])
    for rel in rels:
        if rel not in out:  # not listed (e.g. an unusual template): ask for the file itself
            try:
                out[rel] = int(fs.info(f"{base}/{rel}")["size"])
            except (OSError, KeyError):
                pass
    return out


def choose_video_source(
    files: DatasetFiles,
    requested: str,
    *,
    video_backend: str | None,
    episode_indices: np.ndarray,
    video_rel: dict[str, list[str]],
    video_from: dict[str, np.ndarray],
    video_path: str | None,
) -> tuple[Literal["file", "byte_index"], ByteIndex | None]:
    """The source to decode from, and the loaded byte index when it is "byte_index".

    "auto" uses the byte index for a remote root that has a usable one (it covers the selected
    episodes and the video files still have the indexed sizes), files otherwise. An explicit
    "byte_index" that cannot be served raises instead of falling back.
    """
    root = files.root
    if not video_rel:
        return "file", None  # nothing to decode; no index needed
    if requested == "file" or (requested == "auto" and not files.remote):
        # Local roots default to files: the OS reads only the pages a decoder touches and the
        # file source keeps one decoder open per file, whereas the byte-index source parses the
        # file's moov again for every (camera, episode) it opens (~2 ms on a 30k-frame file).
        if files.remote:
            warn_whole_files(root, index_exists(files), files.version)
        return "file", None
    index = load_index(files)
    if index is None:
        if requested == "byte_index":
            raise FileNotFoundError(f"{root}: no byte index under {INDEX_DIR}/; {_build_hint(root, files.version)}")
        if files.remote:
            warn_whole_files(root, False, files.version)
        return "file", None
    problem = index_problem(
        files, index, video_backend=video_backend, episode_indices=episode_indices, video_rel=video_rel,
        video_from=video_from, video_path=video_path,
    )
    if problem is not None:
        if requested == "byte_index":
            raise ValueError(f"{root}: the byte index cannot be used: {problem}")
        logger.warning("%s: not using the byte index: %s; decoding whole video files", root, problem)
        if files.remote:
            warn_whole_files(root, False, files.version)
        return "file", None
    return "byte_index", index


def _build_hint(root: Path | str, version: str | None) -> str:
    if version is not None:
        # A published version is immutable: `byte-index` refuses to write into it.
        return (f"{root} is the published version {version}: build (or rebuild) the byte index in the dataset "
                "before it is published")
    return f"build (or rebuild) the per-episode byte index with `lerobot-assets byte-index {root}`"


def warn_whole_files(root: Path | str, index_exists: bool, version: str | None = None) -> None:
    hint = (
        "pass video_source='byte_index' to fetch only the sampled episodes' bytes"
        if index_exists
        else f"{_build_hint(root, version)} so that only the sampled episodes' bytes are fetched"
    )
    logger.warning(
        "%s: remote dataset read without its byte index: every video file is opened whole through "
        "fsspec (large downloads per file); %s",
        root,
        hint,
    )


# ---------------------------------------------------------------------- "file"
class FileFrames:
    """Frames decoded from whole video files through this process's decoder cache."""

    def __init__(self, files: DatasetFiles, decoder_cache_size: int | None) -> None:
        """`decoder_cache_size`: None is an unbounded cache."""
        self._files = files
        self.decoder_cache_size = decoder_cache_size
        self._cache: VideoDecoderCache | None = None
        self._cache_pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = None
        state["_cache_pid"] = None
        return state

    def decoder_cache(self) -> VideoDecoderCache:
        pid = os.getpid()
        if self._cache is None or self._cache_pid != pid:
            if self._cache is not None:
                # Inherited through fork: shares file offsets with the parent, so never used here,
                # and never freed here either (see fork.py).
                keep_inherited(self._cache)
            if self._files.remote:
                self._cache = VideoDecoderCache(max_size=self.decoder_cache_size, opener=self._files.open_remote_video)
            else:
                self._cache = VideoDecoderCache(max_size=self.decoder_cache_size)
            self._cache_pid = pid
            note_decoding()
        return self._cache

    def decode(self, path: str, timestamps: list[float], *, tolerance_s: float, backend: str | None) -> torch.Tensor:
        """uint8 frames of the video file `path` (local path or URL) at these file timestamps."""
        return decode_frames(
            path,
            timestamps,
            tolerance_s=tolerance_s,
            backend=backend,
            return_uint8=True,
            cache=self.decoder_cache(),
        )

    def close(self) -> None:
        """Release this process's decoders (they are recreated on next use)."""
        if self._cache is not None and self._cache_pid == os.getpid():
            self._cache.clear()


# ---------------------------------------------------------------------- "byte_index"
class IndexFrames:
    """Frames decoded through the byte index by this process's `EpisodeReader`.

    Episodes are addressed by position in the dataset's episode order (`episode_indices`);
    `video_paths` (per camera, each position's file) only name the file in errors.
    Knobs: `cache_bytes` (per-process LRU of fetched bytes), `prefetch_workers` (parallel
    fetches) and `prefetch_ahead` (episodes fetched ahead when an item enters a new episode).
    """

    def __init__(
        self,
        files: DatasetFiles,
        index: ByteIndex,
        *,
        video_backend: str | None,
        episode_indices: np.ndarray,
        video_keys: list[str],
        video_paths: dict[str, list[str]],
        cache_bytes: int,
        prefetch_workers: int,
        prefetch_ahead: int,
        decoder_cache_size: int | None,
    ) -> None:
        self._files = files
        self._index: ByteIndex | None = index
        self.video_backend = video_backend
        self.episode_indices = episode_indices
        self.video_keys = video_keys
        self._video_paths = video_paths
        self.cache_bytes = cache_bytes
        self.prefetch_workers = prefetch_workers
        self.prefetch_ahead = prefetch_ahead
        # The episode reader counts decoders with an int; its byte budget still bounds an
        # "unbounded" (None) count.
        self.decoder_cache_size = sys.maxsize if decoder_cache_size is None else decoder_cache_size
        self._reader: EpisodeReader | None = None
        self._reader_pid: int | None = None
        self._prefetched_from: int | None = None  # episode position whose successors were prefetched

    def __getstate__(self) -> dict[str, Any]:
        # Spawned workers reload the byte index themselves rather than receiving it through a
        # pipe; episode readers (threads, sockets) never cross processes.
        state = self.__dict__.copy()
        state["_index"] = None
        state["_reader"] = None
        state["_reader_pid"] = None
        state["_prefetched_from"] = None
        return state

    def byte_index(self) -> ByteIndex:
        # Reloaded in spawned workers (dropped when pickled); forked ones inherit it (plain data).
        if self._index is None:
            self._index = load_index(self._files)
            if self._index is None:
                raise FileNotFoundError(f"{self._files.root}: byte index {INDEX_DIR}/ missing or unreadable")
        return self._index

    def episode_reader(self) -> EpisodeReader:
        """This process's EpisodeReader, created on first use (never inherited, never pickled)."""
        pid = os.getpid()
        if self._reader is None or self._reader_pid != pid:
            if self._reader is not None:
                # Inherited through fork: its threads and connections live in the parent only.
                keep_inherited(self._reader)
            fs, base = self._files.index_location()
            self._reader = EpisodeReader(
                self.byte_index(),
                base,
                fs=fs,
                cache_bytes=self.cache_bytes,
                prefetch_workers=self.prefetch_workers,
                # A decoder read outside the fetched bytes is fetched (and counted in
                # stats().lazy_fetched_bytes) rather than failing a training step.
                on_gap="fetch",
                # The decoder family the "file" source would use, so both sources return the same frames.
                backend=resolve_backend(self.video_backend),  # type: ignore[arg-type]
                # Decoders stay open per (camera, episode) as the file source keeps them per file.
                decoder_cache_size=self.decoder_cache_size,
            )
            self._reader_pid = pid
            self._prefetched_from = None
            note_decoding()
        return self._reader

    def prefetch(self, positions: Sequence[int]) -> None:
        """Start fetching these episodes' bytes (positions in the episode order, every camera)."""
        reader = self.episode_reader()
        wanted = [(key, int(self.episode_indices[p])) for p in positions for key in self.video_keys]
        # An episode with an open decoder needs no bytes, even if the byte cache dropped them.
        reader.prefetch([w for w in wanted if not reader.has_open_decoder(*w)])

    def prefetch_after(self, position: int) -> None:
        if self.prefetch_ahead <= 0 or self._prefetched_from == position:
            return
        self._prefetched_from = position
        upcoming = range(position + 1, min(position + 1 + self.prefetch_ahead, len(self.episode_indices)))
        self.prefetch(list(upcoming))

    def decode_episode(self, key: str, position: int, timestamps: list[float], *, tolerance_s: float) -> torch.Tensor:
        """uint8 frames of `key` at episode-local `timestamps` (the `timestamp` column)."""
        reader = self.episode_reader()
        episode = int(self.episode_indices[position])
        try:
            indices = reader.frame_indices_at(key, episode, timestamps, tolerance_s=tolerance_s)
        except ValueError as e:
            raise FrameTimestampError(f"{e}; video: {self._video_paths[key][position]}") from e
        return reader.decode(key, episode, indices).data

    def close(self) -> None:
        """Release this process's episode reader (it is recreated on next use)."""
        if self._reader is not None and self._reader_pid == os.getpid():
            self._reader.close()
            self._reader = None
