"""Sanity of dataset statistics: what a stats.json must satisfy for training to use it."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from lerobot_assets.format.features import TEXT_DTYPES, Feature


def stats_problems(stats: Mapping[str, Mapping[str, Any]], features: Mapping[str, Feature], total_frames: int) -> list[str]:
    """Every feature but strings has statistics; none holds NaN or inf; std >= 0; min <= max; counts
    equal the frames (numeric features) or lie in 1..frames (images, sampled)."""
    problems: list[str] = []
    for key, feature in features.items():
        if feature.dtype not in TEXT_DTYPES and key not in stats:
            problems.append(f"{key}: no statistics")
    for key, s in stats.items():
        for name, value in s.items():
            arr = np.asarray(value, dtype=np.float64)
            if not np.all(np.isfinite(arr)):
                problems.append(f"{key}/{name}: holds NaN or inf")
        if "std" in s and np.any(np.asarray(s["std"], dtype=np.float64) < 0):
            problems.append(f"{key}/std: negative")
        if "min" in s and "max" in s and np.any(np.asarray(s["min"]) > np.asarray(s["max"])):
            problems.append(f"{key}: min > max")
        if "count" in s:
            count = int(np.asarray(s["count"]).reshape(-1)[0])
            # Numeric features are counted over every frame; image stats over the frames sampled,
            # which can never exceed the frames.
            visual = key in features and features[key].is_visual
            if (count != total_frames) if not visual else not (0 < count <= total_frames):
                problems.append(f"{key}/count: {count}, dataset has {total_frames} frames")
    return problems
