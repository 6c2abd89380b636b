"""Exact merging of moments across episodes (count-weighted mean, pooled variance)."""

from collections.abc import Sequence

import numpy as np


def merge_moments(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Merge min/max/mean/std/count of several parts exactly (population std, like numpy)."""
    if not parts:
        raise ValueError("no statistics to merge")
    counts = np.array([float(np.asarray(p["count"]).reshape(-1)[0]) for p in parts])
    total = counts.sum()
    shape = np.asarray(parts[0]["mean"]).shape
    w = counts.reshape((-1,) + (1,) * len(shape))
    means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
    stds = np.stack([np.asarray(p["std"], dtype=np.float64) for p in parts])
    mean = (means * w).sum(axis=0) / total
    # E[x^2] per part = var + mean^2; the pooled variance is the merged E[x^2] minus mean^2.
    second = ((stds**2 + means**2) * w).sum(axis=0) / total
    var = np.maximum(second - mean**2, 0.0)
    return {
        "min": np.min(np.stack([np.asarray(p["min"], dtype=np.float64) for p in parts]), axis=0),
        "max": np.max(np.stack([np.asarray(p["max"], dtype=np.float64) for p in parts]), axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([int(total)], dtype=np.int64),
    }
