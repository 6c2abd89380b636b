"""ISO BMFF box walking with bounds checks (the low level of the MP4 parser).

Every size is checked against its parent (or the file) before use and every loop is bounded by
the bytes present, so malformed input ends in `Mp4Error` — a `ValueError` naming the box path —
never in a hang, another exception type or a huge allocation.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lerobot_assets.byteindex.source import ByteSource

# A moov larger than this is not a real video header (1 GiB holds ~100M samples' tables).
MAX_MOOV_BYTES = 1 << 30
# Top-level boxes visited before giving up (real files have < 10; garbage can claim millions).
MAX_TOP_LEVEL_BOXES = 10_000
# Samples allowed when a fixed-size `stsz` gives no per-sample bytes and the file size is unknown
# (~4 days at 30 fps); bounds the arrays a tiny forged header could make us allocate.
MAX_SAMPLES_UNBOUNDED = 10_000_000
# Child boxes visited inside one container.
MAX_CHILDREN = 100_000

TOP = "(file)"  # path used for errors about the top level itself


class Mp4Error(ValueError):
    """Malformed or unsupported MP4; `path` names the box (e.g. ``moov/trak[0]/mdia/mdhd``)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.detail = message


@dataclass(frozen=True)
class Box:
    """One box: absolute offsets of its start, payload start and end (exclusive)."""

    type: str
    start: int
    payload: int
    end: int
    path: str

    @property
    def size(self) -> int:
        return self.end - self.start


# --------------------------------------------------------------------------- box walking


def fourcc_str(raw: bytes) -> str:
    # Keep paths printable even for garbage types.
    if all(32 <= b < 127 for b in raw):
        return raw.decode("ascii")
    return "0x" + raw.hex()


def _parse_header(head: bytes, pos: int, parent_end: int | None, path: str) -> tuple[str, int, int]:
    """(type, header_len, end) of the box starting at `pos`; `head` holds up to 16 bytes from pos."""
    if len(head) < 8:
        raise Mp4Error(path or TOP, f"truncated box header at offset {pos} ({len(head)} of 8 bytes)")
    size, raw_type = struct.unpack_from(">I4s", head, 0)
    box_type = fourcc_str(raw_type)
    header = 8
    if size == 1:
        if len(head) < 16:
            raise Mp4Error(f"{path}/{box_type}" if path else box_type, "truncated 64-bit box size")
        (size,) = struct.unpack_from(">Q", head, 8)
        header = 16
        if size < 16:
            raise Mp4Error(_join(path, box_type), f"64-bit box size {size} smaller than its 16-byte header")
        end = pos + size
    elif size == 0:
        if parent_end is None:
            end = -1  # "to end of file" with the end unknown; the caller resolves it
        else:
            end = parent_end
    else:
        if size < 8:
            raise Mp4Error(_join(path, box_type), f"box size {size} smaller than its 8-byte header")
        end = pos + size
    if parent_end is not None and end > parent_end:
        raise Mp4Error(
            _join(path, box_type),
            f"box at offset {pos} claims {end - pos} bytes but only {parent_end - pos} remain in its "
            + ("parent" if path else "file"),
        )
    return box_type, header, end


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def iter_children(buf: memoryview, base: int, start: int, end: int, path: str) -> Iterator[Box]:
    """Child boxes of the container whose payload is [start, end) (absolute), buf[0] at `base`."""
    pos = start
    counts: dict[str, int] = {}
    visited = 0
    while end - pos >= 8:
        visited += 1
        if visited > MAX_CHILDREN:
            raise Mp4Error(path, f"more than {MAX_CHILDREN} child boxes")
        head = bytes(buf[pos - base : pos - base + 16])
        box_type, header, box_end = _parse_header(head, pos, end, path)
        index = counts.get(box_type, 0)
        counts[box_type] = index + 1
        name = f"{box_type}[{index}]" if box_type == "trak" else box_type
        yield Box(box_type, pos, pos + header, box_end, _join(path, name))
        pos = box_end
    # Fewer than 8 trailing bytes: padding some muxers leave; FFmpeg ignores it too.


def walk_top_level(src: ByteSource) -> list[Box]:
    """Top-level boxes, reading only their headers (payloads are skipped by offset)."""
    boxes: list[Box] = []
    size = src.size
    pos = 0
    while size is None or pos < size:
        if len(boxes) >= MAX_TOP_LEVEL_BOXES:
            raise Mp4Error(TOP, f"more than {MAX_TOP_LEVEL_BOXES} top-level boxes")
        head = src.read_at(pos, 16)
        if not head and (size is None or getattr(src, "partial", False)):
            break  # end of the available (header-only) bytes
        if len(head) < 8:
            if size is None or getattr(src, "partial", False):
                break
            raise Mp4Error(TOP, f"truncated box header at offset {pos} ({len(head)} of 8 bytes; file size {size})")
        box_type, header, end = _parse_header(head, pos, size, "")
        if end == -1:
            # size==0 on the last box with an unknown file size: it runs to the (unknown) end.
            boxes.append(Box(box_type, pos, pos + header, -1, box_type))
            break
        boxes.append(Box(box_type, pos, pos + header, end, box_type))
        pos = end
    return boxes


# --------------------------------------------------------------------------- full-box helpers


class Payload:
    """Bounds-checked big-endian reads inside one box's payload."""

    def __init__(self, buf: memoryview, base: int, box: Box):
        self.data = buf[box.payload - base : box.end - base]
        self.path = box.path

    def __len__(self) -> int:
        return len(self.data)

    def need(self, offset: int, length: int, what: str) -> None:
        if offset < 0 or offset + length > len(self.data):
            raise Mp4Error(self.path, f"{what} needs {offset + length} bytes but the box payload has {len(self.data)}")

    def u8(self, offset: int, what: str) -> int:
        self.need(offset, 1, what)
        return int(self.data[offset])

    def u16(self, offset: int, what: str) -> int:
        self.need(offset, 2, what)
        return struct.unpack_from(">H", self.data, offset)[0]

    def u32(self, offset: int, what: str) -> int:
        self.need(offset, 4, what)
        return struct.unpack_from(">I", self.data, offset)[0]

    def u64(self, offset: int, what: str) -> int:
        self.need(offset, 8, what)
        return struct.unpack_from(">Q", self.data, offset)[0]

    def version(self) -> int:
        return self.u8(0, "full box version")

    def array(self, offset: int, count: int, dtype: str, what: str) -> np.ndarray:
        """`count` records of `dtype` at `offset`, checking the count against the payload first."""
        itemsize = np.dtype(dtype).itemsize
        available = max(0, len(self.data) - offset) // itemsize
        if count > available:
            raise Mp4Error(self.path, f"{what} {count} exceeds box size ({available} fit in {len(self.data)} bytes)")
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=offset)
