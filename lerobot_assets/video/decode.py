"""Frames at given timestamps -> (N, C, H, W) tensors; torchcodec first, PyAV as the fallback.

Fast path (torchcodec, approximate seek mode, decoder kept open in a `VideoDecoderCache`): a
timestamp maps to frame index round((t - start) * fps), as LeRobot does, and the frames'
reported pts are checked against the queries. Approximate mode trusts the header's frame rate,
so on a file whose frames are not evenly spaced (joined segments with uneven timing, variable
frame rate) that mapping can land on the wrong frame; the check catches it and the query is
redone in exact mode (one packet scan of the file, cached), which maps by true pts. Only a
timestamp that no frame matches within `tolerance_s` raises `FrameTimestampError`.
"""

import logging
import os
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import torch

from lerobot_assets.video.cache import DecoderEntry, VideoDecoderCache, default_decoder_cache

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

BACKENDS = ("torchcodec", "pyav")
_torchcodec_ok: bool | None = None


class FrameTimestampError(ValueError):
    """No decodable frame lies within the tolerance of a queried timestamp."""


def torchcodec_available() -> bool:
    """Whether torchcodec imports and loads its FFmpeg libraries here (checked once)."""
    global _torchcodec_ok
    if _torchcodec_ok is None:
        try:
            from torchcodec.decoders import VideoDecoder  # noqa: F401

            _torchcodec_ok = True
        except Exception as exc:  # ImportError, or RuntimeError when FFmpeg libs are missing
            logger.info("torchcodec unavailable (%s); decoding with PyAV", exc)
            _torchcodec_ok = False
    return _torchcodec_ok


def resolve_backend(backend: str | None) -> str:
    if backend is None:
        return "torchcodec" if torchcodec_available() else "pyav"
    if backend == "video_reader":
        logger.warning("backend='video_reader' is deprecated and now aliases to 'pyav'.")
        return "pyav"
    if backend not in BACKENDS:
        raise ValueError(f"Unsupported video backend: {backend}; allowed: {', '.join(BACKENDS)}")
    if backend == "torchcodec" and not torchcodec_available():
        logger.warning("torchcodec requested but unavailable; decoding with PyAV")
        return "pyav"
    return backend


def _tolerance_error(
    path: str, timestamps: Sequence[float], loaded: Sequence[float], tolerance_s: float, backend: str
) -> FrameTimestampError:
    bad = [(q, near) for q, near in zip(timestamps, loaded) if not abs(near - q) < tolerance_s]
    return FrameTimestampError(
        f"{len(bad)} of {len(timestamps)} query timestamps violate the tolerance "
        f"(|nearest loaded - query| >= tolerance_s={tolerance_s}): the closest frame that can be "
        "loaded is too far away in time (synchronisation problem during recording, or a query "
        "outside the video). "
        f"queried timestamps: {[float(q) for q, _ in bad]}; "
        f"nearest loaded timestamps: {[round(float(near), 6) for _, near in bad]}; "
        f"all queried: {[float(t) for t in timestamps]}; video: {path}; backend: {backend}"
    )


def _within(loaded: Sequence[float], timestamps: Sequence[float], tolerance_s: float) -> bool:
    return all(abs(near - q) < tolerance_s for near, q in zip(loaded, timestamps))


def _decode_torchcodec(entry: DecoderEntry, timestamps: list[float], tolerance_s: float) -> torch.Tensor:
    with entry.lock:
        decoder = entry.approximate_decoder()
        fps, begin, last = entry.fps, entry.begin_s, entry.num_frames - 1
        if fps > 0 and last >= 0:  # a header without frame count or rate goes straight to exact
            indices = [min(max(round((t - begin) * fps), 0), last) for t in timestamps]
            batch = decoder.get_frames_at(indices=indices)
        else:
            batch = None
    if batch is not None and _within(batch.pts_seconds.tolist(), timestamps, tolerance_s):
        return batch.data
    with entry.lock:
        exact = entry.exact_decoder()
        # The frame displayed at t + tolerance is the one within tolerance of t, if any (frames
        # last longer than 2 x tolerance); clamp so queries past the end still get a frame.
        end = float(exact.metadata.end_stream_seconds)
        start = float(exact.metadata.begin_stream_seconds)
        span = np.nextafter(end, -np.inf)
        seconds = [min(max(t + tolerance_s, start), span) for t in timestamps]
        batch = exact.get_frames_played_at(seconds=seconds)
    loaded = batch.pts_seconds.tolist()
    if not _within(loaded, timestamps, tolerance_s):
        raise _tolerance_error(entry.path, timestamps, loaded, tolerance_s, "torchcodec")
    return batch.data


def _nearest(loaded: np.ndarray, queries: np.ndarray) -> list[int]:
    """Index into `loaded` of the value nearest each query (ties go to the earlier frame)."""
    order = np.argsort(loaded, kind="stable")
    ordered = loaded[order]
    right = np.clip(np.searchsorted(ordered, queries), 0, len(ordered) - 1)
    left = np.clip(right - 1, 0, len(ordered) - 1)
    pick = np.where(np.abs(ordered[left] - queries) <= np.abs(ordered[right] - queries), left, right)
    return [int(i) for i in order[pick]]


def _decode_pyav(entry: DecoderEntry, timestamps: list[float], tolerance_s: float) -> torch.Tensor:
    first_ts, last_ts = min(timestamps), max(timestamps)
    with entry.lock:
        container = entry.pyav_container()
        stream = container.streams.video[0]
        time_base = Fraction(stream.time_base)
        target = max(int((first_ts - tolerance_s) / time_base), 0)
        container.seek(target, stream=stream, backward=True, any_frame=False)
        frames, pts_s = [], []
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * time_base)
            frames.append(frame)
            pts_s.append(t)
            if t >= last_ts + tolerance_s:
                break
        if not frames:
            raise FrameTimestampError(
                f"No frames could be decoded from {entry.path} in the timestamp range [{first_ts}, {last_ts}]."
            )
        chosen = _nearest(np.asarray(pts_s), np.asarray(timestamps, dtype=np.float64))
        loaded = [pts_s[i] for i in chosen]
        if not _within(loaded, timestamps, tolerance_s):
            raise _tolerance_error(entry.path, timestamps, loaded, tolerance_s, "pyav")
        # Only the frames actually picked are converted to RGB.
        rgb = {i: frames[i].to_ndarray(format="rgb24") for i in set(chosen)}
    stacked = np.stack([rgb[i] for i in chosen])
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()


_F255 = np.float32(255.0)


def unit_float(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames -> float32 in [0, 1], bit-identical to LeRobot's `frames / 255.0`.

    Done in numpy on purpose: a multi-threaded torch op leaves OpenMP threads spinning after it,
    and they steal the CPU from the decoder's threads at the next decode (measured on 2 cores,
    480x640 AV1, random access: decode + torch conversion 20 ms a frame vs 5.8 ms for the decode
    alone; numpy's single-threaded pass adds ~0.6 ms). numpy keeps the input's memory order, so
    the result has the same (channels-last) strides as torch's would. True division by 255 (not
    multiplication by 1/255) is what makes it bit-identical.
    """
    out = np.divide(frames.numpy(), _F255, dtype=np.float32)
    return torch.from_numpy(out)


def decode_frames(
    path: PathLike,
    timestamps: Sequence[float],
    tolerance_s: float = 1e-4,
    backend: str | None = None,
    return_uint8: bool = False,
    cache: VideoDecoderCache | None = None,
) -> torch.Tensor:
    """Frames of `path` at `timestamps` (seconds): (N, C, H, W) float32 in [0,1], or uint8.

    Each query gets the frame whose pts is nearest, which must be strictly within `tolerance_s`
    (else FrameTimestampError naming the queries, the nearest loaded timestamps, the tolerance,
    the file and the backend). `backend` None picks torchcodec when it loads, else PyAV; decoders
    stay open in `cache` (default: the process-wide cache).
    """
    ts = [float(t) for t in timestamps]
    if not ts:
        raise ValueError("timestamps must not be empty")
    chosen = resolve_backend(backend)
    entry = (cache if cache is not None else default_decoder_cache()).entry(path)
    if chosen == "torchcodec":
        frames = _decode_torchcodec(entry, ts, tolerance_s)
    else:
        frames = _decode_pyav(entry, ts, tolerance_s)
    return frames if return_uint8 else unit_float(frames)
