"""Dataset versions on object storage, and the pointer that names the published one.

Object stores have no rename, so a directory cannot be swapped into place the way `atomic.replace_dir`
does on a local disk. A dataset published to object storage instead lives at

    <prefix>/v-000001/...          an older version (kept for readers still reading it)
    <prefix>/v-000002/...          the current version: a complete LeRobot v3.0 dataset
    <prefix>/current.json          the pointer: {"version": "v-000002", ...}, written last

Every file of a version is uploaded before the pointer is written (one PUT, atomic on S3 and friends),
so a reader that follows the pointer never sees a half-published dataset. Inside a version
`meta/info.json` is uploaded last, so a plain reader pointed at a `v-<n>/` prefix either finds no
info.json (not a dataset yet) or a complete one. A stable alias such as `latest/` is not possible: it
would be rewritten object by object, and a reader could see half of the old version and half of the new.

This module only reads; publishing is in `lerobot_assets.home.remote`.
"""

import json
import os
import posixpath
import re
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

POINTER = "current.json"
POINTER_FORMAT: Literal["lerobot-assets/pointer@1"] = "lerobot-assets/pointer@1"
_VERSION = re.compile(r"^v-(\d{6,})$")


class PointerError(ValueError):
    """A pointer file that cannot be followed; the message names the file."""


class Pointer(BaseModel):
    format: Literal["lerobot-assets/pointer@1"] = POINTER_FORMAT
    version: str  # v-<n>: the directory beside the pointer holding the published dataset
    previous: str | None = None  # the version this one replaced (kept for readers mid-read)
    files: int = 0
    bytes: int = 0
    published_at: str = ""
    # Relative symlinks of the published directory (e.g. a checkpoint's `last`): path -> target.
    # Object stores have none; a plain reader sees the target directory only.
    links: dict[str, str] = {}


def version_name(n: int) -> str:
    return f"v-{n:06d}"


def version_number(name: str) -> int | None:
    """n of a `v-<n>` directory name; None for any other name."""
    m = _VERSION.match(name)
    return int(m.group(1)) if m else None


def parse_pointer(raw: bytes, where: str) -> Pointer:
    try:
        pointer = Pointer.model_validate(json.loads(raw))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PointerError(f"{where}: not JSON ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise PointerError(f"{where}: {field}: {first['msg']}") from None
    # The version is joined onto the dataset's prefix: it must name a sibling directory, never a path
    # that leaves the prefix.
    for name in (pointer.version, pointer.previous):
        if name is not None and version_number(name) is None:
            raise PointerError(f"{where}: version {name!r} is not of the form v-<6 or more digits>")
    for link, target in pointer.links.items():
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link), target))
        if posixpath.isabs(link) or posixpath.isabs(target) or link.startswith("..") or resolved.startswith(".."):
            raise PointerError(f"{where}: link {link!r} -> {target!r} leaves the dataset")
    return pointer


def read_pointer(fs: Any, prefix: str) -> Pointer | None:
    """The pointer under `prefix` (an fsspec filesystem's path), None when there is none.

    `fs=None` reads a local path."""
    where = posixpath.join(prefix, POINTER)
    try:
        if fs is None:
            with open(os.path.join(prefix, POINTER), "rb") as f:
                raw = f.read()
        else:
            raw = fs.cat_file(where)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return parse_pointer(raw, where if fs is not None else os.path.join(prefix, POINTER))


def follow_pointer(fs: Any, path: str) -> str:
    """The path of the dataset published under `path`: `path/<version>` when `path` holds a pointer,
    else `path` itself (a plain dataset root). `fs=None` for a local path."""
    pointer = read_pointer(fs, path)
    if pointer is None:
        return path
    return posixpath.join(path.rstrip("/"), pointer.version) if fs is not None else os.path.join(path, pointer.version)
