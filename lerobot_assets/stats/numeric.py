"""Statistics of numeric (vector or scalar) features over frames."""

import numpy as np

from lerobot_assets.format.stats_json import QUANTILES, STAT_KEYS

__all__ = ["QUANTILES", "STAT_KEYS", "numeric_stats"]


def numeric_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats of a (N,) or (N, D) array over axis 0, as LeRobot stores them (all float64, count int64).

    Quantiles are exact (linear interpolation over the sorted values), so recomputing them over a
    whole dataset gives the true dataset quantiles.
    """
    arr = np.asarray(values)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.shape[0] == 0:
        raise ValueError("cannot compute statistics of zero frames")
    arr = arr.reshape(arr.shape[0], -1).astype(np.float64, copy=False)
    out: dict[str, np.ndarray] = {
        "min": arr.min(axis=0),
        "max": arr.max(axis=0),
        "mean": arr.mean(axis=0),
        "std": arr.std(axis=0),
        "count": np.array([arr.shape[0]], dtype=np.int64),
    }
    qs = np.quantile(arr, list(QUANTILES.values()), axis=0)
    for i, name in enumerate(QUANTILES):
        out[name] = qs[i]
    return out
