"""meta/tasks.parquet: `task_index:int64, task:string` with pandas metadata indexing by task."""

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.format.atomic import write_parquet_atomic
from lerobot_assets.format.files import MAX_PARQUET_BYTES, file_problem, flat, open_metadata
from lerobot_assets.format.layout import TASKS_PATH

if TYPE_CHECKING:  # fsspec is only needed for remote roots
    from fsspec import AbstractFileSystem


def _pandas_metadata() -> bytes:
    # What pandas writes for a frame indexed by `task`; pd.read_parquet then restores that index.
    meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.3.3",
    }
    return json.dumps(meta).encode()


def tasks_table(tasks: list[str]) -> pa.Table:
    schema = pa.schema(
        [pa.field("task_index", pa.int64()), pa.field("task", pa.string())],
        metadata={"pandas": _pandas_metadata()},
    )
    return pa.table({"task_index": list(range(len(tasks))), "task": list(tasks)}, schema=schema)


def write_tasks(root: Path, tasks: list[str]) -> None:
    """Tasks in index order (task i has task_index i)."""
    if len(set(tasks)) != len(tasks):
        raise ValueError("duplicate task strings in the task table")
    write_parquet_atomic(Path(root) / TASKS_PATH, tasks_table(tasks))


def read_tasks(root: Path | str, fs: "AbstractFileSystem | None" = None) -> list[str]:
    """Tasks in task_index order; with `fs`, `root` is a path on that fsspec filesystem.

    No tasks file means no tasks ([]); a tasks file that is not a regular file, is unreadable or
    holds other columns is a ValueError naming it.
    """
    path: Path | str = Path(root) / TASKS_PATH if fs is None else f"{str(root).rstrip('/')}/{TASKS_PATH}"
    if file_problem(path, fs=fs) == "is missing":
        return []
    try:
        with open_metadata(path, MAX_PARQUET_BYTES, fs) as f:
            t = pq.read_table(f)
    except FileNotFoundError:
        return []  # removed since it was looked at: as if it never was
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: unreadable tasks parquet: {flat(e)}") from None
    if "task_index" not in t.column_names or "task" not in t.column_names:
        raise ValueError(f"{path}: columns are {t.column_names}; expected task_index and task")
    try:
        idx_col = t.column("task_index").cast(pa.int64())
        task_col = t.column("task").cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise ValueError(f"{path}: task_index must be integers and task strings ({flat(e)})") from None
    if idx_col.null_count or task_col.null_count:
        raise ValueError(f"{path}: task_index or task has null values")
    pairs = sorted(zip(idx_col.to_pylist(), task_col.to_pylist()))
    idx = [i for i, _ in pairs]
    if idx != list(range(len(idx))):
        raise ValueError(f"{path}: task_index values {idx[:10]} are not 0..{len(idx) - 1}")
    return [s for _, s in pairs]
