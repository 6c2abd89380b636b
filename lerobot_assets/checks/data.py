"""Validation of the data parquet files against the episodes metadata: every file referenced and
readable, columns and row groups as info.json and LeRobot's writer make them, index columns
consistent row by row (vectorised over all frames)."""

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.checks.context import ValidationRun
from lerobot_assets.checks.report import episode_list
from lerobot_assets.format.features import TEXT_DTYPES
from lerobot_assets.format.files import file_problem
from lerobot_assets.format.layout import INDEX_FEATURES, INFO_PATH
from lerobot_assets.format.templates import format_path


def _data_rel(run: ValidationRun, chunk: int, file: int) -> str:
    assert run.info is not None
    return format_path(run.info.data_path, "data", chunk, file)


def check_data(run: ValidationRun) -> None:
    eps, info = run.eps, run.info
    assert eps is not None and info is not None
    data_files = [f for f in run.files if f.kind == "data"]
    run.report.num_data_files = len(data_files)
    referenced_paths = {f.rel for f in data_files}
    # LeRobot loads every parquet under data/, referenced or not: a stray file shifts every row.
    # (A diagnostic of what else is there; the dataset's own files come from its templates.)
    for path in sorted((run.root / "data").glob("*/*.parquet")):
        if run.rel(path) not in referenced_paths:
            run.error(path, None, "data file is not referenced by any episode (LeRobot would still load its rows)")

    columns = [k for k, f in info.features.items() if f.dtype != "video"]
    index_cols = [k for k in INDEX_FEATURES if k in info.features]
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in index_cols}
    file_ranges: dict[tuple[int, int], tuple[int, int]] = {}
    offset = 0
    complete = True
    eps_in_file: dict[tuple[int, int], list[int]] = defaultdict(list)
    for k, cf in enumerate(eps.data_file):
        eps_in_file[cf].append(k)
    for data_file in data_files:
        cf, rel = (data_file.chunk_index, data_file.file_index), data_file.rel
        path = run.root / rel
        first_ep = int(eps.index[eps_in_file[cf][0]])
        problem = file_problem(path)
        if problem is not None:  # "is missing", or what it is instead of a file ("is a FIFO")
            run.error(rel, first_ep, f"data file {problem} (referenced by {episode_list(eps.index[eps_in_file[cf]])})")
            complete = False
            continue
        try:
            pf = pq.ParquetFile(path, memory_map=True)
            schema = pf.schema_arrow
            missing = [c for c in columns if c not in schema.names]
            if missing:
                run.error(rel, None, f"missing columns {missing}")
            _check_column_types(run, rel, schema)
            table = pf.read(columns=[c for c in index_cols if c in schema.names])
        except (pa.ArrowInvalid, OSError) as e:
            run.error(rel, first_ep, f"unreadable data parquet: {e}")
            complete = False
            continue
        if any(c not in table.column_names for c in index_cols):
            complete = False
            continue
        nulls = [c for c in index_cols if table.column(c).null_count]
        if nulls:
            run.error(rel, None, f"null values in columns {nulls}")
            complete = False
            continue
        _check_row_groups(run, rel, pf, eps_in_file[cf])
        for c in index_cols:
            arrays[c].append(table.column(c).to_numpy())
        file_ranges[cf] = (offset, offset + table.num_rows)
        offset += table.num_rows
    if not complete:
        return
    n = offset
    run.report.num_frames = n
    if info.total_frames != n:
        run.error(INFO_PATH, None, f"total_frames={info.total_frames} but the data files hold {n} rows")
    cols = {c: np.concatenate(v) if v else np.empty(0) for c, v in arrays.items()}
    _check_rows(run, cols, file_ranges, n)


def _check_column_types(run: ValidationRun, rel: str, schema: pa.Schema) -> None:
    assert run.info is not None
    for key, f in run.info.features.items():
        if f.dtype in ("video", "image", *TEXT_DTYPES) or key not in schema.names:
            continue
        t = schema.field(key).type
        if pa.types.is_fixed_size_list(t):
            if [t.list_size] != f.shape[:1] or len(f.shape) != 1:
                run.error(rel, None, f"column {key!r} holds lists of {t.list_size} values but info.json says shape {f.shape}")
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            pass  # variable-length lists: lengths are not checked row by row here
        elif f.shape != [1]:
            run.error(rel, None, f"column {key!r} holds scalars but info.json says shape {f.shape}")


def _check_row_groups(run: ValidationRun, rel: str, pf: pq.ParquetFile, positions: list[int]) -> None:
    """LeRobot's writer writes one row group per episode; streaming readers shard on them."""
    eps = run.eps
    assert eps is not None
    sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
    lengths = [int(eps.length[k]) for k in sorted(positions, key=lambda k: eps.start[k])]
    if sizes != lengths:
        run.warn(rel, None, f"{len(sizes)} row groups for {len(lengths)} episodes (row group sizes "
                             f"{sizes[:5]}{'...' if len(sizes) > 5 else ''}); LeRobot writes one row group per episode")


def _check_rows(run: ValidationRun, cols: dict[str, np.ndarray], file_ranges: dict[tuple[int, int], tuple[int, int]], n: int) -> None:
    eps, info = run.eps, run.info
    assert eps is not None and info is not None
    n_eps = len(eps.index)
    # Each episode's rows must lie in the data file it names.
    for k in range(n_eps):
        lo, hi = file_ranges[eps.data_file[k]]
        if not (lo <= eps.start[k] and eps.end[k] <= hi):
            run.error(_data_rel(run, *eps.data_file[k]), int(eps.index[k]),
                       f"rows [{eps.start[k]}, {eps.end[k]}) are not in this data file "
                       f"(it holds global rows [{lo}, {hi}))", check="rows_in_file")
    if int(eps.length.sum()) != n or (eps.start != np.concatenate([[0], np.cumsum(eps.length)[:-1]])).any():
        # Episode ranges and rows disagree already (reported); row-by-row checks would only echo that.
        return
    row_ep = np.repeat(np.arange(n_eps), eps.length)

    def per_episode(bad_rows: np.ndarray, check: str, describe) -> None:
        """One problem per episode holding bad rows; describe(k, rows) words it."""
        if not bad_rows.size:
            return
        # bad_rows is sorted and so is row_ep: each episode's bad rows are one slice.
        ks, firsts, counts = np.unique(row_ep[bad_rows], return_index=True, return_counts=True)
        for k, first, count in zip(ks.tolist(), firsts.tolist(), counts.tolist()):
            run.error(_data_rel(run, *eps.data_file[k]), int(eps.index[k]),
                       describe(k, bad_rows[first:first + count]), check=check)

    if "index" in cols:
        index = cols["index"]
        bad = np.flatnonzero(index != np.arange(n))
        per_episode(bad, "index", lambda k, r: (
            f"index is not contiguous: global row {r[0]} holds index {index[r[0]]}, expected {r[0]} "
            f"({r.size} of the episode's rows differ)"))
    if "episode_index" in cols:
        col = cols["episode_index"]
        expected = eps.index[row_ep]
        bad = np.flatnonzero(col != expected)
        per_episode(bad, "episode_index", lambda k, r: (
            f"episode_index column holds {sorted(set(col[r].tolist()))[:5]} in {r.size} of its rows, expected {eps.index[k]}"))
    frame = np.arange(n) - eps.start[row_ep]
    if "frame_index" in cols:
        col = cols["frame_index"]
        bad = np.flatnonzero(col != frame)
        per_episode(bad, "frame_index", lambda k, r: (
            f"frame_index is not 0..{eps.length[k] - 1}: row {r[0] - eps.start[k]} holds {col[r[0]]} "
            f"({r.size} rows differ)"))
    if "timestamp" in cols:
        ts = cols["timestamp"].astype(np.float64)
        dev = np.abs(ts - frame / info.fps)
        bad = np.flatnonzero(~(dev <= run.tolerance_s))  # NaN counts as bad
        per_episode(bad, "timestamp", lambda k, r: (
            f"timestamp != frame_index/fps (fps={info.fps}) within {run.tolerance_s} s: frame {r[0] - eps.start[k]} "
            f"has {ts[r[0]]:.6f}, expected {frame[r[0]] / info.fps:.6f} ({r.size} frames off, max {np.nanmax(dev[r]):.6f} s)"))
    if "task_index" in cols and run.tasks is not None:
        col = cols["task_index"]
        n_tasks = len(run.tasks)
        bad = np.flatnonzero((col < 0) | (col >= n_tasks))
        per_episode(bad, "task_index", lambda k, r: (
            f"task_index {sorted(set(col[r].tolist()))[:5]} not in meta/tasks.parquet ({n_tasks} tasks) in {r.size} frames"))
        # The episode's `tasks` list must be the set of tasks its frames carry.
        pairs = np.unique(np.stack([row_ep, col]), axis=1)
        used: dict[int, set[str]] = defaultdict(set)
        for k, t in pairs.T.tolist():
            if 0 <= t < n_tasks:
                used[k].add(run.tasks[t])
        with_bad_index = set(np.unique(row_ep[bad]).tolist())
        for k in range(n_eps):
            if k not in with_bad_index and set(eps.tasks[k]) != used[k]:
                run.error(run.episode_file_of(k), int(eps.index[k]),
                           f"tasks {sorted(eps.tasks[k])} but its frames carry tasks {sorted(used[k])}",
                           check="tasks_match")
