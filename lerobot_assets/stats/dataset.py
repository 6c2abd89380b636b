"""Dataset-level statistics, aggregated exactly.

- Numeric features: recomputed over every frame of every data file (a columnar read of a few
  small columns), so min/max/mean/std and quantiles are exact.
- Image/video features: the per-episode 256-level histograms (our sidecar) are summed, which is
  exact for the pooled sampled pixels. Datasets without histograms (LeRobot-written) get exact
  pooled moments and a conservative quantile envelope (min over episodes for q<=0.5, max above),
  never an average of per-episode quantiles.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.format.features import TEXT_DTYPES, Feature
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import IMAGE_HIST_PATH
from lerobot_assets.format.stats_json import Stats, unflatten_stats
from lerobot_assets.format.templates import DatasetFile, data_files
from lerobot_assets.stats.image import image_stats_from_histogram
from lerobot_assets.stats.merge import merge_moments
from lerobot_assets.stats.numeric import QUANTILES, numeric_stats


def column_to_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(N,) or (N, D) numpy from a scalar or fixed-size-list column without Python objects."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_fixed_size_list(arr.type):
        width = arr.type.list_size
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), width)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        return np.asarray(arr.to_pylist())
    return arr.to_numpy(zero_copy_only=False)


def numeric_feature_keys(features: dict[str, Feature]) -> list[str]:
    return [k for k, f in features.items() if not f.is_visual and f.dtype not in TEXT_DTYPES]


def envelope_quantiles(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out = {}
    for name, q in QUANTILES.items():
        stack = np.stack([np.asarray(p[name], dtype=np.float64) for p in parts])
        out[name] = stack.min(axis=0) if q <= 0.5 else stack.max(axis=0)
    return out


def read_image_histograms(root: Path, keys: list[str]) -> dict[str, dict[int, np.ndarray]]:
    """{key: {episode_index: (C,256) histogram}} from the sidecar, for keys it holds."""
    out: dict[str, dict[int, np.ndarray]] = {k: {} for k in keys}
    pattern = IMAGE_HIST_PATH.replace("{chunk_index:03d}", "*").replace("{file_index:03d}", "*")
    for path in sorted(Path(root).glob(pattern)):
        t = pq.read_table(path)
        eps = t.column("episode_index").to_pylist()
        for key in keys:
            if key not in t.column_names:
                continue
            for ep, hist in zip(eps, t.column(key).to_pylist()):
                if hist is not None:
                    out[key][ep] = np.asarray(hist, dtype=np.int64).reshape(-1, 256)
    return out


def _data_files(info: DatasetInfo, episodes: pa.Table) -> list[DatasetFile]:
    """The data files the episodes name, through the dataset's own `data_path` (never a glob of
    our default names, which would miss `part-000.parquet` and count stray files)."""
    if episodes.num_rows == 0:
        return []
    cols = ["episode_index", "data/chunk_index", "data/file_index"]
    missing = [c for c in cols if c not in episodes.column_names]
    if missing:
        raise ValueError(f"episodes metadata has no column {missing[0]!r}")
    return data_files(info.data_path, episodes.select(cols).to_pydict())


def compute_dataset_stats(root: Path, episodes: pa.Table | None = None) -> Stats:
    """Exact dataset stats of the dataset at root (see module docstring)."""
    from lerobot_assets.format.episodes import read_episodes

    root = Path(root)
    info = DatasetInfo.load(root)
    episodes = read_episodes(root) if episodes is None else episodes
    stats: Stats = {}

    keys = numeric_feature_keys(info.features)
    columns: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for path in [root / f.rel for f in _data_files(info, episodes)]:
        try:
            table = pq.read_table(path, columns=keys)
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{path}: unreadable data parquet: {e}") from e
        for k in keys:
            columns[k].append(column_to_numpy(table.column(k)))
    for k in keys:
        if columns[k] and sum(len(c) for c in columns[k]):
            stats[k] = numeric_stats(np.concatenate(columns[k]))

    visual = info.camera_keys
    if visual and episodes.num_rows:
        hists = read_image_histograms(root, visual)
        ep_ids = episodes.column("episode_index").to_pylist()
        rows = episodes.to_pylist()
        for key in visual:
            per_ep = [s for r in rows if (s := unflatten_stats(r).get(key))]
            have = hists.get(key, {})
            if have and all(e in have for e in ep_ids):
                total = np.sum([have[e] for e in ep_ids], axis=0)
                frames = int(sum(int(np.asarray(s["count"])[0]) for s in per_ep)) if per_ep else len(ep_ids)
                stats[key] = image_stats_from_histogram(total, frames)
            elif per_ep:
                merged = merge_moments(per_ep)
                merged.update(envelope_quantiles(per_ep))
                stats[key] = {k: merged[k] for k in ("min", "max", "mean", "std", "count", *QUANTILES)}
    return stats


def running_dataset_stats(previous: Stats, episode: Stats) -> Stats:
    """Cheap stats update after one more episode: exact moments, conservative quantiles.

    Used while recording so stats.json is always present and consistent; finalize() replaces it
    with compute_dataset_stats().
    """
    if not previous:
        return {k: dict(v) for k, v in episode.items()}
    out: Stats = {}
    for key, ep in episode.items():
        prev = previous.get(key)
        if prev is None:
            out[key] = dict(ep)
            continue
        merged = merge_moments([prev, ep])
        merged.update(envelope_quantiles([prev, ep]))
        shape = np.asarray(ep["mean"]).shape
        out[key] = {k: (v.reshape(shape) if k != "count" else v) for k, v in merged.items()}
    return out
