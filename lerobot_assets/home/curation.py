"""Curation under a data home: the merged dataset minus the episodes the curation SQL rejects, and
its train/val splits.

- The episodes to keep are the rows of the `curated_episodes` SQL model
  (dbt_style_sql/models/curation/curated_episodes.sql declares the rules), read by the caller.
- `build_curated_dataset` writes `datasets/curated_dataset` with the stream copy `tools.delete` runs
  on (`tools.rewrite`, never a re-encode) and records what it was built from in `meta/lerobot_assets_curation.json`: the
  merged dataset's fingerprint and the merged episode index of each kept episode. When the merged
  dataset is unchanged and the rejected set only grew, the new version is cut from the current
  curated dataset (fewer bytes to copy) instead of from the merged one; when nothing changed it is
  kept as it is.
- `build_splits` writes `datasets/splits/<name>` with `tools.split`.

Every version is built beside its final path and swapped in whole; the merged dataset is never
written.
"""

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lerobot_assets.format.atomic import make_temp_dir, replace_dir, write_json_atomic
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.home.layout import MERGED_DATASET, HomeLayout
from lerobot_assets.tools.merge import dataset_fingerprint
from lerobot_assets.tools.output import EditResult, Progress, Stopwatch, new_dataset, output_lock, tree_bytes
from lerobot_assets.tools.rewrite import rewrite_dataset
from lerobot_assets.tools.split import split_dataset

CURATED_DATASET = "curated_dataset"
SPLITS_DIR = "splits"
CURATED_MODEL = "curated_episodes"
PROVENANCE_PATH = "meta/lerobot_assets_curation.json"


def curated_root(layout: HomeLayout) -> Path:
    return layout.dataset(CURATED_DATASET)


def splits_root(layout: HomeLayout) -> Path:
    return layout.dataset(SPLITS_DIR)


@dataclass
class CurationResult:
    mode: Literal["rebuild", "incremental", "unchanged"]
    kept: list[int]
    rejected: list[int]
    episodes: int
    frames: int
    edit: EditResult | None


def read_provenance(root: Path) -> dict[str, Any] | None:
    path = root / PROVENANCE_PATH
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def build_curated_dataset(layout: HomeLayout, keep: list[int], progress: Progress | None = None) -> CurationResult:
    """Write the curated dataset: the merged dataset's episodes `keep` (see module docstring)."""
    source = layout.dataset(MERGED_DATASET)
    info = DatasetInfo.load(source)
    total = info.total_episodes
    unknown = [e for e in keep if not 0 <= e < total]
    if unknown:
        raise ValueError(f"{CURATED_MODEL} keeps episode {unknown[0]}, but {source} has {total} episodes")
    keep = sorted(set(keep))
    if not keep:
        raise ValueError(f"{CURATED_MODEL} keeps no episode of {source}: a dataset needs at least one episode")
    rejected = sorted(set(range(total)) - set(keep))
    fingerprint = dataset_fingerprint(source)
    final = curated_root(layout)
    with output_lock(final):
        return _build_locked(final, source, keep, rejected, fingerprint, progress)


def _build_locked(
    final: Path, source: Path, keep: list[int], rejected: list[int], fingerprint: str, progress: Progress | None
) -> CurationResult:
    previous = read_provenance(final)
    if previous and previous.get("source_fingerprint") == fingerprint and (final / "meta" / "info.json").is_file():
        before = [int(e) for e in previous.get("kept", [])]
        if before == keep:
            now = DatasetInfo.load(final)
            return CurationResult("unchanged", keep, rejected, now.total_episodes, now.total_frames, None)
        if set(keep) < set(before):
            # Only more rejections: cut them from the current curated dataset (its episode i is merged before[i]).
            positions = [i for i, e in enumerate(before) if e in set(keep)]
            edit = _swap_in(final, lambda out: _keep(final, positions, out, progress), fingerprint, keep)
            return CurationResult("incremental", keep, rejected, edit.episodes, edit.frames, edit)
    edit = _swap_in(final, lambda out: _keep(source, keep, out, progress), fingerprint, keep)
    return CurationResult("rebuild", keep, rejected, edit.episodes, edit.frames, edit)


def _keep(source: Path, keep: list[int], out: Path, progress: Progress | None) -> EditResult:
    """`tools.delete`'s stream copy, given the episodes to keep (all of them is allowed here)."""
    clock = Stopwatch()
    with new_dataset(out, [source], operation="curate") as tmp:
        done = rewrite_dataset(source, tmp, keep, progress=progress)
    return EditResult("curate", out, done.episodes, done.frames, tree_bytes(out), clock.seconds, done.notes)


def _swap_in(final: Path, build: Any, fingerprint: str, keep: list[int]) -> EditResult:
    """Build the next version in a scratch dir beside `final` (the tool writes `<scratch>/next`),
    record its provenance inside it, then swap it in whole."""
    scratch = make_temp_dir(final.parent, f".{final.name}.curate-")
    try:
        nxt = scratch / "next"
        edit: EditResult = build(nxt)
        write_json_atomic(nxt / PROVENANCE_PATH, {"source_fingerprint": fingerprint, "kept": keep})
        replace_dir(nxt, final)
        edit.output = final
        return edit
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def build_splits(
    layout: HomeLayout, fractions: Mapping[str, float], seed: int | None, progress: Progress | None = None
) -> dict[str, EditResult]:
    """Split the curated dataset into `datasets/splits/<name>` (largest-remainder allocation)."""
    source = curated_root(layout)
    if not (source / "meta" / "info.json").is_file():
        raise FileNotFoundError(f"{source}: no curated dataset yet; materialize curated_dataset first")
    return split_dataset(source, dict(fractions), splits_root(layout), seed=seed, overwrite=True, progress=progress)
