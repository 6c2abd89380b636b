"""A small, defensive MP4 (ISO BMFF) parser for the video track's sample table.

What it gives: for every sample of the first video track (handler `vide`), in decode order, the
presentation and decode timestamps (ticks of the media timescale, after the composition offsets of
`ctts` and the shift of the edit list `elst`, exactly as FFmpeg/ffprobe report them), byte offset, size
and keyframe flag, as numpy arrays; the codec fourcc from the `stsd` entry; and the byte ranges a
decoder needs besides the sample data (every top-level box except `mdat` payloads — a prefix for
faststart files, ftyp + trailing moov for non-faststart ones).

Why it is defensive: it parses files fetched from remote storage and headers found in the wild. Bad
input raises `Mp4Error` (a `ValueError`) naming the box path, e.g.
``moov/trak[0]/mdia/minf/stbl/stsz: sample count 4294967295 exceeds box size``. Every claimed size or
count is checked against the bytes actually present before anything is allocated, and every loop is
bounded by the input length, so garbage can neither hang the parser nor make it allocate gigabytes.

Why it reads through `ByteSource`: parsing a remote file then costs a few box-header reads plus the
moov itself — never sample data.

The sample table itself (stts, ctts, stsz, stsc, stco, stss, elst) is read by `sample_table.py`;
this module finds the video track and the file's layout around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot_assets.byteindex.boxes import (
    MAX_MOOV_BYTES,
    Box,
    Mp4Error,
    Payload,
    fourcc_str,
    iter_children,
    walk_top_level,
)
from lerobot_assets.byteindex.sample_table import SampleTable, Track, require_box, sample_table
from lerobot_assets.byteindex.source import as_source

_CONTAINERS_TRAK = ("mdia", "minf", "stbl", "edts")  # trak descendants searched for table boxes


@dataclass(frozen=True)
class Mp4Info:
    """What the byte index needs to know about one MP4 file."""

    file_size: int | None
    codec: str  # sample entry fourcc: 'av01', 'avc1', 'hvc1', ...
    track_id: int
    track_index: int  # position of the video `trak` among moov's traks
    width: int
    height: int
    movie_timescale: int
    edit_shift: int  # ticks added to every decode time by the edit list (usually -media_time)
    faststart: bool  # moov before the first mdat
    moov_range: tuple[int, int]
    mdat_ranges: tuple[tuple[int, int], ...]  # payload ranges of top-level mdat boxes
    header_ranges: tuple[tuple[int, int], ...]  # bytes a decoder needs besides sample data
    top_level: tuple[Box, ...] = field(repr=False)
    samples: SampleTable = field(repr=False)

    @property
    def timescale(self) -> int:
        return self.samples.timescale

    @property
    def header_bytes(self) -> int:
        return sum(end - start for start, end in self.header_ranges)


# --------------------------------------------------------------------------- track parsing


def _collect_track(buf: memoryview, base: int, trak: Box, index: int) -> Track:
    """Index the boxes of one trak we care about by name (first occurrence wins)."""
    found: dict[str, Box] = {}

    def visit(container: Box, depth: int) -> None:
        for child in iter_children(buf, base, container.payload, container.end, container.path):
            found.setdefault(child.type, child)
            if child.type in _CONTAINERS_TRAK and depth < 4:
                visit(child, depth + 1)

    visit(trak, 0)
    return Track(index, trak.path, found)


def _handler(buf: memoryview, base: int, track: Track) -> str:
    hdlr = track.boxes.get("hdlr")
    if hdlr is None:
        return ""
    p = Payload(buf, base, hdlr)
    p.need(8, 4, "handler type")
    return fourcc_str(bytes(p.data[8:12]))


def _mvhd_timescale(buf: memoryview, base: int, box: Box | None) -> int:
    if box is None:
        return 0
    p = Payload(buf, base, box)
    version = p.version()
    return p.u32(12 if version == 0 else 20, "timescale") if version in (0, 1) else 0


def _tkhd(buf: memoryview, base: int, box: Box | None) -> tuple[int, int, int]:
    """(track_id, width, height) — width/height are 16.16 fixed point at the end of the box."""
    if box is None:
        return 0, 0, 0
    p = Payload(buf, base, box)
    version = p.version()
    track_id = p.u32(12 if version == 0 else 20, "track_ID")
    wh_offset = 76 if version == 0 else 88
    if len(p) >= wh_offset + 8:
        return track_id, p.u32(wh_offset, "width") >> 16, p.u32(wh_offset + 4, "height") >> 16
    return track_id, 0, 0


def _stsd(buf: memoryview, base: int, box: Box) -> tuple[str, int, int]:
    """Codec fourcc of the first sample entry (and the visual entry's width/height).

    Layout: 4 bytes version/flags, 4 bytes entry_count, then each entry is a box (size, type, ...).
    The fourcc is the entry's *type* — payload bytes [12:16] — not its size at [8:12] (the bug the
    reference notes found in LeRobot's parser).
    """
    p = Payload(buf, base, box)
    entries = p.u32(4, "entry_count")
    if entries == 0:
        raise Mp4Error(box.path, "no sample entries")
    entry_size = p.u32(8, "sample entry size")
    p.need(12, 4, "sample entry type")
    if entry_size < 8 or 8 + entry_size > len(p):
        raise Mp4Error(box.path, f"sample entry size {entry_size} does not fit the box ({len(p) - 8} bytes)")
    fourcc = fourcc_str(bytes(p.data[12:16]))
    width = height = 0
    if entry_size >= 36:  # VisualSampleEntry: width/height at entry offsets 32/34
        width, height = p.u16(8 + 32, "width"), p.u16(8 + 34, "height")
    return fourcc, width, height


# --------------------------------------------------------------------------- entry points


def _header_ranges(top: list[Box], file_size: int | None) -> tuple[tuple[int, int], ...]:
    """Everything but sample data: whole non-mdat boxes, and only the headers of mdat/free/skip.

    FFmpeg's demuxer reads every top-level box header on open and parses non-media boxes whole, so a
    decoder handed exactly these ranges (plus the samples it decodes) never needs another byte.
    """
    ranges: list[tuple[int, int]] = []
    for box in top:
        if box.type in ("mdat", "free", "skip"):
            ranges.append((box.start, box.payload))
        else:
            end = box.end if box.end != -1 else (file_size if file_size is not None else box.payload)
            ranges.append((box.start, end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def parse_mp4(source: object, *, file_size: int | None = None) -> Mp4Info:
    """Parse the video track of an MP4.

    `source`: bytes-like (the file from offset 0 — a header-only prefix is enough), a seekable file
    object (local or fsspec; only box headers and the moov are read), or a `ByteSource` (e.g.
    `RangesSource` with the ftyp and moov ranges of a non-faststart file). `file_size` enables the
    checks of sample offsets against the file's end when the source cannot tell its size.
    """
    src = as_source(source, size=file_size)
    size = src.size if src.size is not None else file_size
    top = walk_top_level(src)
    moov = next((b for b in top if b.type == "moov"), None)
    if moov is None:
        raise Mp4Error("moov", "box not found" + ("" if size is not None else " in the available bytes"))
    if moov.end == -1:
        raise Mp4Error("moov", "box size 0 (to end of file) with an unknown file size")
    if moov.size > MAX_MOOV_BYTES:
        raise Mp4Error("moov", f"box claims {moov.size} bytes, more than the {MAX_MOOV_BYTES}-byte limit")
    raw = src.read_at(moov.start, moov.size)
    if len(raw) < moov.size:
        raise Mp4Error("moov", f"truncated: box claims {moov.size} bytes but only {len(raw)} are available")
    buf = memoryview(raw)
    base = moov.start

    mvhd = None
    traks: list[Box] = []
    for child in iter_children(buf, base, moov.payload, moov.end, "moov"):
        if child.type == "mvhd" and mvhd is None:
            mvhd = child
        elif child.type == "trak":
            traks.append(child)
    movie_timescale = _mvhd_timescale(buf, base, mvhd)

    video: Track | None = None
    for index, trak in enumerate(traks):
        track = _collect_track(buf, base, trak, index)
        if _handler(buf, base, track) == "vide":
            video = track
            break
    if video is None:
        raise Mp4Error("moov", f"no video track (hdlr 'vide') among {len(traks)} trak boxes")

    stsd_box = require_box(video, "stsd", "mdia/minf/stbl")
    codec, width, height = _stsd(buf, base, stsd_box)
    track_id, tk_width, tk_height = _tkhd(buf, base, video.boxes.get("tkhd"))
    samples, edit_shift = sample_table(buf, base, video, movie_timescale, size)

    mdats = [b for b in top if b.type == "mdat"]
    first_mdat = mdats[0].start if mdats else None
    return Mp4Info(
        file_size=size,
        codec=codec,
        track_id=track_id,
        track_index=video.index,
        width=width or tk_width,
        height=height or tk_height,
        movie_timescale=movie_timescale,
        edit_shift=edit_shift,
        faststart=first_mdat is None or moov.start < first_mdat,
        moov_range=(moov.start, moov.end),
        mdat_ranges=tuple((b.payload, b.end if b.end != -1 else (size if size is not None else -1)) for b in mdats),
        header_ranges=_header_ranges(top, size),
        top_level=tuple(top),
        samples=samples,
    )


FOURCC_CODECS = {
    "av01": "av1",
    "avc1": "h264",
    "avc3": "h264",
    "hvc1": "hevc",
    "hev1": "hevc",
    "vp09": "vp9",
    "mp4v": "mpeg4",
}


def codec_name(fourcc: str) -> str:
    """FFmpeg-style codec name for a sample-entry fourcc ('av01' -> 'av1'); the fourcc if unknown."""
    return FOURCC_CODECS.get(fourcc, fourcc)
