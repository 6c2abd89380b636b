"""stats.json and the `stats/<feature>/<stat>` columns of the episodes parquet: which statistics a
feature carries, and their JSON and per-episode-row encodings. Computing them is `stats/`'s job."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lerobot_assets.format.atomic import write_json_atomic
from lerobot_assets.format.files import file_problem, flat, read_metadata_object
from lerobot_assets.format.layout import STATS_PATH

if TYPE_CHECKING:  # fsspec is only needed for remote roots
    from fsspec import AbstractFileSystem

Stats = dict[str, dict[str, np.ndarray]]

# The statistics LeRobot stores per feature; the quantiles are optional in LeRobot-written datasets.
QUANTILES: dict[str, float] = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_KEYS: tuple[str, ...] = ("min", "max", "mean", "std", "count", *QUANTILES)


def stats_to_json(stats: Stats) -> dict[str, dict[str, Any]]:
    return {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in stats.items()}


def stats_from_json(raw: dict[str, dict[str, Any]], where: Path | str = "meta/stats.json") -> Stats:
    """stats.json's object as arrays; ValueError naming `where` and the entry that is not numeric."""
    out: Stats = {}
    for f, s in raw.items():
        if not isinstance(s, dict):
            raise ValueError(f"{where}: entry {f!r} is not an object of statistics")
        try:
            out[f] = {
                k: np.asarray(v, dtype=np.int64 if k == "count" else np.float64) for k, v in s.items()
            }
        except (TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"{where}: {f}: not numeric arrays ({flat(e)})") from None
    return out


def write_stats(root: Path, stats: Stats) -> None:
    write_json_atomic(Path(root) / STATS_PATH, stats_to_json(stats))


def read_stats(root: Path | str, fs: "AbstractFileSystem | None" = None) -> Stats:
    """meta/stats.json as arrays; {} when there is none. With `fs`, `root` is a path on that
    fsspec filesystem. ValueError naming the file when it is not a regular file, too large, not
    JSON or not numeric."""
    path: Path | str = Path(root) / STATS_PATH if fs is None else f"{str(root).rstrip('/')}/{STATS_PATH}"
    if file_problem(path, fs=fs) == "is missing":
        return {}
    try:
        return stats_from_json(read_metadata_object(path, fs), path)
    except FileNotFoundError:  # removed since it was looked at
        return {}


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
