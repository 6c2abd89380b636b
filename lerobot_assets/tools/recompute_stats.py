"""recompute_stats: exact per-episode and dataset statistics of every feature, from the frames.

Unlike LeRobot's `recompute_stats` (count-weighted mean of per-episode quantiles, numeric features
only, crashes on annotated datasets), every numeric quantile here is recomputed over all frames
(`numeric_stats` per episode; `compute_dataset_stats` over the whole dataset) and image stats are
decoded from the videos (`ensure_image_histograms(force=True)`), so they hold for the frames as
stored. Declared `string` features and undeclared columns (`language_persistent`,
`language_events`, ...) have no statistics and are never read.

Output: a new root (`out`: data and videos hardlinked where the filesystem allows, else copied;
meta rewritten), or `in_place=True`: only `meta/` files are rewritten, each atomically, stats.json
last; data and videos are not opened for writing.
"""

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.format.atomic import write_parquet_atomic
from lerobot_assets.format.episodes import episode_files, read_episodes, read_episodes_file
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import STAGING_DIR
from lerobot_assets.format.meta import is_remote_root
from lerobot_assets.format.stats_json import Stats, flatten_stats, write_stats
from lerobot_assets.format.templates import format_path
from lerobot_assets.stats.dataset import column_to_numpy, compute_dataset_stats, numeric_feature_keys
from lerobot_assets.stats.numeric import numeric_stats
from lerobot_assets.tools.image_stats import ensure_image_histograms, replace_stats_columns
from lerobot_assets.tools.output import EditResult, Progress, Stopwatch, local_input, new_dataset, no_progress, resolve_output, tree_bytes

OPERATION = "recompute-stats"
# Payload trees shared with the input (never rewritten by this tool); everything else is copied.
_LINKED_TOPS = ("data", "videos")


def recompute_stats(
    root: Path | str,
    out: Path | str | None = None,
    *,
    in_place: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> EditResult:
    """Recompute every statistic of the dataset at `root` into `out`, or into `root` itself with
    `in_place=True` (meta only). Exactly one of the two; ValueError otherwise. FileNotFoundError
    naming `meta/info.json` when `root` is not a dataset."""
    if (out is None) == (not in_place):
        raise ValueError("recompute_stats: give exactly one of out=<new root> or in_place=True")
    report = progress or no_progress
    watch = Stopwatch()
    if in_place:
        if is_remote_root(root):
            raise ValueError(f"{root}: in_place needs a local dataset root (use out= for a remote one)")
        target = Path(root)
        DatasetInfo.load(target)  # names meta/info.json when this is not a dataset
        pairs = recompute_meta(target, report)
        return _result(target, watch, pairs)
    assert out is not None
    with local_input(root) as src:
        DatasetInfo.load(src)
        with new_dataset(out, [root], overwrite=overwrite, operation=OPERATION) as tmp:
            copy_dataset(src, tmp)
            pairs = recompute_meta(tmp, report)
    return _result(resolve_output(out), watch, pairs)


def _result(root: Path, watch: Stopwatch, pairs: int) -> EditResult:
    info = DatasetInfo.load(root)
    notes = [f"image stats decoded from video for {pairs} (episode, camera) pairs"] if pairs else []
    return EditResult(OPERATION, root, info.total_episodes, info.total_frames, tree_bytes(root), watch.seconds, notes)


def copy_dataset(src: Path, dst: Path) -> None:
    """Copy the dataset tree `src` into the empty directory `dst`: data and videos hardlinked when
    on the same filesystem (safe: no tool here writes through a file, every write is temp+rename),
    else copied; meta and other files copied. A writer's scratch (`.staging`) is left behind."""
    for entry in sorted(Path(src).iterdir()):
        if entry.name == STAGING_DIR:
            continue
        target = dst / entry.name
        if entry.is_dir():
            copy = _link_or_copy if entry.name in _LINKED_TOPS else shutil.copy2
            shutil.copytree(entry, target, copy_function=copy, symlinks=False)
        else:
            shutil.copy2(entry, target)


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dst)
    return dst


def recompute_meta(root: Path, progress: Progress) -> int:
    """Rewrite the stats of the local dataset at `root`: per-episode numeric stats, per-episode
    image stats from video, then stats.json (last). Only meta files are written, each atomically.
    Returns the (episode, camera) pairs decoded."""
    info = DatasetInfo.load(root)
    shards = [Path(p) for p in episode_files(root)]
    if not shards:
        raise ValueError(f"{root}: no meta/episodes/chunk-*/file-*.parquet (not a LeRobot v3 dataset with episodes)")
    keys = numeric_feature_keys(info.features)
    per_episode = episode_numeric_stats(root, info, keys, progress)
    for path in shards:
        table = read_episodes_file(path)
        new_rows = {
            int(ep): flatten_stats(per_episode[int(ep)])
            for ep in table.column("episode_index").to_pylist()
            if int(ep) in per_episode
        }
        if new_rows:
            write_parquet_atomic(path, replace_stats_columns(table, new_rows, list(info.features), info.camera_keys))
    pairs = ensure_image_histograms(root, progress, force=True)
    stats = compute_dataset_stats(root, read_episodes(root))
    write_stats(root, stats)
    return pairs


def episode_numeric_stats(root: Path, info: DatasetInfo, keys: list[str], progress: Progress) -> dict[int, Stats]:
    """{episode_index: {feature: stats}} of the numeric features `keys`, over every frame of each
    episode (columnar reads of only those columns; each data file once)."""
    episodes = read_episodes(root, columns=["episode_index", "data/chunk_index", "data/file_index"])
    files = sorted({(int(c), int(f)) for c, f in zip(episodes.column("data/chunk_index").to_pylist(),
                                                        episodes.column("data/file_index").to_pylist())})
    wanted = set(episodes.column("episode_index").to_pylist())
    columns = list(dict.fromkeys(["episode_index", *keys]))
    out: dict[int, Stats] = {}
    for done, (c, f) in enumerate(files, 1):
        path = root / format_path(info.data_path, "data", c, f)
        try:
            table = pq.read_table(path, columns=columns)
        except (pa.ArrowInvalid, OSError, KeyError) as e:
            raise ValueError(f"{path}: unreadable data parquet: {e}") from e
        ep_col = table.column("episode_index").to_numpy()
        order = np.argsort(ep_col, kind="stable")
        sorted_eps = ep_col[order]
        starts = np.flatnonzero(np.r_[True, sorted_eps[1:] != sorted_eps[:-1]])
        bounds = list(zip(starts, np.r_[starts[1:], len(sorted_eps)]))
        arrays: dict[str, Any] = {k: column_to_numpy(table.column(k))[order] for k in keys}
        for lo, hi in bounds:
            ep = int(sorted_eps[lo])
            if ep in wanted:
                out[ep] = {k: numeric_stats(arrays[k][lo:hi]) for k in keys}
        progress("numeric stats", done, len(files))
    missing = sorted(wanted - set(out))
    if missing:
        raise ValueError(f"{root}: episode {missing[0]} has no rows in its data file")
    return out
