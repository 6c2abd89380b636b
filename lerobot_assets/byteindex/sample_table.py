"""The sample table of an MP4's video track: every sample's pts/dts, duration, byte offset, size and
keyframe flag, from the track's `stbl` boxes (stts, ctts, stsz/stz2, stsc, stco/co64, stss), its
`mdhd` timescale and its `elst` edit list. Defensive like `mp4.py`: every count is checked against
the bytes present before anything is allocated, and bad input raises `Mp4Error` naming the box.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from lerobot_assets.byteindex.boxes import MAX_SAMPLES_UNBOUNDED, Box, Mp4Error, Payload


@dataclass(frozen=True)
class SampleTable:
    """Per-sample arrays in decode (file) order; timestamps in ticks of `timescale`."""

    timescale: int
    pts: np.ndarray  # int64: decode time + ctts + edit-list shift (what ffprobe calls pts)
    dts: np.ndarray  # int64: decode time + edit-list shift (- FFmpeg's shift for negative ctts)
    duration: np.ndarray  # int64: stts delta of each sample
    offset: np.ndarray  # int64: absolute byte offset in the file
    size: np.ndarray  # int64: bytes
    keyframe: np.ndarray  # bool: sync sample (stss; all True when stss is absent)

    def __len__(self) -> int:
        return int(self.pts.shape[0])

    @property
    def pts_s(self) -> np.ndarray:
        return self.pts / float(self.timescale)

    @property
    def dts_s(self) -> np.ndarray:
        return self.dts / float(self.timescale)


@dataclass
class Track:
    """The boxes of one `trak` that the parser reads, by type (first occurrence wins)."""

    index: int
    path: str
    boxes: dict[str, Box]


def require_box(track: Track, name: str, where: str) -> Box:
    box = track.boxes.get(name)
    if box is None:
        raise Mp4Error(f"{track.path}/{where}", f"required box '{name}' not found")
    return box


def _timescale_mdhd(buf: memoryview, base: int, box: Box) -> int:
    p = Payload(buf, base, box)
    version = p.version()
    if version == 0:
        timescale = p.u32(12, "timescale")
    elif version == 1:
        timescale = p.u32(20, "timescale")
    else:
        raise Mp4Error(box.path, f"unsupported version {version}")
    if timescale == 0:
        raise Mp4Error(box.path, "timescale is 0")
    return timescale


def _entry_count(p: Payload, record: int, what: str) -> int:
    count = p.u32(4, f"{what} entry_count")
    available = max(0, len(p) - 8) // record
    if count > available:
        raise Mp4Error(p.path, f"entry count {count} exceeds box size ({available} fit in {len(p)} bytes)")
    return count


def _stts(buf: memoryview, base: int, box: Box) -> tuple[np.ndarray, np.ndarray]:
    p = Payload(buf, base, box)
    count = _entry_count(p, 8, "stts")
    table = p.array(8, count * 2, ">u4", "entry count").reshape(-1, 2).astype(np.int64)
    return table[:, 0], table[:, 1]


def _ctts(buf: memoryview, base: int, box: Box) -> tuple[np.ndarray, np.ndarray]:
    p = Payload(buf, base, box)
    version = p.version()
    if version not in (0, 1):
        raise Mp4Error(box.path, f"unsupported version {version}")
    count = _entry_count(p, 8, "ctts")
    raw = p.array(8, count * 2, ">u4", "entry count").reshape(-1, 2)
    # Offsets are signed in v1 and, in practice, in v0 too: muxers write negative v0 offsets and
    # FFmpeg reads them as int32 regardless of version. Doing the same keeps pts equal to ffprobe's.
    offsets = raw[:, 1].astype(np.uint32).view(np.int32).astype(np.int64)
    return raw[:, 0].astype(np.int64), offsets


def _stsz(buf: memoryview, base: int, box: Box, file_size: int | None) -> np.ndarray:
    p = Payload(buf, base, box)
    if box.type == "stz2":
        return _stz2(p, file_size)
    sample_size = p.u32(4, "sample_size")
    count = p.u32(8, "sample_count")
    if sample_size == 0:
        available = max(0, len(p) - 12) // 4
        if count > available:
            raise Mp4Error(box.path, f"sample count {count} exceeds box size ({available} sizes fit in {len(p)} bytes)")
        return p.array(12, count, ">u4", "sample count").astype(np.int64)
    # Fixed size: the box does not bound the count, the file does.
    limit = MAX_SAMPLES_UNBOUNDED if file_size is None else file_size // sample_size
    if count > limit:
        raise Mp4Error(
            box.path,
            f"sample count {count} of {sample_size} bytes each exceeds "
            + ("the sample limit" if file_size is None else f"the file size {file_size}"),
        )
    return np.full(count, sample_size, dtype=np.int64)


def _stz2(p: Payload, file_size: int | None) -> np.ndarray:
    field_size = p.u8(7, "field_size")
    count = p.u32(8, "sample_count")
    if field_size not in (4, 8, 16):
        raise Mp4Error(p.path, f"unsupported field size {field_size}")
    available = max(0, len(p) - 12) * 8 // field_size
    if count > available:
        raise Mp4Error(p.path, f"sample count {count} exceeds box size ({available} sizes fit)")
    if field_size == 16:
        return p.array(12, count, ">u2", "sample count").astype(np.int64)
    if field_size == 8:
        return p.array(12, count, "u1", "sample count").astype(np.int64)
    packed = p.array(12, (count + 1) // 2, "u1", "sample count")
    nibbles = np.stack([packed >> 4, packed & 0x0F], axis=1).reshape(-1)
    return nibbles[:count].astype(np.int64)


def _stsc(buf: memoryview, base: int, box: Box) -> tuple[np.ndarray, np.ndarray]:
    p = Payload(buf, base, box)
    count = _entry_count(p, 12, "stsc")
    table = p.array(8, count * 3, ">u4", "entry count").reshape(-1, 3).astype(np.int64)
    first_chunk, per_chunk = table[:, 0], table[:, 1]
    if count and first_chunk[0] != 1:
        raise Mp4Error(box.path, f"first entry starts at chunk {int(first_chunk[0])}, not 1")
    if count > 1 and np.any(np.diff(first_chunk) <= 0):
        raise Mp4Error(box.path, "first_chunk values are not strictly increasing")
    return first_chunk, per_chunk


def _chunk_offsets(buf: memoryview, base: int, box: Box) -> np.ndarray:
    p = Payload(buf, base, box)
    record = 8 if box.type == "co64" else 4
    count = _entry_count(p, record, box.type)
    dtype = ">u8" if record == 8 else ">u4"
    offsets = p.array(8, count, dtype, "entry count")
    if record == 8 and count and int(offsets.max()) > np.iinfo(np.int64).max:
        raise Mp4Error(box.path, "chunk offset does not fit in 63 bits")
    return offsets.astype(np.int64)


def _stss(buf: memoryview, base: int, box: Box, n: int) -> np.ndarray:
    p = Payload(buf, base, box)
    count = _entry_count(p, 4, "stss")
    numbers = p.array(8, count, ">u4", "entry count").astype(np.int64)
    if count and (numbers[0] < 1 or numbers[-1] > n):
        raise Mp4Error(box.path, f"sync sample numbers must lie in 1..{n}")
    if count > 1 and np.any(np.diff(numbers) <= 0):
        raise Mp4Error(box.path, "sync sample numbers are not strictly increasing")
    keyframe = np.zeros(n, dtype=bool)
    keyframe[numbers - 1] = True
    if count == 0 and n:
        # An empty stss says "no sync samples"; the first sample must still start decoding.
        keyframe[0] = True
    return keyframe


def _edit_shift(buf: memoryview, base: int, box: Box | None, movie_timescale: int, timescale: int) -> int:
    """Ticks to add to decode times, as FFmpeg applies a simple edit list.

    A leading empty edit (media_time == -1) delays the track; the first real edit's media_time is
    where presentation starts (x264 with B-frames writes media_time = 2 frames so pts starts at 0).
    Further edits (rare outside editing software) are not applied, like FFmpeg's default for
    non-"advanced" edit lists; the sample table stays complete.
    """
    if box is None:
        return 0
    p = Payload(buf, base, box)
    version = p.version()
    if version not in (0, 1):
        raise Mp4Error(box.path, f"unsupported version {version}")
    record = 12 if version == 0 else 20
    count = _entry_count(p, record, "elst")
    empty = 0
    for i in range(count):
        at = 8 + i * record
        if version == 0:
            duration = p.u32(at, "segment_duration")
            media_time = struct.unpack_from(">i", p.data, at + 4)[0]
        else:
            duration = p.u64(at, "segment_duration")
            media_time = struct.unpack_from(">q", p.data, at + 8)[0]
        if media_time == -1:
            if i == 0:
                empty = duration
            continue
        if media_time < -1:
            raise Mp4Error(box.path, f"negative media_time {media_time}")
        delay = (empty * timescale) // movie_timescale if (empty and movie_timescale > 0) else 0
        return delay - media_time
    return 0


def _sample_offsets(
    path: str, chunk_offsets: np.ndarray, first_chunk: np.ndarray, per_chunk: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """Vectorised stsc expansion: absolute offset of every sample."""
    n = sizes.shape[0]
    n_chunks = chunk_offsets.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if first_chunk.shape[0] == 0:
        raise Mp4Error(path + "/stsc", f"no entries for {n} samples")
    if int(first_chunk[-1]) > n_chunks:
        raise Mp4Error(path + "/stsc", f"entry refers to chunk {int(first_chunk[-1])} but stco has {n_chunks} chunks")
    runs = np.diff(np.append(first_chunk, n_chunks + 1))  # chunks per stsc entry
    # Check the total before expanding: a forged samples_per_chunk could describe billions of samples.
    total_f = float(np.dot(runs.astype(np.float64), per_chunk.astype(np.float64)))
    if total_f > n + 0.5 or int(np.dot(runs, per_chunk)) < n:
        raise Mp4Error(path + "/stsc", f"describes {int(total_f)} samples but stsz has {n}")
    spc = np.repeat(per_chunk, runs)  # samples in each chunk (n_chunks entries)
    chunk_of = np.repeat(np.arange(n_chunks, dtype=np.int64), spc)[:n]
    first_in_chunk = np.concatenate(([0], np.cumsum(spc)[:-1]))
    csum = np.concatenate(([0], np.cumsum(sizes)[:-1]))  # bytes before each sample
    return chunk_offsets[chunk_of] + (csum - csum[first_in_chunk[chunk_of]])


def sample_table(
    buf: memoryview, base: int, track: Track, movie_timescale: int, file_size: int | None
) -> tuple[SampleTable, int]:
    stbl_path = f"{track.path}/mdia/minf/stbl"
    timescale = _timescale_mdhd(buf, base, require_box(track, "mdhd", "mdia"))
    require_box(track, "stbl", "mdia/minf")
    stsz_box = track.boxes.get("stsz") or track.boxes.get("stz2")
    if stsz_box is None:
        raise Mp4Error(stbl_path, "required box 'stsz' not found")
    sizes = _stsz(buf, base, stsz_box, file_size)
    n = sizes.shape[0]

    counts, deltas = _stts(buf, base, require_box(track, "stts", "mdia/minf/stbl"))
    if int(counts.sum()) != n:
        raise Mp4Error(f"{stbl_path}/stts", f"describes {int(counts.sum())} samples but stsz has {n}")
    duration = np.repeat(deltas, counts)
    decode_time = np.concatenate(([0], np.cumsum(duration)[:-1])) if n else np.zeros(0, dtype=np.int64)

    composition = np.zeros(n, dtype=np.int64)
    dts_shift = 0
    if "ctts" in track.boxes:
        c_counts, c_offsets = _ctts(buf, base, track.boxes["ctts"])
        if int(c_counts.sum()) != n:
            raise Mp4Error(f"{stbl_path}/ctts", f"describes {int(c_counts.sum())} samples but stsz has {n}")
        composition = np.repeat(c_offsets, c_counts)
        # Negative composition offsets: FFmpeg moves dts earlier by the largest one so that
        # pts >= dts, and (a quirk we copy to report the same dts) ignores the last two entries.
        considered = c_offsets[: max(0, len(c_offsets) - 2)]
        if considered.size and considered.min() < 0:
            dts_shift = int(-considered.min())

    co_box = track.boxes.get("stco") or track.boxes.get("co64")
    if co_box is None:
        raise Mp4Error(stbl_path, "required box 'stco' (or 'co64') not found")
    chunk_offsets = _chunk_offsets(buf, base, co_box)
    first_chunk, per_chunk = _stsc(buf, base, require_box(track, "stsc", "mdia/minf/stbl"))
    offsets = _sample_offsets(stbl_path, chunk_offsets, first_chunk, per_chunk, sizes)
    if n and file_size is not None:
        ends = offsets + sizes
        bad = int(np.argmax(ends > file_size)) if bool(np.any(ends > file_size)) else -1
        if bad >= 0:
            raise Mp4Error(
                stbl_path,
                f"sample {bad} ends at byte {int(ends[bad])}, beyond the end of the file ({file_size})",
            )

    stss = track.boxes.get("stss")
    keyframe = _stss(buf, base, stss, n) if stss is not None else np.ones(n, dtype=bool)

    shift = _edit_shift(buf, base, track.boxes.get("elst"), movie_timescale, timescale)
    dts = decode_time + shift
    table = SampleTable(
        timescale=timescale,
        pts=dts + composition,
        dts=dts - dts_shift,
        duration=duration,
        offset=offsets,
        size=sizes,
        keyframe=keyframe,
    )
    return table, shift
