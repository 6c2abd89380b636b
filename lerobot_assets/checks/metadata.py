"""Validation of the dataset's metadata: meta/info.json, meta/tasks.parquet, meta/episodes/ and
meta/stats.json (loaded into the `ValidationRun` for the data and video checks).

Every metadata file is read through `format.files` (regular files under a size cap), so a FIFO
or a link to a device is reported as what it is instead of hanging or filling memory."""

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.checks.context import Episodes, ValidationRun
from lerobot_assets.format.episodes import typed_episodes
from lerobot_assets.format.features import TEXT_DTYPES
from lerobot_assets.format.files import (
    MAX_PARQUET_BYTES,
    MetadataFileError,
    file_problem,
    open_metadata,
    read_metadata_object,
)
from lerobot_assets.format.info import DatasetInfo, NotAV3DatasetError
from lerobot_assets.format.layout import INFO_PATH, STATS_PATH, TASKS_PATH
from lerobot_assets.format.stats_json import QUANTILES
from lerobot_assets.format.templates import dataset_files

__all__ = [
    "OPTIONAL_STAT_KEYS",
    "REQUIRED_STAT_KEYS",
    "NotAV3DatasetError",
    "check_episodes",
    "check_info_features",
    "check_stats",
    "load_episodes",
    "load_info",
    "load_tasks",
]

REQUIRED_STAT_KEYS = ("min", "max", "mean", "std", "count")
# Quantile stats appeared later in v3.0; datasets converted from v2.1 may lack them.
OPTIONAL_STAT_KEYS = tuple(QUANTILES)
_INDEX_DTYPES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64",
                 "index": "int64", "task_index": "int64"}
_EPISODE_COLUMNS = ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
                    "dataset_from_index", "dataset_to_index")


def load_info(run: ValidationRun) -> bool:
    path = run.root / INFO_PATH
    if not run.root.is_dir():
        raise NotAV3DatasetError(f"{run.root}: not a directory")
    try:
        raw = read_metadata_object(path)
    except FileNotFoundError:
        raise NotAV3DatasetError(f"{run.root}: not a LeRobot dataset root (meta/info.json is missing)") from None
    except MetadataFileError as e:
        run.error(INFO_PATH, None, e.reason)
        return False
    try:
        # NotAV3DatasetError (another codebase_version) propagates; a schema problem, an unsafe
        # feature name or a template we do not honour is this dataset's error.
        run.info = DatasetInfo.parse(raw, path)
    except MetadataFileError as e:
        run.error(INFO_PATH, None, e.reason)
        return False
    return True


def check_info_features(run: ValidationRun) -> None:
    info = run.info
    assert info is not None
    # fps > 0, safe feature names and honoured templates are part of the DatasetInfo model.
    for key, dtype in _INDEX_DTYPES.items():
        f = info.features.get(key)
        if f is None:
            run.error(INFO_PATH, None, f"feature {key!r} is missing (LeRobot adds it to every dataset)")
        elif f.dtype != dtype:
            run.error(INFO_PATH, None, f"feature {key!r} has dtype {f.dtype}, expected {dtype}")
    if info.video_keys and not info.video_path:
        run.error(INFO_PATH, None, "video_path is null but the dataset has video features")
    for key in info.camera_keys:
        f = info.features[key]
        if len(f.shape) != 3:
            run.error(INFO_PATH, None, f"{f.dtype} feature {key!r} has shape {f.shape}; expected [H, W, C]")


def load_tasks(run: ValidationRun) -> None:
    path = run.root / TASKS_PATH
    problem = file_problem(path)
    if problem is not None:
        run.error(TASKS_PATH, None, "missing" if problem == "is missing" else problem)
        return
    try:
        with open_metadata(path, MAX_PARQUET_BYTES) as f:
            table = pq.read_table(f)
    except MetadataFileError as e:
        run.error(TASKS_PATH, None, e.reason)
        return
    except (pa.ArrowException, OSError) as e:
        run.error(TASKS_PATH, None, f"unreadable parquet: {e}")
        return
    if "task_index" not in table.column_names or "task" not in table.column_names:
        run.error(TASKS_PATH, None, f"columns are {table.column_names}; expected task_index and task")
        return
    try:
        idx = table.column("task_index").cast(pa.int64()).to_pylist()
        names = table.column("task").cast(pa.string()).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        run.error(TASKS_PATH, None, f"task_index must hold integers and task strings: {e}")
        return
    # LeRobot resolves a task with tasks.iloc[task_index]: row k must hold task_index k.
    if idx != list(range(len(idx))):
        run.error(TASKS_PATH, None, f"task_index values {idx[:10]} are not 0..{len(idx) - 1} in row order")
    if any(t is None for t in names):
        run.error(TASKS_PATH, None, "task has null values")
    dup = sorted({t for t in names if t is not None and names.count(t) > 1}) if len(set(names)) != len(names) else []
    if dup:
        run.error(TASKS_PATH, None, f"duplicate task strings: {dup[:5]}")
    run.tasks = names
    assert run.info is not None
    if run.info.total_tasks != len(names):
        run.error(INFO_PATH, None, f"total_tasks={run.info.total_tasks} but meta/tasks.parquet has {len(names)} tasks")


def load_episodes(run: ValidationRun) -> bool:
    # The episodes shards' location is fixed by the format (not a template): LeRobot loads every
    # parquet file under meta/episodes/, and so does this.
    files = sorted((run.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        run.error("meta/episodes", None, "no episodes metadata (meta/episodes/chunk-*/file-*.parquet)")
        return False
    info = run.info
    assert info is not None
    wanted = list(_EPISODE_COLUMNS)
    for key in info.video_keys:
        wanted += [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    tables: list[pa.Table] = []
    ok = True
    for path in files:
        try:
            with open_metadata(path, MAX_PARQUET_BYTES) as f:
                pf = pq.ParquetFile(f)
                names = pf.schema_arrow.names
                missing = [c for c in wanted if c not in names]
                if missing:
                    run.error(path, None, f"missing columns {missing}")
                    ok = False
                    continue
                extra = [c for c in ("meta/episodes/chunk_index", "meta/episodes/file_index") if c in names]
                table = typed_episodes(pf.read(columns=wanted + extra), path)
        except MetadataFileError as e:
            run.error(path, None, e.reason)
            ok = False
            continue
        except (pa.ArrowException, OSError) as e:
            run.error(path, None, f"unreadable episodes parquet: {e}")
            ok = False
            continue
        except ValueError as e:  # typed_episodes: a column of another type; its message starts with the path
            run.error(path, None, str(e).removeprefix(f"{path}: "))
            ok = False
            continue
        _check_episode_file_location(run, path, table)
        tables.append(table.select(wanted))
        run.row_file += [path] * table.num_rows
    if not ok or not tables:
        return False
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        run.error("meta/episodes", None, f"episodes files have incompatible schemas: {e}")
        return False
    for name in wanted:
        if table.column(name).null_count:
            rows = np.flatnonzero(table.column(name).is_null().to_numpy(zero_copy_only=False))
            run.error(run.row_file[int(rows[0])], None, f"column {name!r} has null values ({rows.size} rows)")
            return False

    tasks = table.column("tasks").to_pylist()
    with_null = [k for k, names in enumerate(tasks) if any(t is None for t in names)]
    if with_null:
        k = with_null[0]
        run.error(run.row_file[k], None, f"column 'tasks' holds null task names ({len(with_null)} rows, "
                                         f"the first of them episode_index {table.column('episode_index')[k].as_py()})")
        return False

    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy()

    video: dict[str, dict[str, np.ndarray]] = {}
    for key in info.video_keys:
        video[key] = {c: col(f"videos/{key}/{c}") for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")}
    run.eps = Episodes(
        index=col("episode_index").astype(np.int64),
        length=col("length").astype(np.int64),
        start=col("dataset_from_index").astype(np.int64),
        end=col("dataset_to_index").astype(np.int64),
        data_file=list(zip(col("data/chunk_index").tolist(), col("data/file_index").tolist())),
        tasks=tasks,
        video=video,
    )
    # The data and video files are what the templates give for the episodes' (chunk, file)
    # pairs, never what a glob finds (a dataset may name its files its own way).
    keys = info.video_keys if info.video_path else []  # a null video_path is check_info_features' error
    index_columns = ["episode_index", "data/chunk_index", "data/file_index"]
    index_columns += [f"videos/{k}/{c}" for k in keys for c in ("chunk_index", "file_index")]
    run.files = dataset_files(info.data_path, info.video_path, keys, table.select(index_columns).to_pydict())
    run.episode_files = files
    return True


def _check_episode_file_location(run: ValidationRun, path: Path, table: pa.Table) -> None:
    if not {"meta/episodes/chunk_index", "meta/episodes/file_index"} <= set(table.column_names):
        return  # optional columns (LeRobot writes both); half of the pair says nothing
    try:
        chunk = int(path.parent.name.split("-")[-1])
        file = int(path.stem.split("-")[-1])
    except ValueError:
        run.warn(path, None, "file name does not follow chunk-XXX/file-XXX.parquet")
        return
    c = table.column("meta/episodes/chunk_index").to_numpy()
    f = table.column("meta/episodes/file_index").to_numpy()
    bad = np.flatnonzero((c != chunk) | (f != file))
    if bad.size:
        ep = table.column("episode_index")[int(bad[0])].as_py()
        run.warn(path, ep, f"meta/episodes/chunk_index,file_index = {c[bad[0]]},{f[bad[0]]} "
                            f"but the row is stored in chunk {chunk} file {file} ({bad.size} rows)")


def check_episodes(run: ValidationRun) -> None:
    eps, info = run.eps, run.info
    assert eps is not None and info is not None
    n_eps = len(eps.index)
    run.report.num_episodes = n_eps
    # LeRobot addresses episodes by position: episode k must be row k.
    bad = np.flatnonzero(eps.index != np.arange(n_eps))
    if bad.size:
        k = int(bad[0])
        run.error(run.episode_file_of(k), int(eps.index[k]),
                   f"episode_index values are not 0..{n_eps - 1} in file order "
                   f"(row {k} holds {eps.index[k]}; {bad.size} rows out of place)")
    if info.total_episodes != n_eps:
        run.error(INFO_PATH, None, f"total_episodes={info.total_episodes} but meta/episodes has {n_eps} episodes")
    total = int(eps.length.sum())
    if info.total_frames != total:
        run.error(INFO_PATH, None, f"total_frames={info.total_frames} but the episodes' lengths sum to {total}")
    for k in np.flatnonzero(eps.length <= 0).tolist():
        run.error(run.episode_file_of(k), int(eps.index[k]), f"length is {eps.length[k]}", check="length")
    for k in np.flatnonzero(eps.end - eps.start != eps.length).tolist():
        run.error(run.episode_file_of(k), int(eps.index[k]),
                   f"dataset_to_index - dataset_from_index = {eps.end[k] - eps.start[k]} "
                   f"but length is {eps.length[k]}", check="from_to_length")
    expected_start = np.concatenate([[0], np.cumsum(eps.length)[:-1]])
    for k in np.flatnonzero(eps.start != expected_start).tolist():
        run.error(run.episode_file_of(k), int(eps.index[k]),
                   f"dataset_from_index is {eps.start[k]}, expected {expected_start[k]} "
                   f"(episodes must cover 0..total_frames-1 contiguously, in order)", check="from_index")
    known = set(run.tasks or [])
    for k, tasks in enumerate(eps.tasks):
        if not tasks:
            run.error(run.episode_file_of(k), int(eps.index[k]), "tasks list is empty", check="ep_tasks")
        elif run.tasks is not None:
            unknown = [t for t in tasks if t not in known]
            if unknown:
                run.error(run.episode_file_of(k), int(eps.index[k]),
                           f"tasks {unknown} are not in meta/tasks.parquet", check="ep_tasks")


def check_stats(run: ValidationRun) -> None:
    info = run.info
    assert info is not None
    path = run.root / STATS_PATH
    try:
        raw = read_metadata_object(path)
    except FileNotFoundError:
        run.error(STATS_PATH, None, "missing (LeRobot normalizes with it)")
        return
    except MetadataFileError as e:
        run.error(STATS_PATH, None, e.reason)
        return
    for key, f in info.features.items():
        if f.dtype in TEXT_DTYPES:
            continue
        entry = raw.get(key)
        if not isinstance(entry, dict):
            run.error(STATS_PATH, None, f"no entry for feature {key!r}")
            continue
        expected = _stat_shape(f)
        for stat in (*REQUIRED_STAT_KEYS, *OPTIONAL_STAT_KEYS):
            if stat not in entry:
                if stat in REQUIRED_STAT_KEYS:
                    run.error(STATS_PATH, None, f"{key}: stat {stat!r} is missing")
                else:
                    run.warn(STATS_PATH, None, f"{key}: stat {stat!r} is missing", check="stats_quantile")
                continue
            try:
                arr = np.asarray(entry[stat], dtype=np.float64)
            except (TypeError, ValueError, OverflowError, RecursionError):
                run.error(STATS_PATH, None, f"{key}/{stat}: not a numeric array")
                continue
            want = (1,) if stat == "count" else expected
            if arr.shape != want:
                run.error(STATS_PATH, None, f"{key}/{stat}: shape {arr.shape}, expected {want}")
            elif not np.isfinite(arr).all():
                run.error(STATS_PATH, None, f"{key}/{stat}: holds non-finite values")


def _stat_shape(f: Any) -> tuple[int, ...]:
    """Shape LeRobot stores a feature's stats in: (C, 1, 1) for images, the feature shape otherwise."""
    if f.is_visual and f.shape:  # a visual feature without a shape is reported by check_info_features
        names = f.names if isinstance(f.names, list) else None
        if names and "channels" in names and names.index("channels") < len(f.shape):
            channels = f.shape[names.index("channels")]
        else:
            channels = f.shape[-1] if f.shape[-1] in (1, 3, 4) else f.shape[0]
        return (channels, 1, 1)
    return tuple(f.shape)
