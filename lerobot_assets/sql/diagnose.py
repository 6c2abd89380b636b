"""Naming the file behind a failed query: DuckDB names a broken footer's file, but not a broken page's."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.sql.discovery import DatasetRoot
from lerobot_assets.sql.remote import arrow_filesystem


def find_unreadable_parquet(files: Iterable[tuple[DatasetRoot, str]], budget_s: float = 30.0) -> str | None:
    """Decode files fully until one fails; return "<url>: <error>" for it, or None.

    Used only after a query failed: DuckDB names the file for a broken footer but not for a broken page
    ("don't know what type"), and the person needs the file. Bounded by `budget_s`.
    """
    deadline = time.monotonic() + budget_s
    for root, path in files:
        if time.monotonic() > deadline:
            return None
        try:
            with arrow_filesystem(root.fs).open_input_file(path) as handle:
                pq.ParquetFile(handle).read()
        except (OSError, pa.ArrowException, ValueError) as exc:
            return f"{root.file_url(path)}: {' '.join(str(exc).split())}"
    return None


# Errors about the SQL itself; anything else may come from reading a broken file.
_SQL_ERRORS = (
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.ConversionException,
    duckdb.PermissionException,
    duckdb.OutOfRangeException,
    duckdb.NotImplementedException,
)


def with_culprit(exc: duckdb.Error, files: Mapping[str, tuple[DatasetRoot, str]]) -> str:
    """DuckDB's message, plus the unreadable parquet file when the failure may have come from one."""
    message = str(exc)
    if isinstance(exc, _SQL_ERRORS) or any(url in message for url in files):
        return message
    culprit = find_unreadable_parquet(files.values())
    return f"{message}\n(unreadable parquet file {culprit})" if culprit else message
