"""Atomic file writes: every write lands in a sibling temp file, then os.replace()s the target.

A reader (or a crash) therefore sees either the old or the new file, never a partial one.
"""

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def temp_sibling(path: Path, suffix: str = "") -> Path:
    """A fresh temp path in the target's directory (same filesystem, so rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    return Path(name)


def write_atomic(path: Path, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Call writer(tmp) and rename tmp over path; the temp file is removed if writer fails."""
    path = Path(path)
    tmp = temp_sibling(path, suffix)
    try:
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    def _w(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=4, ensure_ascii=False)

    write_atomic(Path(path), _w)


def write_parquet(path: Path, tables: list[pa.Table] | pa.Table) -> None:
    """Write tables as consecutive row groups (one per table), snappy, like LeRobot's writer."""
    parts = [tables] if isinstance(tables, pa.Table) else list(tables)
    if not parts:
        raise ValueError(f"no rows to write to {path}")
    schema = parts[0].schema
    with pq.ParquetWriter(path, schema, compression="snappy", use_dictionary=True) as w:
        for t in parts:
            # A table over row_group_size would be split; keep one row group per part.
            w.write_table(t.cast(schema), row_group_size=max(1, t.num_rows))


def write_parquet_atomic(path: Path, tables: list[pa.Table] | pa.Table) -> None:
    """write_parquet to a temp sibling, then rename over path."""
    write_atomic(Path(path), lambda tmp: write_parquet(tmp, tables))


def replace_dir(new: Path, final: Path) -> None:
    """Put directory `new` at `final`, replacing what is there; a reader sees old or new, whole."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        old = final.parent / f".old-{final.name}-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, final)
