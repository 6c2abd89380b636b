"""remove_features / add_features: a new dataset with features dropped or added.

Beats LeRobot's `modify_features`: added numeric features get exact per-episode and dataset stats
(LeRobot's have none), removed ones leave no stale `stats/` columns behind, a removed camera takes
its videos, info, stats and histogram column with it, and the input is never moved or edited.
"""

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from lerobot_assets.format.features import Feature
from lerobot_assets.format.info import schema_problem
from lerobot_assets.format.layout import INDEX_FEATURES
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.format.names import check_name
from lerobot_assets.stats.dataset import column_to_numpy
from lerobot_assets.tools.output import EditResult, Progress, Stopwatch, local_input, new_dataset, resolve_output, tree_bytes
from lerobot_assets.tools.rewrite import AddedFeature, Transform, rewrite_dataset
from lerobot_assets.tools.selection import check_features

# Values of an added feature: an array in global frame order (row `index` order), a .npy or a
# .parquet file (episode_index, frame_index, value), or fn(row, episode_index, frame_index).
FeatureValues = np.ndarray | str | Path | Callable[[dict[str, Any], int, int], Any]


def remove_features(
    root: Path | str,
    keys: Sequence[str],
    out: Path | str,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> EditResult:
    """Write `root` without features `keys` to `out`. ValueError (nothing written) for an unknown
    key (with its close match), one of the five index features, or no keys."""
    clock = Stopwatch()
    if isinstance(keys, str):
        keys = [keys]
    if not keys:
        raise ValueError("no features to remove")
    with local_input(root) as src:
        meta = DatasetMeta(src)
        drop = list(dict.fromkeys(check_features(keys, meta.info)))
        for key in drop:
            if key in INDEX_FEATURES:
                raise ValueError(f"feature {key!r} is one of the index features {list(INDEX_FEATURES)}; it cannot be removed")
        with new_dataset(out, [root], overwrite=overwrite, operation="remove-feature") as tmp:
            done = rewrite_dataset(src, tmp, list(range(meta.num_episodes)), Transform(drop=drop), progress, meta)
    final = resolve_output(out)
    return EditResult("remove-feature", final, done.episodes, done.frames, tree_bytes(final), clock.seconds, done.notes)


def add_features(
    root: Path | str,
    features: Mapping[str, tuple[dict[str, Any] | Feature, FeatureValues]],
    out: Path | str,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> EditResult:
    """Write `root` with `features` ({key: (feature info, values)}) added to `out`.

    Values: a numpy array in global frame order (row `index` order, length total_frames, each
    row of the feature's shape), a `.npy` path (the same), a `.parquet` path with columns
    (episode_index, frame_index, value) covering every frame exactly once, or a callable
    `fn(row: dict, episode_index, frame_index)` called per frame with the source row. ValueError
    (nothing written) naming the key for a duplicate name, an info without dtype/shape, a visual
    dtype, or values of the wrong length or shape.
    """
    clock = Stopwatch()
    if not features:
        raise ValueError("no features to add")
    with local_input(root) as src:
        meta = DatasetMeta(src)
        added = {}
        for key, (spec, values) in features.items():
            check_name(key, "feature name")
            if key in meta.info.features:
                raise ValueError(f"feature {key!r} exists already; remove it first or choose another name")
            feature = _feature(key, spec)
            added[key] = AddedFeature(feature, _episode_values(key, feature, values, meta))
        with new_dataset(out, [root], overwrite=overwrite, operation="add-feature") as tmp:
            done = rewrite_dataset(src, tmp, list(range(meta.num_episodes)), Transform(add=added), progress, meta)
    final = resolve_output(out)
    return EditResult("add-feature", final, done.episodes, done.frames, tree_bytes(final), clock.seconds, done.notes)


def _feature(key: str, spec: dict[str, Any] | Feature) -> Feature:
    if isinstance(spec, Feature):
        feature = spec
    else:
        if not isinstance(spec, Mapping) or "dtype" not in spec or "shape" not in spec:
            raise ValueError(f"feature {key!r}: its info needs 'dtype' and 'shape' (got {spec!r})")
        try:
            feature = Feature.model_validate(dict(spec))
        except ValidationError as e:
            raise ValueError(f"feature {key!r}: {schema_problem(e)}") from None
    if feature.is_visual:
        raise ValueError(f"feature {key!r}: adding {feature.dtype} features is not supported (numeric or string only)")
    if feature.dtype != "string" and len(feature.shape) != 1:
        raise ValueError(f"feature {key!r}: shape {feature.shape} is not supported (1-D only)")
    return feature


def _episode_values(key: str, feature: Feature, values: FeatureValues, meta: DatasetMeta) -> Callable[[int, pa.Table], Any]:
    total = meta.info.total_frames
    if callable(values):
        fn = values

        def per_frame(ep: int, part: pa.Table) -> Any:
            rows = part.to_pylist()
            return [fn(row, ep, int(row["frame_index"])) for row in rows]

        return per_frame
    if isinstance(values, (str, Path)):
        path = Path(values)
        if path.suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        elif path.suffix == ".parquet":
            values = _parquet_values(key, path, meta)
        else:
            raise ValueError(f"feature {key!r}: values file {path} is neither .npy nor .parquet")
    array = np.asarray(values) if feature.dtype == "string" else _numeric(key, feature, values)
    if len(array) != total:
        raise ValueError(f"feature {key!r}: {len(array)} values for {total} frames (one per frame, in global index order)")

    def by_index(ep: int, part: pa.Table) -> Any:
        return array[column_to_numpy(part.column("index")).astype(np.int64)]

    return by_index


def _numeric(key: str, feature: Feature, values: Any) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.dtype("bool" if feature.dtype == "bool" else feature.dtype))
    except (TypeError, ValueError) as e:
        raise ValueError(f"feature {key!r}: values do not convert to {feature.dtype}: {e}") from None
    width = feature.shape[0]
    if width == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    want = "(frames,)" if width == 1 else f"(frames, {width})"
    if (width == 1 and array.ndim != 1) or (width > 1 and (array.ndim != 2 or array.shape[1] != width)):
        raise ValueError(f"feature {key!r}: values have shape {array.shape}, expected {want} for shape {feature.shape}")
    return array


def _parquet_values(key: str, path: Path, meta: DatasetMeta) -> Any:
    """Values in global frame order from a (episode_index, frame_index, value) parquet file."""
    table = pq.read_table(path)
    for col in ("episode_index", "frame_index", "value"):
        if col not in table.column_names:
            raise ValueError(f"{path}: no column {col!r} (expected episode_index, frame_index, value)")
    eps = column_to_numpy(table.column("episode_index")).astype(np.int64)
    frames = column_to_numpy(table.column("frame_index")).astype(np.int64)
    rows = meta.episodes.select(["episode_index", "length", "dataset_from_index"]).to_pydict()
    length = dict(zip(rows["episode_index"], rows["length"]))
    start = dict(zip(rows["episode_index"], rows["dataset_from_index"]))
    position = np.empty(len(eps), dtype=np.int64)
    for i, (e, f) in enumerate(zip(eps.tolist(), frames.tolist())):
        if e not in length or not 0 <= f < length[e]:
            raise ValueError(f"{path}: row {i} names (episode {e}, frame {f}), which the dataset does not have")
        position[i] = start[e] + f
    total = meta.info.total_frames
    seen = np.bincount(position, minlength=total)
    if (seen > 1).any():
        p = int(np.flatnonzero(seen > 1)[0])
        raise ValueError(f"{path}: (episode {_frame_of(p, rows)[0]}, frame {_frame_of(p, rows)[1]}) appears {int(seen[p])} times")
    if (seen == 0).any():
        e, f = _frame_of(int(np.flatnonzero(seen == 0)[0]), rows)
        raise ValueError(f"{path}: no value for (episode {e}, frame {f}); every frame needs exactly one")
    values = table.column("value")
    order = np.argsort(position)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return np.asarray(values.to_pylist(), dtype=object)[order]
    return column_to_numpy(values)[order]


def _frame_of(position: int, rows: dict[str, list[Any]]) -> tuple[int, int]:
    for e, start, n in zip(rows["episode_index"], rows["dataset_from_index"], rows["length"]):
        if start <= position < start + n:
            return int(e), position - int(start)
    return -1, position
