"""Readers' side of `versions`: the dataset root a reader opens when it is given a dataset's prefix.

Every reader follows the pointer once, when it opens a root, and reads every later file under the
version it found: a publish that moves the pointer meanwhile never mixes two versions into one read.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lerobot_assets.format.versions import POINTER, follow_pointer, version_number


@dataclass(frozen=True)
class Followed:
    """Where a root given by a user leads: `path` is what is read (the version's path under a pointer,
    else the root itself); `version` is None for a plain dataset root."""

    path: str
    version: str | None


def _is_local_fs(fs: Any) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return fs is None or isinstance(fs, LocalFileSystem)


def follow(fs: Any, path: str) -> Followed:
    """The dataset root published under `path` (an fsspec filesystem's path; `fs=None` for a local one).

    Raises versions.PointerError (naming the pointer file) for a pointer that cannot be followed.
    """
    try:
        followed = follow_pointer(fs, path)
    except PermissionError:
        # A bucket readable without s3:ListBucket (public buckets read anonymously) answers 403, not
        # 404, for an object that does not exist: a plain root must keep reading as it did. A real
        # pointer we may not read leaves nothing readable at the prefix either, and that read fails.
        if _is_local_fs(fs):
            raise
        return Followed(path, None)
    if followed == path:
        return Followed(path, None)
    return Followed(followed, posixpath.basename(followed.rstrip("/")) if fs is not None else os.path.basename(followed))


def follow_local(root: Path | str) -> tuple[Path, str | None]:
    """`follow` for a local directory: (the directory read, the version followed or None)."""
    followed = follow(None, str(root))
    return (Path(followed.path) if followed.version is not None else Path(root)), followed.version


def _holds_pointer(fs: Any, path: str) -> bool:
    if fs is None:
        return os.path.isfile(os.path.join(path, POINTER))
    try:
        return bool(fs.isfile(posixpath.join(path, POINTER)))
    except PermissionError:
        return False


def published_prefix(fs: Any, path: str) -> str | None:
    """The published prefix that `path` is, or is a version of (`<prefix>/v-<n>` beside a pointer);
    None for any other path. `fs=None` for a local path. For refusing to write into published data."""
    path = path.rstrip("/") or path
    if _holds_pointer(fs, path):
        return path
    split = os.path.split if fs is None else posixpath.split
    parent, name = split(path)
    if version_number(name) is not None and parent and _holds_pointer(fs, parent):
        return parent
    return None




@dataclass
class LocalCopy:
    path: Path  # the dataset on local disk
    label: str  # what to call it: the root as given, or the URL of the version read
    remote_sizes: dict[str, int]  # files left on the remote (videos=False): relative path -> bytes


@contextmanager
def local_copy(root: str | Path, *, videos: bool = True, storage_options: dict[str, Any] | None = None) -> Iterator[LocalCopy]:
    """The dataset at `root` on local disk for the block.

    A local root is used in place. A URL (s3://...) is followed to its published version, which is
    downloaded to a temporary directory (dotfiles, a publisher's records, left out; `videos=False`
    leaves the videos on the remote and records their sizes): for checks that read every byte anyway
    (`validate` decodes the videos) and summaries (`info`)."""
    text = str(root)
    if isinstance(root, Path) or "://" not in text or text.startswith("file://"):
        yield LocalCopy(Path(text.removeprefix("file://")), text, {})
        return
    import fsspec.core

    fs, path = fsspec.core.url_to_fs(text, **(storage_options or {}))
    src = follow(fs, path.rstrip("/")).path
    sizes = {
        posixpath.relpath(name, src): int(entry.get("size") or 0)
        for name, entry in fs.find(src, detail=True).items()
        if entry.get("type") == "file" and not any(p.startswith(".") for p in posixpath.relpath(name, src).split("/"))
    }
    if not sizes:
        raise FileNotFoundError(f"{text}: nothing there (no dataset, no pointer)")
    fetch = [rel for rel in sizes if videos or not rel.startswith("videos/")]
    with tempfile.TemporaryDirectory(prefix="lerobot-assets-") as tmp:
        targets = [os.path.join(tmp, rel) for rel in fetch]
        for target in targets:
            os.makedirs(os.path.dirname(target), exist_ok=True)
        if fetch:
            fs.get([posixpath.join(src, rel) for rel in fetch], targets)
        left = {rel: n for rel, n in sizes.items() if rel not in set(fetch)}
        yield LocalCopy(Path(tmp), fs.unstrip_protocol(src), left)
