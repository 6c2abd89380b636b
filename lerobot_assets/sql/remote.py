"""Where a path or URL lives: fsspec filesystems for local paths and remote roots (s3://, ...).

Remote roots go through fsspec: we glob with the fsspec filesystem in Python and hand explicit file lists
to DuckDB / pyarrow, so no DuckDB extension is ever needed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import fsspec
import pyarrow.fs as pafs
from fsspec.implementations.local import LocalFileSystem, make_path_posix

from lerobot_assets.sql.errors import SourceError


def parse_storage_options(items: Iterable[str]) -> dict[str, Any]:
    """`key=value` pairs (CLI `--storage-option`) → fsspec kwargs.

    Values are JSON when they parse as JSON (`anon=true`, `max_concurrency=4`), strings otherwise; a dotted
    key nests (`client_kwargs.region_name=us-east-1`).
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SourceError(f"storage option {item!r} is not key=value")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def filesystem_for(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and fs-native path for a local path or URL.

    For s3:// an S3-compatible endpoint comes from `storage_options['endpoint_url']`, else the env var
    `AWS_ENDPOINT_URL` (botocore's own name) or `FSSPEC_S3_ENDPOINT_URL` (fsspec's config convention).
    """
    options = dict(storage_options or {})
    if _is_local_path(url):
        # Taken literally: fsspec would read `::` in a local path as a URL chain (`/data/x::y/ds` is
        # `/data/x`), so a directory named that way would silently stand for another one.
        try:
            fs = fsspec.filesystem("file", **options)
        except (ImportError, ValueError, TypeError) as exc:
            raise SourceError(f"cannot open {url!r}: {exc}") from exc
        path = make_path_posix(url)
        return fs, path.rstrip("/") or path
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol in ("s3", "s3a") and "endpoint_url" not in options and "endpoint_url" not in options.get("client_kwargs", {}):
        endpoint = os.environ.get("FSSPEC_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError, TypeError) as exc:
        raise SourceError(f"cannot open {url!r}: {exc}") from exc
    return fs, path.rstrip("/") or path


# A URL (`s3://...`, `file://...`) or an fsspec chain (`simplecache::s3://...`) starts with a protocol name.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(://|::)")


def _is_local_path(url: str) -> bool:
    """A plain local path, not a URL or chain: absolute, or relative without a protocol prefix."""
    return url.startswith(("/", "~", ".")) or not _URL.match(url)


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def arrow_filesystem(fs: fsspec.AbstractFileSystem) -> pafs.FileSystem:
    """The pyarrow view of an fsspec filesystem: pyarrow's own for local paths, so reads skip Python."""
    return pafs.LocalFileSystem() if is_local(fs) else pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def register_filesystem(con: duckdb.DuckDBPyConnection, fs: fsspec.AbstractFileSystem) -> None:
    try:
        con.register_filesystem(fs)
    except (duckdb.Error, ValueError) as exc:
        # Registering the same protocol twice on one connection is an error; the first one serves.
        if "already" not in str(exc).lower():
            raise
