"""Facts about an MP4's video stream, read from the container (demux only, never decode)."""

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from lerobot_assets.video.config import VideoEncoderConfig

PathLike = str | os.PathLike[str]


def first_video_stream(container: av.container.InputContainer, path: PathLike) -> av.video.stream.VideoStream:
    """The container's first video stream; ValueError naming `path` when it has none."""
    if not container.streams.video:
        raise ValueError(f"No video stream in {path}")
    return container.streams.video[0]


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


def packet_span(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> tuple[int, int, int]:
    """(frames, first pts, end pts) in stream time_base, over the real packets of `stream`.

    Demux yields a trailing empty packet per stream when flushing; it carries no frame.
    """
    count = 0
    first: int | None = None
    end: int | None = None
    for packet in container.demux(stream):
        if packet.size == 0 or packet.pts is None:
            continue
        count += 1
        pts = packet.pts
        stop = pts + (packet.duration or 0)
        first = pts if first is None else min(first, pts)
        end = stop if end is None else max(end, stop)
    return count, first or 0, end or 0


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
        return end - first, Fraction(stream.time_base)


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
