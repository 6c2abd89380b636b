"""Where each episode's video segment lives, read from a dataset's `meta/` (local or fsspec).

This is the one place the byte index reads dataset metadata, all of it through the format layer's
safe readers (regular files under a size cap). Shards are listed by the format layer
(`episode_files`, local or fsspec); only the video columns of each shard are read. `info.json` must
exist (a root without it is not a dataset), but is read loosely (just `video_path`) so that
minimal test roots without features work. Camera keys
and the template are checked (`format.names`, `format.templates`) before any path is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from lerobot_assets.format.episodes import episode_files, read_episodes_file, read_episodes_schema
from lerobot_assets.format.files import read_metadata_object
from lerobot_assets.format.layout import INFO_PATH, VIDEO_PATH
from lerobot_assets.format.names import name_problem
from lerobot_assets.format.published import follow, published_prefix
from lerobot_assets.format.templates import format_path, template_problem
from lerobot_assets.format.versions import POINTER

DEFAULT_VIDEO_PATH = VIDEO_PATH
_VIDEO_COLUMN = re.compile(r"^videos/(?P<key>.+)/from_timestamp$")


@dataclass(frozen=True)
class SegmentSpec:
    """One episode's span in one camera's MP4, as the dataset metadata states it."""

    video_key: str
    chunk_index: int
    file_index: int
    episode_index: int
    from_timestamp: float
    to_timestamp: float
    length: int | None  # frames in the episode per the metadata (None when the column is absent)
    path: str  # relative to the dataset root

    @property
    def file_key(self) -> tuple[str, int, int]:
        return (self.video_key, self.chunk_index, self.file_index)


def locate_root(
    root: str | Path, *, fs: AbstractFileSystem | None = None, storage_options: dict | None = None
) -> tuple[AbstractFileSystem, str]:
    """(filesystem, path without protocol) for a local path or any fsspec URL, taken literally (no
    pointer followed: see resolve_root)."""
    if fs is not None:
        return fs, str(root).rstrip("/")
    if isinstance(root, Path) or "://" not in str(root):
        local = fsspec.filesystem("file")
        return local, str(Path(root).resolve())
    fs, path = fsspec.core.url_to_fs(str(root), **(storage_options or {}))
    return fs, path.rstrip("/")


def resolve_root(
    root: str | Path, *, fs: AbstractFileSystem | None = None, storage_options: dict | None = None
) -> tuple[AbstractFileSystem, str]:
    """(filesystem, path without protocol) of the dataset to read at `root`: a local path or any fsspec
    URL, or a dataset's published prefix, whose pointer is followed to the current version (once: the
    path returned is the version's). Raises versions.PointerError naming a pointer that cannot be followed."""
    fs, path = locate_root(root, fs=fs, storage_options=storage_options)
    return fs, follow(fs, path).path


class PublishedDatasetError(ValueError):
    """A write into a published dataset (its prefix or one of its versions), which are immutable."""


def refuse_published(fs: AbstractFileSystem, path: str, what: str) -> None:
    """Raise PublishedDatasetError, naming the prefix, when `path` is a published prefix or a version
    of one: writing `what` there would change a version readers may be reading."""
    prefix = published_prefix(fs, path)
    if prefix is None:
        return
    shown = prefix if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(prefix)
    raise PublishedDatasetError(
        f"{shown} is a published dataset (versions beside {POINTER}; a version is never changed once "
        f"written): {what} in the dataset before it is published, or in a local copy"
    )


def read_info_loosely(fs: AbstractFileSystem, root: str) -> dict[str, Any]:
    """`<root>/meta/info.json` as a JSON object: FileNotFoundError when absent (not a dataset
    root), ValueError naming the file when it is not a regular file, too large, or not an object."""
    path = f"{root}/{INFO_PATH}"
    try:
        return read_metadata_object(path, fs)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not a LeRobot dataset root (meta/info.json is missing)") from None


def video_path_template(fs: AbstractFileSystem, root: str, info: dict[str, Any] | None = None) -> str:
    """info.json's `video_path` (LeRobot's default when absent or null), checked to be one we honour."""
    info = read_info_loosely(fs, root) if info is None else info
    template = info.get("video_path") or DEFAULT_VIDEO_PATH
    problem = template_problem(template, "video")
    if problem is not None:
        raise ValueError(f"{root}/{INFO_PATH}: video_path {template!r} {problem}")
    return template


def read_segment_specs(fs: AbstractFileSystem, root: str) -> list[SegmentSpec]:
    """Every (camera, episode) segment listed in `meta/episodes/chunk-*/file-*.parquet`.

    Raises FileNotFoundError (no info.json, no episodes shard) or ValueError naming the file for
    metadata that cannot be read or names paths we do not honour; never builds a path outside
    the root.
    """
    info = read_info_loosely(fs, root)
    template = video_path_template(fs, root, info)
    files = episode_files(root, fs)
    if not files:
        raise FileNotFoundError(f"no episodes parquet under {root}/meta/episodes")
    specs: list[SegmentSpec] = []
    for path in files:
        names = read_episodes_schema(path, fs).names
        keys = [m["key"] for name in names if (m := _VIDEO_COLUMN.match(name))]
        for key in keys:
            problem = name_problem(key, "key")
            if problem is not None:
                raise ValueError(f"{path}: column videos/{key}/...: camera key {key!r} {problem}")
        wanted = ["episode_index"] + (["length"] if "length" in names else [])
        for key in keys:
            wanted += [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
        table = read_episodes_file(path, columns=wanted, fs=fs)
        specs += _shard_specs(path, table, keys, template)
    specs.sort(key=lambda s: (s.video_key, s.chunk_index, s.file_index, s.from_timestamp, s.episode_index))
    return specs


def _shard_specs(path: Path | str, table: pa.Table, keys: list[str], template: str) -> list[SegmentSpec]:
    cols = table.to_pydict()
    lengths = cols.get("length")
    specs: list[SegmentSpec] = []
    for key in keys:
        chunks = cols[f"videos/{key}/chunk_index"]
        file_ids = cols[f"videos/{key}/file_index"]
        starts = cols[f"videos/{key}/from_timestamp"]
        ends = cols[f"videos/{key}/to_timestamp"]
        for row, episode in enumerate(cols["episode_index"]):
            if chunks[row] is None or file_ids[row] is None:
                continue  # this episode has no video for this camera
            if starts[row] is None or ends[row] is None or not ends[row] > starts[row]:
                raise ValueError(
                    f"{path}: episode {episode} camera {key}: invalid span "
                    f"[{starts[row]}, {ends[row]})"
                )
            specs.append(
                SegmentSpec(
                    video_key=key,
                    chunk_index=int(chunks[row]),
                    file_index=int(file_ids[row]),
                    episode_index=int(episode),
                    from_timestamp=float(starts[row]),
                    to_timestamp=float(ends[row]),
                    length=int(lengths[row]) if lengths is not None and lengths[row] is not None else None,
                    path=format_path(template, "video", int(chunks[row]), int(file_ids[row]), key),
                )
            )
    return specs
