"""Frames in memory -> MP4, through PyAV, with no PNG round trip.

Every frame gets pts = its index in a 1/fps time base, so an N-frame file has exactly N frames
and lasts exactly N/fps seconds, whatever the encoder's own timestamp guesses would be.
"""

import logging
import os
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from lerobot_assets.stats.image import to_hwc_uint8
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.files import atomic_output

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

_FORMAT_BY_CHANNELS = {1: "gray", 3: "rgb24", 4: "rgba"}


def as_hwc_uint8(frame: np.ndarray) -> np.ndarray:
    """HWC or CHW, uint8 or float in [0, 1] -> C-contiguous HWC uint8 (what PyAV can wrap)."""
    return np.ascontiguousarray(to_hwc_uint8(frame))


def _to_video_frame(arr: np.ndarray, fmt: str) -> av.VideoFrame:
    """Wrap a C-contiguous HWC uint8 array as a PyAV frame with a single memcpy.

    `from_ndarray` costs ~4x more per frame; when the plane has no row padding, one
    `update` copy of the whole buffer is equivalent.
    """
    height, width = arr.shape[:2]
    frame = av.VideoFrame(width, height, fmt)
    plane = frame.planes[0]
    if plane.line_size == arr.shape[1] * arr.shape[2] and plane.buffer_size == arr.nbytes:
        plane.update(arr)  # type: ignore[arg-type]  # PyAV's stub says bytes; update() takes any buffer
        return frame
    return av.VideoFrame.from_ndarray(arr, format=fmt)


def _fps_fraction(fps: int | float | Fraction) -> Fraction:
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


class Mp4FrameWriter:
    """One video stream written frame by frame; the container opens on the first frame.

    Opening lazily lets the first frame decide width and height, as a camera stream would.
    Not thread-safe: one writer belongs to one thread.
    """

    def __init__(
        self,
        path: PathLike,
        fps: int | Fraction,
        config: VideoEncoderConfig | None = None,
        threads: int | None = None,
        faststart: bool = False,
        on_packets: Callable[[list[av.Packet], Any], None] | None = None,
    ) -> None:
        """`on_packets(packets, codec_context)` sees every batch of encoded packets before it is
        muxed (a re-encode decodes them again for the new pixels' stats, without re-reading the file)."""
        self.path = Path(path)
        self.on_packets = on_packets
        self.rate = _fps_fraction(fps)
        self.config = config or VideoEncoderConfig()
        self.options = self.config.codec_options(threads)
        self.faststart = faststart
        self.frames = 0
        self.shape: tuple[int, ...] | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._time_base = 1 / self.rate

    def _open(self, height: int, width: int) -> None:
        options = {"movflags": "faststart"} if self.faststart else {}
        self._container = av.open(str(self.path), "w", format="mp4", options=options)
        stream = self._container.add_stream(self.config.vcodec, rate=self.rate, options=self.options)
        if not isinstance(stream, av.video.stream.VideoStream):
            raise ValueError(f"{self.config.vcodec} is not a video encoder")
        stream.width = width
        stream.height = height
        stream.pix_fmt = self.config.pix_fmt
        stream.time_base = self._time_base
        stream.codec_context.time_base = self._time_base
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame (any layout `as_hwc_uint8` accepts)."""
        ready = frame.dtype == np.uint8 and frame.ndim == 3 and frame.flags.c_contiguous
        arr = frame if ready and frame.shape[-1] in _FORMAT_BY_CHANNELS else as_hwc_uint8(frame)
        if self.shape is None:
            self._open(arr.shape[0], arr.shape[1])
            self.shape = arr.shape
        elif arr.shape != self.shape:
            raise ValueError(f"frame shape {arr.shape} differs from the first frame's {self.shape} in {self.path}")
        fmt = _FORMAT_BY_CHANNELS.get(arr.shape[2])
        if fmt is None:
            raise ValueError(f"frames must have 1, 3 or 4 channels, got shape {arr.shape}")
        self.write_av_frame(_to_video_frame(arr, fmt))

    def write_av_frame(self, video_frame: av.VideoFrame) -> None:
        """Encode an already-built PyAV frame (re-encoding path); its pts is overwritten."""
        if self._container is None:
            self._open(video_frame.height, video_frame.width)
            self.shape = (video_frame.height, video_frame.width)
        video_frame.pts = self.frames
        video_frame.time_base = self._time_base
        assert self._stream is not None
        self._mux(self._stream.encode(video_frame))
        self.frames += 1

    def _mux(self, packets: list[av.Packet]) -> None:
        assert self._stream is not None and self._container is not None
        if self.on_packets is not None and packets:
            self.on_packets(packets, self._stream.codec_context)
        self._container.mux(packets)

    def close(self) -> int:
        """Flush the encoder and finalize the file; returns the number of frames written."""
        if self._container is not None:
            try:
                assert self._stream is not None
                self._mux(self._stream.encode(None))
            finally:
                self._container.close()
                self._container = None
        return self.frames

    def abort(self) -> None:
        """Close without flushing (the file is about to be deleted)."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # the file is discarded anyway
                logger.debug("error closing aborted video %s", self.path, exc_info=True)
            self._container = None


def encode_frames(
    frames: Iterable[np.ndarray] | np.ndarray,
    path: PathLike,
    fps: int,
    config: VideoEncoderConfig | None = None,
    threads: int | None = None,
) -> int:
    """Encode frames (HWC/CHW, uint8/float in [0,1]) into an MP4 at `path`, atomically.

    A 4-D array is read as a stack of frames. Returns the number of frames written; raises
    ValueError if there are none (an MP4 with no frames is not a valid episode video).
    """
    target = Path(path)

    def feed(writer: Mp4FrameWriter) -> None:
        for frame in frames:
            writer.write(np.asarray(frame))

    return _encode_atomic(target, fps, config, threads, feed, f"No frames to encode into {target}")


def _encode_atomic(
    target: Path,
    fps: int | Fraction,
    config: VideoEncoderConfig | None,
    threads: int | None,
    feed: Callable[["Mp4FrameWriter"], None],
    empty_message: str,
) -> int:
    """Run `feed(writer)` into a faststart MP4 at `target`, atomically; returns frames written."""
    with atomic_output(target) as tmp:
        writer = Mp4FrameWriter(tmp, fps, config, threads, faststart=True)
        try:
            feed(writer)
        except BaseException:
            writer.abort()
            raise
        count = writer.close()
        if count == 0:
            raise ValueError(empty_message)
    return count


def reencode_video(
    src: PathLike,
    dst: PathLike,
    config: VideoEncoderConfig | None = None,
    threads: int | None = None,
) -> int:
    """Decode `src` and encode it again with `config` into `dst` (faststart, atomic).

    The frame rate is the source's; frames keep their order and get pts = index, so the result
    has the same frame count and duration. `dst` may equal `src`. Returns frames written.
    """
    config = config or VideoEncoderConfig()
    src_path, dst_path = Path(src), Path(dst)
    with av.open(str(src_path)) as container:
        if not container.streams.video:
            raise ValueError(f"No video stream in {src_path}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.base_rate or stream.average_rate or stream.guessed_rate
        if rate is None:
            raise ValueError(f"Cannot tell the frame rate of {src_path}")

        def feed(writer: Mp4FrameWriter) -> None:
            for frame in container.decode(stream):
                # Drop the source's timing; the writer numbers frames itself. Drop its picture type
                # too: libx264 keeps a decoded frame's I type, so the source's keyframes would
                # override the configured GOP (g).
                frame.pts = None
                frame.pict_type = av.video.frame.PictureType.NONE
                writer.write_av_frame(frame)

        return _encode_atomic(dst_path, Fraction(rate), config, threads, feed, f"No frames decoded from {src_path}")
