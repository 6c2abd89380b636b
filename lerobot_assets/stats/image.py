"""Per-channel image statistics from exact 256-level histograms.

Pixels of uint8 frames take 256 values per channel, so a histogram is an exact, mergeable
summary: min, max, mean, std and every quantile of the pooled pixels follow from it. Values are
reported in [0, 1] with shape (C, 1, 1), as LeRobot stores image stats.
"""

import numpy as np

from lerobot_assets.stats.numeric import QUANTILES

_TARGET_SIDE = 150


def spatial_stride(height: int, width: int) -> int:
    """Stride that brings the larger side near 150 px (LeRobot downsamples when max side >= 300)."""
    side = max(height, width)
    return max(1, side // _TARGET_SIDE) if side >= 300 else 1


def to_hwc_uint8(frame: np.ndarray) -> np.ndarray:
    """Accept HWC or CHW, uint8 or float in [0, 1]; return HWC uint8."""
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"expected an image of 3 dims (HWC or CHW), got shape {arr.shape}")
    # Channel-first when the first axis is a channel count and the last is not.
    if arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.transpose(arr, (1, 2, 0))
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
        else:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def _quantile_from_hist(hist: np.ndarray, q: float) -> float:
    """np.quantile(linear) of the multiset described by a 256-bin histogram, exactly."""
    n = int(hist.sum())
    pos = (n - 1) * q
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    cum = np.cumsum(hist)
    v_lo = int(np.searchsorted(cum, lo, side="right"))
    v_hi = int(np.searchsorted(cum, hi, side="right"))
    return v_lo + (pos - lo) * (v_hi - v_lo)


def image_stats_from_histogram(hist: np.ndarray, frames: int) -> dict[str, np.ndarray]:
    """Stats dict (C,1,1) in [0,1] from a (C, 256) histogram over `frames` sampled frames."""
    hist = np.asarray(hist, dtype=np.int64)
    levels = np.arange(256, dtype=np.float64)
    n = hist.sum(axis=1).astype(np.float64)
    if (n == 0).any():
        raise ValueError("empty image histogram")
    mean = (hist * levels).sum(axis=1) / n
    var = (hist * levels**2).sum(axis=1) / n - mean**2
    nz = hist > 0
    out = {
        "min": np.array([levels[r].min() for r in nz]),
        "max": np.array([levels[r].max() for r in nz]),
        "mean": mean,
        "std": np.sqrt(np.maximum(var, 0.0)),
    }
    for name, q in QUANTILES.items():
        out[name] = np.array([_quantile_from_hist(h, q) for h in hist])
    result = {k: (v / 255.0).reshape(-1, 1, 1) for k, v in out.items()}
    result["count"] = np.array([frames], dtype=np.int64)
    return result


class ImageStatsAccumulator:
    """Accumulates per-channel histograms of frames (strided spatially); cheap enough per frame."""

    def __init__(self) -> None:
        self.hist: np.ndarray | None = None
        self.frames = 0

    def update(self, frame: np.ndarray) -> None:
        img = to_hwc_uint8(frame)
        s = spatial_stride(img.shape[0], img.shape[1])
        img = img[::s, ::s]
        c = img.shape[2]
        flat = img.reshape(-1, c)
        # One bincount over channel-offset values is much faster than C separate calls.
        offs = flat.astype(np.int32) + (np.arange(c, dtype=np.int32) * 256)
        counts = np.bincount(offs.ravel(), minlength=256 * c).reshape(c, 256)
        self.hist = counts if self.hist is None else self.hist + counts
        self.frames += 1

    def merge(self, other: "ImageStatsAccumulator") -> None:
        if other.hist is None:
            return
        self.hist = other.hist.copy() if self.hist is None else self.hist + other.hist
        self.frames += other.frames

    def stats(self) -> dict[str, np.ndarray] | None:
        if self.hist is None:
            return None
        return image_stats_from_histogram(self.hist, self.frames)
