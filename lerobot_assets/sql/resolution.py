"""Resolution: which files each source has in each dataset, with what identifies each file's version."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lerobot_assets.sql.discovery import DatasetRoot
from lerobot_assets.sql.errors import SourceError
from lerobot_assets.sql.project import SourceTable


@dataclass
class ResolvedSource:
    table: SourceTable
    files: dict[str, list[str]]  # dataset name → fs-native paths, sorted (chunk/file order)
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    # dataset name → path → what identifies this version of the file (see file_fingerprint)
    fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)

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


def resolve_source(table: SourceTable, datasets: Sequence[DatasetRoot]) -> ResolvedSource:
    files: dict[str, list[str]] = {}
    sizes: dict[str, dict[str, int]] = {}
    fingerprints: dict[str, dict[str, str]] = {}
    for root in datasets:
        matched: dict[str, Mapping[str, Any]] = {}
        for pattern in table.config.glob:
            found = root.fs.glob(root.join(pattern), detail=True)
            for path, info in found.items():
                if info.get("type", "file") == "file":
                    matched[path] = info
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
