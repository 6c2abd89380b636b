"""A seekable file object that holds only some byte ranges of an MP4 (header + one episode).

Decoders (FFmpeg through torchcodec or PyAV) read the file through a 32-64 KiB buffer, so they ask for
bytes around what they need, not exactly it. The rules below make that work with only the header
and the episode's samples in memory, while every other read is either answered without data or
reported:

1. A read that starts inside a held range returns bytes up to the end of that range (a short read;
   FFmpeg's I/O layer simply asks again).
2. Once the decoder is open ("decode" phase), a read at or after the end of the episode payload is
   end-of-file: the episode ends there. The demuxer reads ahead past the last sample it was asked
   for, and answering EOF (never made-up bytes) makes the decoder flush its reorder buffer, so the
   last frames of the episode come out exactly as they do from the full file.
3. A read that starts in a gap *before* the payload but whose window reaches the next held range
   gets zeros for the gap followed by real bytes. FFmpeg skips short distances forward by reading
   through its buffer rather than seeking (e.g. from the end of the header to the episode's first
   sample) and discards the skipped bytes; the samples there are never decoded.
4. While the decoder is being opened, other reads in gaps are EOF: FFmpeg probes the first samples
   of the file, and EOF is the honest answer (the stream parameters come from the sample description
   in the header). One exception: opening a non-faststart file, FFmpeg skips from the mdat to the
   trailing moov by reading through when the distance is short; those bytes stay in its buffer and
   would later be read ahead as samples, so they are fetched for real (`fetch`, counted) — never
   zero-filled, which would feed zeros to the decoder.
5. Any other read in the decode phase is a real miss: `on_gap` says what to do — "raise"
   (`SparseReadError`), "eof", or "fetch" (call `fetch(start, end)` and keep the bytes; callers
   count them).
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

GapPolicy = Literal["raise", "eof", "fetch"]


class SparseReadError(OSError):
    """A decoder read bytes the byte index did not fetch."""


@dataclass
class SparseStats:
    reads: int = 0
    bytes_served: int = 0
    zero_filled: int = 0  # gap bytes skipped over (rule 3)
    eof_past_payload: int = 0  # read-ahead answered with EOF (rule 2)
    probe_eofs: int = 0  # open-time probes answered with EOF (rule 4)
    gap_misses: int = 0  # rule 5 events
    fetched_bytes: int = 0  # bytes fetched lazily (on_gap="fetch")


class SparseFile(io.RawIOBase):
    """A read-only view of a `size`-byte file of which only `ranges` are present."""

    def __init__(
        self,
        size: int,
        ranges: Sequence[tuple[int, bytes | bytearray | memoryview]],
        *,
        payload: tuple[int, int] | None = None,
        on_gap: GapPolicy = "raise",
        fetch: Callable[[int, int], bytes] | None = None,
        name: str = "",
    ):
        super().__init__()
        if on_gap not in ("raise", "eof", "fetch"):
            raise ValueError(f"on_gap must be 'raise', 'eof' or 'fetch', not {on_gap!r}")
        if on_gap == "fetch" and fetch is None:
            raise ValueError("on_gap='fetch' needs a fetch(start, end) callable")
        # `fetch` is also used, whatever `on_gap` says, for the one read FFmpeg needs real bytes for
        # while opening a non-faststart file (see _read).
        self._size = int(size)
        self._starts: list[int] = []
        self._data: list[memoryview] = []
        end = -1
        for start, data in sorted(ranges, key=lambda r: r[0]):
            view = memoryview(data).cast("B")
            start = int(start)
            if start < end:  # overlapping ranges: keep the earlier bytes, trim the later range
                view, start = view[end - start :], end
            self._insert(start, view)
            end = max(end, start + len(view))
        self._payload = payload
        self._on_gap = on_gap
        self._fetch = fetch
        self._trailing_seen = False  # a header range after the payload (trailing moov) was read
        self._pos = 0
        self.phase: Literal["open", "decode"] = "open"
        self.name = name
        self.stats = SparseStats()

    # ----------------------------------------------------------------- io.RawIOBase interface
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @property
    def size(self) -> int:
        return self._size

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence: {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        data = self._read(len(out))
        out[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._pos
        return bytes(self._read(size))

    def readall(self) -> bytes:
        return self.read(-1)

    # ----------------------------------------------------------------- the rules
    def _insert(self, start: int, data: memoryview) -> None:
        if not len(data):
            return
        i = bisect.bisect_left(self._starts, start)
        self._starts.insert(i, start)
        self._data.insert(i, data)

    def _range_at(self, pos: int) -> int:
        """Index of the held range containing pos, or -1."""
        i = bisect.bisect_right(self._starts, pos) - 1
        if i >= 0 and pos < self._starts[i] + len(self._data[i]):
            return i
        return -1

    def _read(self, n: int) -> memoryview | bytes:
        pos = self._pos
        self.stats.reads += 1
        n = min(n, self._size - pos)
        if n <= 0:
            return b""
        i = self._range_at(pos)
        if i >= 0:  # rule 1
            start = self._starts[i]
            if self._payload is not None and start >= self._payload[1]:
                self._trailing_seen = True
            chunk = self._data[i][pos - start : pos - start + n]
            return self._advance(chunk)
        past_payload = self._payload is not None and pos >= self._payload[1]
        if past_payload and self.phase == "decode":  # rule 2
            self.stats.eof_past_payload += 1
            return b""
        j = bisect.bisect_right(self._starts, pos)  # next held range
        reaches = j < len(self._starts) and self._starts[j] < pos + n
        if past_payload:
            if j < len(self._starts) and not self._trailing_seen:
                # Opening a non-faststart file: FFmpeg skips the rest of the mdat to reach the
                # trailing moov by reading through its buffer when the distance is short. These
                # bytes stay in FFmpeg's buffer and would later be read ahead as samples, so they
                # must be the real ones (zeros would be fed to the decoder): fetch them.
                if self._fetch is not None:
                    return self._fetch_and_read(pos, min(pos + n, self._starts[j]), n)
                if reaches:
                    return self._zero_fill(pos, j, n)
            self.stats.probe_eofs += 1  # rule 4 (only the open phase gets here)
            return b""
        if reaches:  # rule 3: a gap before the payload, skipped over
            return self._zero_fill(pos, j, n)
        if self.phase == "open":  # rule 4
            self.stats.probe_eofs += 1
            return b""
        self.stats.gap_misses += 1  # rule 5
        if self._on_gap == "eof":
            return b""
        if self._on_gap == "raise" or self._fetch is None:
            raise SparseReadError(
                f"{self.name or 'sparse file'}: read of {n} bytes at offset {pos} is outside the fetched "
                f"ranges {self.ranges()}"
            )
        end = self._starts[j] if j < len(self._starts) else self._size
        return self._fetch_and_read(pos, min(end, pos + max(n, 1 << 16)), n)

    def _zero_fill(self, pos: int, j: int, n: int) -> bytes:
        gap = self._starts[j] - pos
        self.stats.zero_filled += gap
        return self._advance(bytes(gap) + bytes(self._data[j][: n - gap]))  # type: ignore[return-value]

    def _fetch_and_read(self, start: int, end: int, n: int) -> memoryview | bytes:
        assert self._fetch is not None
        data = self._fetch(start, end)
        self.stats.fetched_bytes += len(data)
        if not data:
            return b""
        self._insert(start, memoryview(data).cast("B"))
        return self._read(n)

    def _advance(self, chunk: memoryview | bytes) -> memoryview | bytes:
        self._pos += len(chunk)
        self.stats.bytes_served += len(chunk)
        return chunk

    def ranges(self) -> list[tuple[int, int]]:
        """Held ranges as (start, end exclusive)."""
        return [(s, s + len(d)) for s, d in zip(self._starts, self._data)]
