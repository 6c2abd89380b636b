"""meta/tasks.parquet: `task_index:int64, task:string` with pandas metadata indexing by task."""

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.format.atomic import write_parquet_atomic
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
    """Tasks in task_index order; with `fs`, `root` is a path on that fsspec filesystem."""
    path: Path | str
    if fs is None:
        path = Path(root) / TASKS_PATH
        if not path.is_file():
            return []
        t = pq.read_table(path, columns=["task_index", "task"])
    else:
        path = f"{str(root).rstrip('/')}/{TASKS_PATH}"
        if not fs.isfile(path):
            return []
        with fs.open(path, "rb") as f:
            t = pq.read_table(f, columns=["task_index", "task"])
    pairs = sorted(zip(t.column("task_index").to_pylist(), t.column("task").to_pylist()))
    idx = [i for i, _ in pairs]
    if idx != list(range(len(idx))):
        raise ValueError(f"{path}: task_index values {idx} are not 0..{len(idx) - 1}")
    return [s for _, s in pairs]
