"""Finding LeRobot v3 dataset roots: every directory holding meta/info.json under a home, plus explicit roots.

A dataset published to object storage (format.versions) is one directory holding the pointer
`current.json` beside its `v-<n>/` versions: it is one dataset named by that directory, read at the
version the pointer names when it is discovered; the versions themselves are never listed.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import fsspec

from lerobot_assets.format.published import follow
from lerobot_assets.format.versions import POINTER, PointerError, version_number
from lerobot_assets.sql.errors import SourceError
from lerobot_assets.sql.remote import filesystem_for, is_local

INFO_JSON = "meta/info.json"
# Directories never searched for datasets: our own catalog, VCS/tool folders.
_SKIP_DIRS = frozenset({"catalog", "__pycache__", "node_modules"})
_MAX_DISCOVERY_DEPTH = 8
# A home with both of these is a lerobot-assets data home (home.layout), whose other top-level folders
# below hold raw recordings, validation records, previews, checkpoints and instance state, never a dataset.
_HOME_MARKERS = frozenset({"sessions", "datasets"})
_HOME_ONLY_DIRS = frozenset({"raw", "inbox", "imports", "checks", "previews", "training", "evaluations", "dagster"})


@dataclass(frozen=True)
class DatasetRoot:
    """One LeRobot v3 dataset root (a directory holding meta/info.json)."""

    name: str  # the `dataset` column: path relative to the home, or the last component of a --root
    path: str  # fs-native path
    fs: fsspec.AbstractFileSystem = field(compare=False, repr=False)
    # Named by the user (a --root), not found under a home: an unreadable file in it is an error, where a
    # dataset found under a home is skipped with a warning so that the rest of the home still answers.
    explicit: bool = field(default=False, compare=False)
    # Why this dataset cannot be read at all (a published prefix whose pointer cannot be followed, named
    # in the message): binding skips it as it skips a dataset with an unreadable file.
    problem: str | None = field(default=None, compare=False)
    # A published version (followed from a pointer): never changes, so what is listed or read under it
    # may be remembered for the life of the process (sql.resolution.remembered).
    immutable: bool = field(default=False, compare=False)

    @property
    def url(self) -> str:
        return self.path if is_local(self.fs) else self.fs.unstrip_protocol(self.path)

    def join(self, rel: str) -> str:
        return posixpath.join(self.path, rel)

    def file_url(self, path: str) -> str:
        """What DuckDB's read_parquet needs: a local path, or a protocol URL served by register_filesystem."""
        return path if is_local(self.fs) else self.fs.unstrip_protocol(path)


def discover_datasets(
    home: str | os.PathLike[str] | None,
    roots: Sequence[str | os.PathLike[str]] = (),
    storage_options: Mapping[str, Any] | None = None,
) -> list[DatasetRoot]:
    """Every dataset under `home` (at any depth) plus the explicit `roots`, sorted by name.

    Discovery stops descending at a dataset root, so data/ and videos/ trees are never listed.
    """
    found: dict[str, DatasetRoot] = {}
    by_path: dict[tuple[str, str], str] = {}

    def add(root: DatasetRoot) -> None:
        key = (type(root.fs).__name__, root.path)
        if key in by_path:
            # The same root reached twice (e.g. --root inside --home): one dataset, named as the home
            # names it, and explicit if it was also given as a root.
            if root.explicit:
                found[by_path[key]] = replace(found[by_path[key]], explicit=True)
            return
        if root.name in found:
            raise SourceError(
                f"two dataset roots are both named {root.name!r}: {found[root.name].url} and {root.url}; "
                "rename one or pass it under a different parent"
            )
        by_path[key] = root.name
        found[root.name] = root

    if home is not None:
        fs, home_path = filesystem_for(os.fspath(home), storage_options)
        if fs.isdir(home_path):
            for path, published in _walk_for_roots(fs, home_path):
                rel = posixpath.relpath(path, home_path) if path != home_path else posixpath.basename(home_path)
                if not published:
                    add(DatasetRoot(name=rel, path=path, fs=fs))
                    continue
                try:
                    version = follow(fs, path).path
                except PointerError as exc:
                    add(DatasetRoot(name=rel, path=path, fs=fs, problem=str(exc)))
                else:
                    add(DatasetRoot(name=rel, path=version, fs=fs, immutable=True))
    for item in roots:
        fs, prefix = filesystem_for(os.fspath(item), storage_options)
        try:
            followed = follow(fs, prefix)
        except PointerError as exc:
            raise SourceError(str(exc)) from None
        path = followed.path
        if not fs.isfile(posixpath.join(path, INFO_JSON)):
            if followed.version is not None:
                raise SourceError(f"{item}: its published version {followed.version} is not a LeRobot dataset root (no {INFO_JSON})")
            raise SourceError(f"{item}: not a LeRobot dataset root (no {INFO_JSON})")
        # A published prefix is named by the prefix, as under a home: the version is where it is read now.
        add(DatasetRoot(
            name=posixpath.basename(prefix.rstrip("/")) or prefix, path=path, fs=fs, explicit=True,
            immutable=followed.version is not None,
        ))
    return [found[name] for name in sorted(found)]


def check_home(
    home: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None, *, create: bool = False, hint: str = ""
) -> None:
    """Raise SourceError unless `home` is an existing directory; `create` makes a missing one.

    A home named by a person (or defaulted) that does not exist is a typo far more often than an empty
    home: answering with no rows, or starting a new empty catalog there, would hide it. `hint` is added
    to the message (the CLI names its flag for creating one).
    """
    fs, path = filesystem_for(os.fspath(home), storage_options)
    if fs.isdir(path):
        return
    if fs.exists(path):
        raise SourceError(f"data home {home} is not a directory")
    if create:
        fs.makedirs(path, exist_ok=True)
        return
    raise SourceError(f"data home {home} does not exist{hint}")


def _walk_for_roots(fs: fsspec.AbstractFileSystem, top: str) -> list[tuple[str, bool]]:
    """(path, published) of every dataset under `top`: a directory holding meta/info.json, or a published
    prefix (a directory holding the pointer, whose versions are never datasets of their own)."""
    roots: list[tuple[str, bool]] = []
    frontier = [(top, 0)]
    while frontier:
        path, depth = frontier.pop()
        try:
            # Listed afresh: a listing cached by an earlier discovery in this process would hide a dataset
            # (or a first pointer) published since.
            entries: list[dict[str, Any]] | None = fs.ls(path, detail=True, refresh=True)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            entries = None
        names = {} if entries is None else {posixpath.basename(e["name"].rstrip("/")): e for e in entries}
        # The pointer wins over a meta/info.json beside it, as it does for every other reader (follow_pointer).
        if names.get(POINTER, {}).get("type") == "file":
            roots.append((path, True))
            continue  # its v-<n>/ versions (old, current and unpublished ones) are one dataset
        # The listing shows whether meta/ is there at all: no request for info.json in a directory without one.
        if (entries is None or "meta" in names) and fs.isfile(posixpath.join(path, INFO_JSON)):
            roots.append((path, False))
            continue  # a dataset root: its subtrees are shards, not datasets
        if entries is None or depth >= _MAX_DISCOVERY_DEPTH:
            continue
        # The top of a lerobot-assets data home: its folders of raw episodes, records, previews and
        # checkpoints hold no dataset (on object storage, listing them cost most of a SQL step).
        skip = _SKIP_DIRS | (_HOME_ONLY_DIRS if depth == 0 and _HOME_MARKERS.issubset(names) else frozenset())
        for name, entry in names.items():
            if entry.get("type") != "directory" or name.startswith((".", "_")) or name in skip:
                continue
            # A version directory is only ever read through its prefix's pointer: one without a pointer
            # beside it is a publication still in progress (or killed), not a dataset.
            if version_number(name) is not None:
                continue
            frontier.append((entry["name"].rstrip("/"), depth + 1))
    return sorted(roots)


def remote_filesystems(datasets: Sequence[DatasetRoot]) -> list[fsspec.AbstractFileSystem]:
    """The distinct non-local filesystems of these roots: DuckDB must have them registered for views
    over remote files to be readable."""
    seen: dict[int, fsspec.AbstractFileSystem] = {}
    for root in datasets:
        if not is_local(root.fs):
            seen.setdefault(id(root.fs), root.fs)
    return list(seen.values())
