"""From a file's sample table to one episode's frames and its tight byte span.

An episode segment [from_timestamp, to_timestamp) of a concatenated MP4 holds the frames whose
presentation time lies in it. The dataset stores those bounds as floats (sums of durations), so
frames are matched with a half-frame tolerance: a frame belongs to the episode when
``from - tol <= pts < to - tol``. That assigns each frame to exactly one of two adjacent episodes
even when the stored bound is off by float rounding (0.6666666666666666 vs 10240/15360).

To decode those frames a decoder needs, in decode order, every sample from the last keyframe at or
before the first of them up to the last of them (with B-frames the last *presented* frame is not
necessarily the last *decoded* one). The byte span is the min/max over those samples: the start of
the keyframe to the end of the last sample — exclusive, not one byte over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lerobot_assets.byteindex.sample_table import SampleTable


@dataclass(frozen=True)
class EpisodeSpan:
    frames: np.ndarray  # decode-order sample indices of the episode's frames, in presentation order
    decode_first: int  # first sample to decode (a keyframe)
    decode_last: int  # last sample to decode
    byte_start: int
    byte_end: int  # exclusive
    contiguous: bool  # the span holds only this track's samples [decode_first, decode_last]

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def nbytes(self) -> int:
        return self.byte_end - self.byte_start


class TrackTimeline:
    """Presentation-ordered view of one track, for many episode lookups in the same file."""

    def __init__(self, samples: SampleTable):
        self.samples = samples
        self.order = np.argsort(samples.pts, kind="stable")
        self.pts_sorted_s = samples.pts[self.order] / float(samples.timescale)
        self.keyframes = np.flatnonzero(samples.keyframe)
        durations = samples.duration[samples.duration > 0]
        self.frame_duration_s = float(np.median(durations)) / samples.timescale if durations.size else 0.0
        self.ends = samples.offset + samples.size

    def span(self, from_s: float, to_s: float, *, tolerance_s: float | None = None) -> EpisodeSpan:
        """Frames and bytes of the segment [from_s, to_s); raises ValueError if it holds no frame."""
        tol = 0.5 * self.frame_duration_s if tolerance_s is None else tolerance_s
        lo = int(np.searchsorted(self.pts_sorted_s, from_s - tol, side="left"))
        hi = int(np.searchsorted(self.pts_sorted_s, to_s - tol, side="left"))
        if hi <= lo:
            raise ValueError(f"no video frame has a timestamp in [{from_s}, {to_s})")
        frames = self.order[lo:hi]
        first = int(frames.min())
        last = int(frames.max())
        k = int(np.searchsorted(self.keyframes, first, side="right")) - 1
        if k < 0:
            raise ValueError(f"no keyframe at or before the frame at {self.pts_sorted_s[lo]:.6f} s (segment starts at {from_s})")
        decode_first = int(self.keyframes[k])
        offsets = self.samples.offset[decode_first : last + 1]
        sizes = self.samples.size[decode_first : last + 1]
        byte_start = int(offsets.min())
        byte_end = int(self.ends[decode_first : last + 1].max())
        return EpisodeSpan(
            frames=frames,
            decode_first=decode_first,
            decode_last=last,
            byte_start=byte_start,
            byte_end=byte_end,
            contiguous=int(sizes.sum()) == byte_end - byte_start,
        )
