"""Positional byte sources for the MP4 parser.

The parser never needs a whole file: it reads box headers and the `moov` box at absolute offsets.
These small adapters give it one interface (`read_at`) over an in-memory buffer, a sparse set of
buffers (header-only bytes of a non-faststart file), or any seekable file object — local or fsspec —
so that parsing a remote file costs only the header bytes, which `bytes_read` lets callers verify.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable
from typing import Protocol, runtime_checkable


@runtime_checkable
class ByteSource(Protocol):
    """Random-access bytes at absolute file offsets."""

    @property
    def size(self) -> int | None:
        """Total file size when known (None: unknown, e.g. a header-only buffer)."""
        ...

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset`; fewer only at the end of the available data."""
        ...


class BufferSource:
    """A bytes-like buffer holding the file's bytes from absolute offset `base` on."""

    def __init__(self, data: bytes | bytearray | memoryview, *, base: int = 0, size: int | None = None):
        self._data = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        self._base = base
        self._size = size
        # A header-only prefix of a larger file: reads past its end mean "not here", not "truncated".
        self.partial = size is not None and base + len(self._data) < size
        self.bytes_read = 0

    @property
    def size(self) -> int | None:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        start = offset - self._base
        if start < 0 or length <= 0:
            return b""
        out = bytes(self._data[start : start + length])
        self.bytes_read += len(out)
        return out


class RangesSource:
    """Several buffers at absolute offsets (e.g. the ftyp range and the trailing moov range)."""

    def __init__(self, ranges: Iterable[tuple[int, bytes]], *, size: int | None = None):
        self._ranges = sorted((int(start), bytes(data)) for start, data in ranges)
        self._size = size
        self.partial = True  # by construction it holds only some ranges of the file
        self.bytes_read = 0

    @property
    def size(self) -> int | None:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        for start, data in self._ranges:
            if start <= offset < start + len(data):
                out = data[offset - start : offset - start + length]
                self.bytes_read += len(out)
                return out
        return b""


class FileSource:
    """A seekable binary file object (local file, fsspec file with cache_type='none', BytesIO).

    Thread-safe (seek+read under a lock) and counts the bytes it returned, so tests can assert
    that parsing a remote file read only its header.
    """

    def __init__(self, fileobj: io.IOBase, *, size: int | None = None):
        self._f = fileobj
        self._lock = threading.Lock()
        if size is None:
            size = _probe_size(fileobj)
        self._size = size
        self.bytes_read = 0
        self.reads = 0

    @property
    def size(self) -> int | None:
        return self._size

    def read_at(self, offset: int, length: int) -> bytes:
        if length <= 0 or offset < 0:
            return b""
        if self._size is not None:
            length = min(length, self._size - offset)
            if length <= 0:
                return b""
        with self._lock:
            self._f.seek(offset)
            chunks: list[bytes] = []
            remaining = length
            # File objects may return short reads before EOF (pipes, some fsspec backends).
            while remaining > 0:
                chunk = self._f.read(remaining)
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
        out = b"".join(chunks)
        self.bytes_read += len(out)
        self.reads += 1
        return out


def _probe_size(fileobj: io.IOBase) -> int | None:
    size = getattr(fileobj, "size", None)
    if isinstance(size, int):
        return size
    try:
        pos = fileobj.tell()
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(pos)
        return int(end)
    except (OSError, ValueError, AttributeError):
        return None


def as_source(obj: object, *, size: int | None = None) -> ByteSource:
    """Wrap bytes-like objects and file objects; pass ByteSource implementations through."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return BufferSource(obj, size=size)
    if isinstance(obj, (BufferSource, RangesSource, FileSource)):
        return obj
    if hasattr(obj, "read") and hasattr(obj, "seek"):
        return FileSource(obj, size=size)  # type: ignore[arg-type]
    if isinstance(obj, ByteSource):
        return obj
    raise TypeError(f"cannot read MP4 bytes from {type(obj).__name__}")
