"""Copy time ranges of MP4 video streams into one new file, packet by packet (never re-encoded).

An edit that keeps some episodes of a video file (delete, split) copies each kept episode's
segment `[from_timestamp, to_timestamp)` as compressed packets into the output file, shifted so the
output timeline is contiguous. No frame is decoded or re-encoded, so every kept frame decodes to
the same pixels it had.

Where a segment does not start on a keyframe
--------------------------------------------
LeRobot and our writer encode every episode separately and concatenate the files, so each episode
starts on a keyframe and the cut is exact at both ends. Another writer may put an episode boundary
inside a GOP (a file encoded in one go with `g>1`). Then the segment's first frame cannot be
decoded without the frames it references, so the copy starts at the last keyframe at or before the
segment's first packet in decode order, and runs to the last packet (in decode order) of the
segment's frames, so B-frames keep the references they are decoded from. The extra leading (and,
with B-frames, trailing) frames stay in the output file, unreferenced: the episode's new
`from_timestamp` is its first real frame's pts, and its `to_timestamp` the end of its last frame, so
a reader seeking to `from_timestamp + k/fps` decodes from the keyframe and gets exactly the frame it
got before. The next segment starts after everything copied, so no two segments overlap.

Timestamps are kept in stream ticks: the new from/to are exact multiples of the time base, not
sums of rounded floats.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from lerobot_assets.video.files import atomic_output
from lerobot_assets.video.probe import first_video_stream, stream_time_base, summarize_stream

PathLike = str | os.PathLike[str]

# Stream fields that must agree for packets of two files to share one output stream; H.264/HEVC
# keep their parameter sets in the extradata (see concat.py), so theirs must agree too.
_KEY_FIELDS = ("codec", "width", "height", "pix_fmt", "fps", "time_base")
_EXTRADATA_CODECS = ("h264", "hevc")


def stream_key(path: PathLike) -> tuple[Any, ...]:
    """What must be equal for packets of two files to be copied into one stream (header only)."""
    with av.open(str(path)) as container:
        return _key(summarize_stream(first_video_stream(container, path), with_extradata=True))


def _key(summary: dict[str, Any]) -> tuple[Any, ...]:
    extradata = summary["extradata"] if summary["codec"] in _EXTRADATA_CODECS else b""
    return (*(summary[f] for f in _KEY_FIELDS), extradata)


@dataclass(frozen=True)
class PacketIndex:
    """The real packets of a file's first video stream, in decode order (one demux, no decode)."""

    path: Path
    pts: np.ndarray  # int64 ticks
    dts: np.ndarray  # int64 ticks (pts where the container gives none)
    duration: np.ndarray  # int64 ticks (one frame where the container gives none)
    size: np.ndarray  # bytes
    keyframe: np.ndarray  # bool
    time_base: Fraction
    key: tuple[Any, ...]  # stream_key
    by_time: np.ndarray  # decode indices in presentation (pts) order
    keyframes: np.ndarray  # decode indices of the keyframes, ascending


def index_packets(path: PathLike) -> PacketIndex:
    path = Path(path)
    pts, dts, dur, size, key = [], [], [], [], []
    with av.open(str(path)) as container:
        stream = first_video_stream(container, path)
        summary = summarize_stream(stream, with_extradata=True)
        tb = stream_time_base(stream, path)
        fps = summary["fps"]
        frame_ticks = round(1 / (fps * tb)) if fps else 0
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue  # the flush packet carries no frame
            pts.append(packet.pts)
            dts.append(packet.dts if packet.dts is not None else packet.pts)
            dur.append(packet.duration or frame_ticks)
            size.append(packet.size)
            key.append(packet.is_keyframe)
    pts_array = np.asarray(pts, dtype=np.int64)
    keyframe = np.asarray(key, dtype=bool)
    return PacketIndex(
        path,
        pts_array,
        np.asarray(dts, dtype=np.int64),
        np.asarray(dur, dtype=np.int64),
        np.asarray(size, dtype=np.int64),
        keyframe,
        tb,
        _key(summary),
        np.argsort(pts_array, kind="stable"),
        np.flatnonzero(keyframe),
    )


@dataclass(frozen=True)
class Span:
    """The packets to copy for one segment: decode-order packets first..last (inclusive)."""

    source: Path
    first: int
    last: int
    start: int  # smallest pts copied (ticks)
    end: int  # largest pts + duration copied
    first_dts: int  # dts of the first packet copied
    frame_start: int  # pts of the segment's first frame
    frame_end: int  # end (pts + duration) of its last frame
    frames: int
    bytes: int
    time_base: Fraction
    key: tuple[Any, ...]


def find_span(index: PacketIndex, from_s: float, to_s: float, fps: float) -> Span:
    """The packets that reproduce the frames of `[from_s, to_s)` (see the module docstring).

    A frame belongs to the segment when its time lies within half a frame of the range, so float
    from/to (LeRobot's cumulative `length/fps`) select the frames they mean. ValueError naming the
    file when the range holds no frame or no keyframe precedes it.
    """
    seconds = index.pts[index.by_time].astype(np.float64) * float(index.time_base)
    half = 0.5 / fps
    lo, hi = np.searchsorted(seconds, [from_s - half, to_s - half], side="left")
    wanted = np.sort(index.by_time[lo:hi])  # decode indices of the segment's frames
    if wanted.size == 0:
        raise ValueError(f"{index.path}: no video frames in [{from_s:.6f}, {to_s:.6f}) s")
    k = int(np.searchsorted(index.keyframes, wanted[0], side="right"))
    if k == 0:
        raise ValueError(f"{index.path}: no keyframe at or before {from_s:.6f} s; the segment cannot be copied")
    first, last = int(index.keyframes[k - 1]), int(wanted[-1])
    copied = slice(first, last + 1)
    ends = index.pts[copied] + index.duration[copied]
    return Span(
        source=index.path,
        first=first,
        last=last,
        start=int(index.pts[copied].min()),
        end=int(ends.max()),
        first_dts=int(index.dts[first]),
        frame_start=int(index.pts[wanted].min()),
        frame_end=int((index.pts[wanted] + index.duration[wanted]).max()),
        frames=int(wanted.size),
        bytes=int(index.size[copied].sum()),
        time_base=index.time_base,
        key=index.key,
    )


def write_spans(spans: Sequence[Span], output: PathLike) -> list[tuple[float, float]]:
    """Copy `spans` (in order) into `output` (faststart MP4, written atomically); return each
    span's frames' new (from, to) in seconds of the output file.

    All spans must share a stream key (codec, size, pix_fmt, fps, time base, H.264/HEVC parameter
    sets): ValueError naming the two files otherwise. Each span is shifted to start where the
    previous one ended (later if the decode timestamps require it), so the frames of different
    spans never overlap.
    """
    if not spans:
        raise ValueError("no video segments to write")
    for span in spans[1:]:
        if span.key != spans[0].key:
            raise ValueError(
                f"cannot copy packets of {span.source} and {spans[0].source} into one file: their streams "
                "differ (codec, size, pixel format, frame rate, time base or parameter sets)"
            )
    tb = spans[0].time_base
    placed: list[tuple[float, float]] = []
    with atomic_output(Path(output)) as tmp:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "faststart"}) as out:
            out_stream = None
            offset = 0  # where the next span starts in the output (ticks)
            last_dts: int | None = None
            reader = _PacketReader()
            try:
                for span in spans:
                    shift = offset - span.start
                    if last_dts is not None and span.first_dts + shift <= last_dts:
                        # B-frame streams decode ahead of presentation: leave room so dts rise.
                        shift = last_dts + 1 - span.first_dts
                    stream = reader.stream(span.source)
                    if out_stream is None:
                        out_stream = out.add_stream_from_template(stream, opaque=True)
                        # Not carried by the template; without it the muxer picks its own time base.
                        out_stream.time_base = stream.time_base
                    for packet in reader.packets(span.first, span.last):
                        dts = packet.dts if packet.dts is not None else packet.pts
                        packet.pts += shift
                        packet.dts = dts + shift
                        if last_dts is not None and packet.dts <= last_dts:
                            packet.dts = last_dts + 1
                        last_dts = packet.dts
                        packet.stream = out_stream
                        out.mux(packet)
                    placed.append((float((span.frame_start + shift) * tb), float((span.frame_end + shift) * tb)))
                    offset = span.end + shift
            finally:
                reader.close()
    return placed


class _PacketReader:
    """Demuxes one source file at a time, continuing where the last span stopped when the next
    span lies further on in the same file (ascending spans read each file once)."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.container: Any = None
        self._stream: Any = None
        self._iter: Any = None
        self.position = 0  # decode index of the next real packet

    def stream(self, path: Path) -> Any:
        if self.path != path:
            self.close()
            self.container = av.open(str(path))
            self._stream = first_video_stream(self.container, path)
            self._iter = self.container.demux(self._stream)
            self.path, self.position = path, 0
        return self._stream

    def packets(self, first: int, last: int) -> Any:
        if first < self.position:  # an earlier part of the file: start it again
            path = self.path
            assert path is not None
            self.close()
            self.stream(path)
        for packet in self._iter:
            if packet.size == 0 or packet.pts is None:
                continue
            i = self.position
            self.position += 1
            if i < first:
                continue
            yield packet
            if i >= last:
                return
        raise ValueError(f"{self.path}: ended before packet {last}")

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
        self.path = self.container = self._stream = self._iter = None
        self.position = 0
