"""Decode an episode's frames from a `SparseFile` (header + the episode's bytes only).

torchcodec first: since 0.13 its public `VideoDecoder` takes `custom_frame_mappings` (pts, duration,
key_frame per frame), which replaces the full-file scan of exact mode; we pass the episode's frames
from the index, so decoder frame `i` is episode frame `i`, and seeks jump straight to the index's
keyframes. Its "approximate" mode would guess frame positions from the average frame rate, which we
measured returning wrong frames on concatenated files, so it is not used. PyAV is the fallback: seek
to the keyframe, decode forward, keep the frames whose pts the index lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lerobot_assets.byteindex.sparse import SparseFile

if TYPE_CHECKING:  # torch is imported when decoding, so building an index does not load it
    import torch

Backend = Literal["auto", "torchcodec", "pyav"]


@dataclass(frozen=True)
class EpisodeFrames:
    """The index's frames of one segment, in presentation order (numpy columns)."""

    pts: np.ndarray  # int64 ticks
    pts_s: np.ndarray  # float64 seconds in the file's timeline
    duration: np.ndarray  # int64 ticks
    keyframe: np.ndarray  # bool
    byte_offset: np.ndarray  # int64
    size: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.pts.shape[0])


@dataclass(frozen=True)
class DecodedFrames:
    data: torch.Tensor  # uint8 (N, C, H, W)
    pts_s: np.ndarray  # float64, file timeline
    frame_indices: np.ndarray  # int64, episode-local


def torchcodec_has_frame_mappings() -> bool:
    """True when the installed torchcodec's VideoDecoder accepts `custom_frame_mappings`."""
    try:
        import inspect

        from torchcodec.decoders import VideoDecoder
    except (ImportError, RuntimeError, OSError):
        return False
    return "custom_frame_mappings" in inspect.signature(VideoDecoder.__init__).parameters


def frame_mappings_json(frames: EpisodeFrames) -> str:
    """torchcodec's custom-frame-mappings JSON for these frames.

    The first frame is marked as a keyframe even if it is not (an episode that does not start on a
    keyframe): torchcodec then seeks to its pts, and FFmpeg's seek lands on the real keyframe before
    it — which lies inside the fetched span — and decodes forward.
    """
    key = frames.keyframe.astype(int)
    if len(key):
        key[0] = 1
    return json.dumps(
        {
            "frames": [
                {"pts": int(p), "duration": int(d), "key_frame": int(k)}
                for p, d, k in zip(frames.pts.tolist(), frames.duration.tolist(), key.tolist())
            ]
        }
    )


def resolve_backend(backend: Backend) -> Literal["torchcodec", "pyav"]:
    if backend == "auto":
        return "torchcodec" if torchcodec_has_frame_mappings() else "pyav"
    if backend not in ("torchcodec", "pyav"):
        raise ValueError(f"unknown decode backend {backend!r}")
    return backend


def decode_frames(
    sparse: SparseFile,
    frames: EpisodeFrames,
    indices: np.ndarray,
    *,
    backend: Backend = "auto",
    num_threads: int = 1,
) -> DecodedFrames:
    """Decode episode frames `indices` from `sparse`; checks the returned pts against the index."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(frames)):
        raise IndexError(f"frame index out of range 0..{len(frames) - 1}")
    which = resolve_backend(backend)
    if which == "torchcodec":
        decoder = open_torchcodec(sparse, frames, num_threads=num_threads)
        return decode_with(decoder, frames, indices)
    data, pts_s = _decode_pyav(sparse, frames, indices, num_threads)
    return _checked(which, data, pts_s, frames, indices)


def open_torchcodec(sparse: SparseFile, frames: EpisodeFrames, *, num_threads: int = 1) -> Any:
    """A torchcodec VideoDecoder over `sparse` whose frame i is episode frame i (reusable: see
    `decode_with`). Opening parses the file's whole moov, which costs milliseconds on long files."""
    from torchcodec.decoders import VideoDecoder

    sparse.phase = "open"
    decoder = VideoDecoder(
        sparse, custom_frame_mappings=frame_mappings_json(frames), num_ffmpeg_threads=num_threads
    )
    sparse.phase = "decode"
    return decoder


def decode_with(decoder: Any, frames: EpisodeFrames, indices: np.ndarray) -> DecodedFrames:
    """Episode frames `indices` from a decoder made by `open_torchcodec` (not thread-safe)."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(frames)):
        raise IndexError(f"frame index out of range 0..{len(frames) - 1}")
    batch = decoder.get_frames_at(indices.tolist())
    return _checked("torchcodec", batch.data, batch.pts_seconds.numpy().astype(np.float64), frames, indices)


def _checked(
    which: str, data: torch.Tensor, pts_s: np.ndarray, frames: EpisodeFrames, indices: np.ndarray
) -> DecodedFrames:
    expected = frames.pts_s[indices]
    if pts_s.shape != expected.shape or not np.allclose(pts_s, expected, rtol=0, atol=1e-6):
        raise RuntimeError(f"{which} returned frames at {pts_s[:4]}..., the index expects {expected[:4]}...")
    return DecodedFrames(data=data, pts_s=expected, frame_indices=indices)


def _decode_pyav(
    sparse: SparseFile, frames: EpisodeFrames, indices: np.ndarray, num_threads: int
) -> tuple[torch.Tensor, np.ndarray]:
    import av
    import torch

    wanted: dict[int, list[int]] = {}
    for out_pos, i in enumerate(indices.tolist()):
        wanted.setdefault(int(frames.pts[i]), []).append(out_pos)
    out: list[np.ndarray | None] = [None] * len(indices)
    out_pts = np.zeros(len(indices), dtype=np.float64)
    if not wanted:
        return torch.zeros((0, 3, 0, 0), dtype=torch.uint8), out_pts
    sparse.phase = "open"
    with av.open(sparse, mode="r") as container:
        sparse.phase = "decode"
        stream = container.streams.video[0]
        stream.thread_count = max(1, num_threads)
        time_base = stream.time_base
        if time_base is None:
            raise RuntimeError("PyAV reports no time base for the video stream")
        container.seek(min(wanted), stream=stream, backward=True, any_frame=False)
        remaining = len(wanted)
        for frame in container.decode(stream):
            pts = frame.pts
            if pts is None or (positions := wanted.get(pts)) is None:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            for p in positions:
                out[p] = rgb
                out_pts[p] = float(pts * time_base)
            del wanted[pts]
            remaining -= 1
            if remaining == 0:
                break
    if remaining:
        raise RuntimeError(f"PyAV did not produce {remaining} of the requested frames (pts {sorted(wanted)[:4]}...)")
    data = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()  # type: ignore[arg-type]
    return data, out_pts
