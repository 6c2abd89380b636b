"""A bounded, thread-safe LRU of open video decoders, keyed by path.

Opening a decoder costs far more than decoding one frame, and a map-style reader decodes one
frame per camera per sample, so decoders must stay open between calls. They must not stay open
forever either: LeRobot's unbounded cache held one decoder + file handle per file per worker and
ran a 4,195-episode training run out of memory. Evicted and cleared entries close their decoders
and file handles at once.

Size: `max_size=` or, when not given, the environment variable
`LEROBOT_ASSETS_VIDEO_DECODER_CACHE_SIZE` (else LeRobot's `LEROBOT_VIDEO_DECODER_CACHE_SIZE`, else
100). A positive integer bounds the cache; "none", "unbounded", "-1" or "" mean unbounded. A bad
value raises ValueError naming the variable when a cache is constructed (not at import).
"""

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar

DEFAULT_DECODER_CACHE_SIZE = 100
CACHE_SIZE_ENV_VARS: tuple[str, ...] = (
    "LEROBOT_ASSETS_VIDEO_DECODER_CACHE_SIZE",
    "LEROBOT_VIDEO_DECODER_CACHE_SIZE",
)
_UNBOUNDED = ("", "none", "unbounded", "-1")


def cache_size_from_env() -> int | None:
    """The cache size the environment asks for (None = unbounded)."""
    for name in CACHE_SIZE_ENV_VARS:
        raw = os.environ.get(name)
        if raw is None:
            continue
        value = raw.strip().lower()
        if value in _UNBOUNDED:
            return None
        try:
            size = int(value)
        except ValueError:
            raise ValueError(f"{name} must be a positive integer, 'none' or '-1'; got {raw!r}") from None
        if size <= 0:
            raise ValueError(f"{name} must be a positive integer, 'none' or '-1'; got {raw!r}")
        return size
    return DEFAULT_DECODER_CACHE_SIZE


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _file_signature(path: str) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a local file; None for remote paths or missing files.

    Files are replaced in place (an episode appended to an MP4 renames a new file over it), and
    an open decoder keeps reading the old inode, so an entry whose file changed must be reopened.
    """
    if _is_remote(path):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class DecoderEntry:
    """The open decoders of one file. Use under `lock`: decoders are not thread-safe.

    Backends open lazily (a PyAV-only reader never loads torchcodec). After `close()` the entry
    reopens on next use, so a caller that fetched it just before eviction still works.
    """

    def __init__(
        self,
        path: str,
        signature: tuple[int, int, int] | None = None,
        opener: Callable[[str], Any] | None = None,
    ) -> None:
        self.path = path
        self.signature = signature
        self.opener = opener
        self.lock = threading.Lock()
        self._handles: list[Any] = []
        self._approx: Any = None
        self._exact: Any = None
        self._pyav: Any = None
        self.fps = 0.0
        self.begin_s = 0.0
        self.num_frames = 0

    def _source(self) -> Any:
        if not _is_remote(self.path):
            # A path lets FFmpeg read the file itself, much faster than Python file callbacks.
            return self.path
        if self.opener is not None:
            handle = self.opener(self.path)  # e.g. a filesystem carrying endpoint/credentials
        else:
            import fsspec

            handle = fsspec.open(self.path, "rb").open()
        self._handles.append(handle)
        return handle

    def approximate_decoder(self) -> Any:
        """torchcodec decoder in approximate mode: opens from the header, no file scan."""
        if self._approx is None:
            from torchcodec.decoders import VideoDecoder

            decoder = VideoDecoder(self._source(), seek_mode="approximate")
            meta = decoder.metadata
            # A header without rate or frame count keeps 0, which sends decoding to exact mode.
            self.fps = float(meta.average_fps or 0.0)
            self.begin_s = float(meta.begin_stream_seconds or 0.0)
            self.num_frames = int(meta.num_frames or 0)
            self._approx = decoder
        return self._approx

    def exact_decoder(self) -> Any:
        """torchcodec decoder in exact mode: scans every packet once, then maps pts exactly."""
        if self._exact is None:
            from torchcodec.decoders import VideoDecoder

            self._exact = VideoDecoder(self._source(), seek_mode="exact")
        return self._exact

    def pyav_container(self) -> Any:
        if self._pyav is None:
            import av

            source = self._source()
            self._pyav = av.open(source)
        return self._pyav

    def close(self) -> None:
        with self.lock:
            self._approx = None
            self._exact = None
            if self._pyav is not None:
                try:
                    self._pyav.close()
                finally:
                    self._pyav = None
            handles, self._handles = self._handles, []
            for handle in handles:
                try:
                    handle.close()
                except Exception:  # closing is best effort; the entry is gone either way
                    pass


class VideoDecoderCache:
    """Thread-safe LRU of `DecoderEntry` by path; `max_size=None` means unbounded."""

    _SENTINEL: ClassVar[object] = object()

    def __init__(
        self, max_size: int | None | object = _SENTINEL, opener: Callable[[str], Any] | None = None
    ) -> None:
        """`opener(url) -> binary file object` opens remote files (default: `fsspec.open(url)`)."""
        if max_size is VideoDecoderCache._SENTINEL:
            max_size = cache_size_from_env()
        if max_size is not None and (not isinstance(max_size, int) or max_size <= 0):
            raise ValueError(f"max_size must be a positive integer or None; got {max_size!r}")
        self.max_size: int | None = max_size
        self._opener = opener
        self._entries: OrderedDict[str, DecoderEntry] = OrderedDict()
        self._inherited: list[DecoderEntry] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _after_fork(self) -> None:
        # A forked DataLoader worker must not share decoders (and their file offsets) with its
        # parent, and the lock may have been copied held. The inherited decoders are parked, never
        # freed: destroying a used dav1d/PyAV decoder in a forked child can deadlock in
        # pthread_cond_destroy (its threads do not exist in the child).
        self._lock = threading.Lock()
        self._inherited.extend(self._entries.values())
        self._entries = OrderedDict()
        self._pid = os.getpid()

    def entry(self, path: str | os.PathLike[str]) -> DecoderEntry:
        """The entry for `path`, created if absent; marks it most recently used."""
        key = os.fspath(path)
        signature = _file_signature(key)  # one stat(): cheap next to decoding a frame
        evicted: list[DecoderEntry] = []
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                if found.signature == signature:
                    self._entries.move_to_end(key)
                    return found
                evicted.append(self._entries.pop(key))  # file replaced since it was opened
            found = self._entries[key] = DecoderEntry(key, signature, self._opener)
            if self.max_size is not None:
                while len(self._entries) > self.max_size:
                    evicted.append(self._entries.popitem(last=False)[1])
        # Closed outside the cache lock: closing waits for an in-flight decode on that entry.
        # (`found` can be returned while `evicted` is closing, since they are different entries.)
        for old in evicted:
            old.close()
        return found

    def get_decoder(self, path: str | os.PathLike[str]) -> Any:
        """LeRobot-compatible accessor: the torchcodec decoder (approximate mode) for `path`."""
        entry = self.entry(path)
        with entry.lock:
            return entry.approximate_decoder()

    def keys(self) -> list[str]:
        """Paths in LRU order, least recently used first."""
        with self._lock:
            return list(self._entries)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, (str, os.PathLike)):
            return False
        with self._lock:
            return os.fspath(path) in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def size(self) -> int:
        return len(self)

    def clear(self) -> None:
        """Close every decoder and file handle and empty the cache."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for old in entries:
            old.close()


_default_cache: VideoDecoderCache | None = None
_default_cache_lock = threading.Lock()


def default_decoder_cache() -> VideoDecoderCache:
    """The process-wide cache, created on first use (so a bad env value fails there, not at import)."""
    global _default_cache
    if _default_cache is None:
        with _default_cache_lock:
            if _default_cache is None:
                _default_cache = VideoDecoderCache()
    return _default_cache
