"""Resolution: which files each source has in each dataset, with what identifies each file's version."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from lerobot_assets.sql.discovery import DatasetRoot
from lerobot_assets.sql.errors import SourceError
from lerobot_assets.sql.project import SourceTable
from lerobot_assets.sql.quoting import GLOB_CHARS


@dataclass
class ResolvedSource:
    table: SourceTable
    files: dict[str, list[str]]  # dataset name → fs-native paths, sorted (chunk/file order)
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    # dataset name → path → what identifies this version of the file (see file_fingerprint)
    fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)
    # What else the source's rows are made of, for its fingerprint (the skipped datasets and why)
    extra: list[Any] = field(default_factory=list)

    @property
    def n_files(self) -> int:
        return sum(len(v) for v in self.files.values())

    def subset(self, keep: Callable[[str, str], bool]) -> ResolvedSource:
        """The same source over only the (dataset, path) pairs `keep` accepts."""
        files = {d: [p for p in paths if keep(d, p)] for d, paths in self.files.items()}
        files = {d: paths for d, paths in files.items() if paths}
        return ResolvedSource(
            self.table,
            files,
            {d: {p: self.sizes[d][p] for p in paths} for d, paths in files.items()},
            {d: {p: self.fingerprints[d][p] for p in paths} for d, paths in files.items()},
        )


def file_fingerprint(info: Mapping[str, Any]) -> str:
    """What changes whenever a file's content may have: size plus the filesystem's version marks.

    Locally that is mtime and inode (our writers replace files by rename, so a rewrite gets a new
    inode even within one mtime tick); on object stores the ETag or last-modified time.
    """
    marks = [str(info.get("size"))]
    for key in ("mtime", "ino", "ETag", "etag", "LastModified", "last_modified", "updated", "generation", "md5Hash"):
        value = info.get(key)
        if value is not None:
            marks.append(f"{key}={value}")
    return "|".join(marks)


# Listings and small files under published versions, which never change (DatasetRoot.immutable): each
# SQL step of a run re-resolves every source, and on object storage that was most of its requests.
_REMEMBERED: dict[tuple[str, ...], Any] = {}
_REMEMBERED_MAX = 20_000


def remembered(root: DatasetRoot, key: tuple[str, ...], compute: Callable[[], Any]) -> Any:
    """`compute()`, remembered per process for an immutable root (computed each time otherwise)."""
    if not root.immutable:
        return compute()
    full = (type(root.fs).__name__, json.dumps(getattr(root.fs, "storage_options", {}), sort_keys=True, default=str), root.path, *key)
    if full not in _REMEMBERED:
        if len(_REMEMBERED) >= _REMEMBERED_MAX:
            _REMEMBERED.clear()
        _REMEMBERED[full] = compute()
    return _REMEMBERED[full]


def match_files(root: DatasetRoot, pattern: str) -> dict[str, Mapping[str, Any]]:
    """`_match_files`, remembered for a published version."""
    return dict(remembered(root, ("match", pattern), lambda: _match_files(root, pattern)))


def _match_files(root: DatasetRoot, pattern: str) -> dict[str, Mapping[str, Any]]:
    """The files under `root` that `pattern` (a glob relative to the root, from sources.yml) matches,
    with the filesystem's info of each.

    Only the pattern is a pattern: the root's path is taken literally whatever it holds. (Globbing the
    joined string made `ds[12]` a character class that read the files of `ds1`.) The pattern's literal
    leading directories are joined to the root, the directory below is listed as fsspec's glob would
    list it (`find` to the pattern's depth, hidden names included), and each path component is matched
    against its component of the pattern.
    """
    parts = pattern.strip("/").split("/")
    n_literal = next((i for i, part in enumerate(parts) if GLOB_CHARS.intersection(part)), len(parts))
    fs = root.fs
    if n_literal == len(parts):
        path = root.join("/".join(parts))
        try:
            info = fs.info(path)
        except FileNotFoundError:
            return {}
        return {path: info} if info.get("type", "file") == "file" else {}
    base = root.join("/".join(parts[:n_literal])) if n_literal else root.path
    rest = parts[n_literal:]
    found = fs.find(base, maxdepth=len(rest), withdirs=False, detail=True)
    prefix = base.rstrip("/") + "/"
    out: dict[str, Mapping[str, Any]] = {}
    for path, info in found.items():
        if info.get("type", "file") != "file" or not path.startswith(prefix):
            continue
        names = path[len(prefix) :].split("/")
        if len(names) == len(rest) and all(fnmatchcase(n, p) for n, p in zip(names, rest)):
            out[path] = info
    return out


def resolve_source(table: SourceTable, datasets: Sequence[DatasetRoot]) -> ResolvedSource:
    files: dict[str, list[str]] = {}
    sizes: dict[str, dict[str, int]] = {}
    fingerprints: dict[str, dict[str, str]] = {}
    for root in datasets:
        matched: dict[str, Mapping[str, Any]] = {}
        for pattern in table.config.glob:
            try:
                matched.update(match_files(root, pattern))
            except OSError as exc:
                raise SourceError(f"{root.url}: cannot list the files of source {table.name!r}: {exc}") from exc
        if not matched:
            if table.config.required:
                raise SourceError(
                    f"{root.url}: no file matches {table.config.glob} for required source {table.name!r}"
                )
            continue
        files[root.name] = sorted(matched)
        sizes[root.name] = {p: int(info.get("size") or 0) for p, info in matched.items()}
        fingerprints[root.name] = {p: file_fingerprint(info) for p, info in matched.items()}
    return ResolvedSource(table, files, sizes, fingerprints)
