"""stats.json and the `stats/<feature>/<stat>` columns of the episodes parquet: which statistics a
feature carries, and their JSON and per-episode-row encodings. Computing them is `stats/`'s job."""

import json
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_assets.format.atomic import write_json_atomic
from lerobot_assets.format.layout import STATS_PATH

Stats = dict[str, dict[str, np.ndarray]]

# The statistics LeRobot stores per feature; the quantiles are optional in LeRobot-written datasets.
QUANTILES: dict[str, float] = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_KEYS: tuple[str, ...] = ("min", "max", "mean", "std", "count", *QUANTILES)


def stats_to_json(stats: Stats) -> dict[str, dict[str, Any]]:
    return {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in stats.items()}


def stats_from_json(raw: dict[str, dict[str, Any]]) -> Stats:
    out: Stats = {}
    for f, s in raw.items():
        out[f] = {
            k: np.asarray(v, dtype=np.int64 if k == "count" else np.float64) for k, v in s.items()
        }
    return out


def write_stats(root: Path, stats: Stats) -> None:
    write_json_atomic(Path(root) / STATS_PATH, stats_to_json(stats))


def read_stats(root: Path) -> Stats:
    path = Path(root) / STATS_PATH
    if not path.is_file():
        return {}
    return stats_from_json(json.loads(path.read_text(encoding="utf-8")))


def flatten_stats(stats: Stats) -> dict[str, Any]:
    """{"stats/<feature>/<stat>": list} as stored per episode row."""
    return {f"stats/{f}/{k}": np.asarray(v).tolist() for f, s in stats.items() for k, v in s.items()}


def unflatten_stats(row: dict[str, Any]) -> Stats:
    """Inverse of flatten_stats for one episode row (tolerates nested lists from parquet)."""
    out: Stats = {}
    for col, value in row.items():
        if not col.startswith("stats/") or value is None:
            continue
        _, rest = col.split("/", 1)
        feature, stat = rest.rsplit("/", 1)
        arr = np.asarray(value, dtype=np.int64 if stat == "count" else np.float64)
        out.setdefault(feature, {})[stat] = arr
    return out
