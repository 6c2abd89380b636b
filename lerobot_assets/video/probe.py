"""Facts about an MP4's video stream, read from the container (demux only, never decode)."""

import os
from array import array
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from lerobot_assets.video.config import VideoEncoderConfig

PathLike = str | os.PathLike[str]


def first_video_stream(container: av.container.InputContainer, path: PathLike) -> av.video.stream.VideoStream:
    """The container's first video stream; ValueError naming `path` when it has none."""
    if not container.streams.video:
        raise ValueError(f"No video stream in {path}")
    return container.streams.video[0]


def stream_time_base(stream: av.video.stream.VideoStream, path: PathLike) -> Fraction:
    """The stream's time base as an exact Fraction; ValueError naming `path` when it has none."""
    if stream.time_base is None:
        raise ValueError(f"No time base on the video stream of {path}")
    return Fraction(stream.time_base)


def pixel_channels(pix_fmt: str) -> int:
    """Number of colour channels a pixel format carries (LeRobot's substring rule)."""
    name = pix_fmt.lower()
    if any(k in name for k in ("gray", "depth", "monochrome")):
        return 1
    if any(k in name for k in ("rgba", "yuva", "bgra", "argb", "abgr")):
        return 4
    if any(k in name for k in ("rgb", "bgr", "yuv", "gbr", "nv12", "nv21", "nv16", "nv20")):
        return 3
    raise ValueError(f"Unknown pixel format {pix_fmt!r}: cannot tell its channel count")


def stream_summary(path: PathLike) -> dict[str, Any]:
    """codec, width, height, pix_fmt, fps (Fraction), time_base (Fraction) of the video stream."""
    with av.open(str(path)) as container:
        stream = first_video_stream(container, path)
        return summarize_stream(stream)


def summarize_stream(stream: av.video.stream.VideoStream, with_extradata: bool = False) -> dict[str, Any]:
    """`stream_summary`'s fields of an open stream (and its codec extradata, for stream-copy checks)."""
    ctx = stream.codec_context
    rate = stream.base_rate or stream.average_rate or stream.guessed_rate
    summary: dict[str, Any] = {
        "codec": ctx.codec.canonical_name if ctx.codec is not None else ctx.name,
        "width": ctx.width,
        "height": ctx.height,
        "pix_fmt": ctx.pix_fmt,
        "fps": Fraction(rate) if rate is not None else None,
        "time_base": Fraction(stream.time_base) if stream.time_base is not None else None,
    }
    if with_extradata:
        summary["extradata"] = bytes(ctx.extradata) if ctx.extradata else b""
    return summary


@dataclass(frozen=True)
class PacketScan:
    """The real packets of a video stream, from one demux pass (no decoding)."""

    pts: np.ndarray  # int64 ticks of `time_base`, in demux (decode) order
    first: int  # smallest pts (0 without packets)
    end: int  # largest pts + duration (0 without packets)
    time_base: Fraction | None

    @property
    def count(self) -> int:
        """Frames: one packet each in MP4."""
        return int(self.pts.shape[0])


def scan_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> PacketScan:
    """Every real packet of `stream`.

    Demux yields a trailing empty packet per stream when flushing; it carries no frame.
    """
    ticks = array("q")  # 8 bytes a packet, not a Python int each
    first: int | None = None
    end: int | None = None
    for packet in container.demux(stream):
        if packet.size == 0 or packet.pts is None:
            continue
        pts = packet.pts
        ticks.append(pts)
        stop = pts + (packet.duration or 0)
        first = pts if first is None else min(first, pts)
        end = stop if end is None else max(end, stop)
    time_base = Fraction(stream.time_base) if stream.time_base is not None else None
    return PacketScan(np.asarray(ticks, dtype=np.int64), first or 0, end or 0, time_base)


def packet_span(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> tuple[int, int, int]:
    """(frames, first pts, end pts) in stream time_base, over the real packets of `stream`."""
    scan = scan_packets(container, stream)
    return scan.count, scan.first, scan.end


class UnreadableVideoError(ValueError):
    """A file that cannot be opened or demuxed as a video, or has no video stream. The message is
    the reason only (FFmpeg's, without the path), for callers that name the file themselves."""


@dataclass(frozen=True)
class VideoScan:
    """One demux pass over a video file: its stream summary, its packets and its duration."""

    summary: dict[str, Any]  # stream_summary's fields
    packets: PacketScan
    duration_s: float  # the stream's declared duration, else the container's, else the packets' end


def scan_video(path: PathLike) -> VideoScan:
    """Demux (never decode) every packet of the first video stream; one pass over the file.

    Raises UnreadableVideoError when the file cannot be read as a video (a missing file included).
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UnreadableVideoError("no video stream")
            stream = container.streams.video[0]
            summary = summarize_stream(stream)
            packets = scan_packets(container, stream)
            if stream.duration is not None:
                duration = float(stream.duration * _known_time_base(packets))
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            else:
                duration = float(packets.end * _known_time_base(packets))
    except UnreadableVideoError:
        raise
    except av.error.FFmpegError as e:
        # str(e) repeats the path, which the caller names itself.
        raise UnreadableVideoError(e.strerror or str(e)) from e
    except (OSError, ValueError) as e:
        raise UnreadableVideoError(str(e)) from e
    return VideoScan(summary, packets, duration)


def _known_time_base(scan: PacketScan) -> Fraction:
    if scan.time_base is None:
        raise UnreadableVideoError("the video stream has no time base")
    return scan.time_base


def video_frame_count(path: PathLike) -> int:
    """Exact number of frames: the packets of the video stream (one frame each in MP4)."""
    with av.open(str(path)) as container:
        stream = first_video_stream(container, path)
        return packet_span(container, stream)[0]


def video_duration_ticks(path: PathLike) -> tuple[int, Fraction]:
    """Duration as an exact (ticks, time_base) pair: last packet's end minus first packet's pts.

    Concatenation offsets each segment by exactly this many ticks, so the sum of segment
    durations equals the joined file's duration with no float drift.
    """
    with av.open(str(path)) as container:
        stream = first_video_stream(container, path)
        _, first, end = packet_span(container, stream)
        return end - first, stream_time_base(stream, path)


def video_duration_s(path: PathLike) -> float:
    """Duration in seconds of the video stream (frames x frame duration for constant-rate files)."""
    ticks, time_base = video_duration_ticks(path)
    return float(ticks * time_base)


def video_stream_info(path: PathLike) -> dict[str, Any]:
    """Stream-derived part of the info.json video block, in LeRobot's key order."""
    with av.open(str(path)) as container:
        stream = first_video_stream(container, path)
        summary = summarize_stream(stream)
        has_audio = bool(container.streams.audio)
    pix_fmt = summary["pix_fmt"]
    return {
        "video.height": summary["height"],
        "video.width": summary["width"],
        "video.codec": summary["codec"],
        "video.pix_fmt": pix_fmt,
        "video.fps": int(summary["fps"]) if summary["fps"] is not None else None,
        "video.channels": pixel_channels(pix_fmt),
        "has_audio": has_audio,
    }


def video_info_block(path: PathLike, config: VideoEncoderConfig | None = None) -> dict[str, Any]:
    """The whole `features[key]["info"]` block LeRobot writes for a video feature.

    Stream facts come from the file, encoder facts from `config` (default: LeRobot's defaults);
    `is_depth_map` is false because only RGB cameras are encoded here.
    """
    config = config or VideoEncoderConfig()
    block = video_stream_info(Path(path))
    block.update(config.info_fields())
    block["is_depth_map"] = False
    return block
