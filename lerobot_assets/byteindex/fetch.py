"""Ranged reads of dataset files, counted, and the byte-bounded LRU the episode reader caches them in."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem


class RangeFetcher:
    """Ranged reads of dataset files, counting every byte and request made to storage."""

    def __init__(self, fs: AbstractFileSystem, base: str):
        self.fs = fs
        self.base = base
        self._lock = threading.Lock()
        self.bytes_requested = 0
        self.requests = 0

    def fetch(self, rel: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of `rel`: a single ranged read (one GET on object stores)."""
        if end <= start:
            return b""
        with self._lock:
            self.bytes_requested += end - start
            self.requests += 1
        full = f"{self.base}/{rel}"
        if isinstance(self.fs, LocalFileSystem):
            with open(full, "rb") as f:
                f.seek(start)
                return f.read(end - start)
        return self.fs.cat_file(full, start=start, end=end)


class ByteLRU:
    """Thread-safe LRU keyed by anything, bounded by the bytes of its values."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.used = 0
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0

    def get(self, key: Any) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Any, value: Any, nbytes: int) -> None:
        if nbytes > self.max_bytes:
            return  # larger than the whole cache: serve it, don't cache it
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.used -= old[1]
            while self._items and self.used + nbytes > self.max_bytes:
                _, (_, freed) = self._items.popitem(last=False)
                self.used -= freed
                self.evictions += 1
            self._items[key] = (value, nbytes)
            self.used += nbytes

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
