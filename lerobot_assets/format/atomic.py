"""Atomic file writes: every write lands in a sibling temp file, then os.replace()s the target.

A reader (or a crash) therefore sees either the old or the new file, never a partial one.
"""

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_TEMP_ATTEMPTS = 100


def _candidates(parent: Path, prefix: str, suffix: str) -> Iterator[Path]:
    for _ in range(_TEMP_ATTEMPTS):
        yield parent / f"{prefix}{secrets.token_hex(4)}{suffix}"


def temp_sibling(path: Path, suffix: str = "") -> Path:
    """A fresh, empty temp file in the target's directory (same filesystem, so rename is atomic).

    Created with mode 0666 less the umask, like any file the user's process writes: mkstemp's
    0600 would make every published file private to its writer (other users and services could
    not read the datasets).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for candidate in _candidates(path.parent, f".{path.name}.", f".tmp{suffix}"):
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"{path.parent}: no free temp name for {path.name} after {_TEMP_ATTEMPTS} tries")


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A fresh directory `parent/<prefix><random>`, mode 0777 less the umask (mkdtemp's 0700 would
    make a dataset built in it and swapped into place private to its writer)."""
    parent.mkdir(parents=True, exist_ok=True)
    for candidate in _candidates(parent, prefix, ""):
        try:
            candidate.mkdir(0o777)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{parent}: no free temp directory name {prefix}* after {_TEMP_ATTEMPTS} tries")


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
