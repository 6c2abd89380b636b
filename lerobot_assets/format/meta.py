"""DatasetMeta: the metadata of one v3 dataset root (info, tasks, episodes, stats).

The root may be a local path or an fsspec URL (s3://, hf://, memory://...): remote roots are read
through the same format readers, given the filesystem (`fs`) and its own path for the root.
"""

from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from lerobot_assets.format.episodes import read_episodes
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.published import follow, follow_local
from lerobot_assets.format.stats_json import Stats, read_stats
from lerobot_assets.format.tasks import read_tasks
from lerobot_assets.format.templates import TemplateError, format_path


def is_remote_root(root: Path | str) -> bool:
    """Whether `root` is an fsspec URL other than file:// (Path objects are always local)."""
    if isinstance(root, Path):
        return False
    text = str(root)
    return "://" in text and not text.startswith("file://")


class DatasetMeta:
    """Read-only view of a dataset's metadata; works for our datasets and LeRobot-written ones.

    `root`: a local path, or an fsspec URL read with `storage_options` (or through `fs`, in which
    case `root` is that filesystem's path of the dataset). For a remote root `self.root` is the URL
    (a str) and `self.fs`/`self.fs_root` the filesystem and its path; `self.fs` is None for a local
    root, whose reads are unchanged.

    `root` may also be a dataset's published prefix (a `current.json` pointer beside `v-<n>/`
    versions, see `format.versions`): the version it points at is read, and `self.root` / `self.fs_root`
    are that version's (`self.version` names it).
    """

    def __init__(self, root: Path | str, *, storage_options: dict[str, Any] | None = None, fs: Any = None) -> None:
        self.fs: Any = None
        self.fs_root: str | None = None
        # The version read when `root` is a published prefix (see format.versions), else None. Followed
        # here, once: every file joined below is then under that version, however the pointer moves.
        self.version: str | None = None
        where: Path | str  # what info.json and tasks are read from: fs_root with a filesystem, else root
        if fs is not None:
            followed = follow(fs, str(root).rstrip("/"))
            self.root: Path | str = followed.path
            self.fs, self.fs_root, self.version = fs, followed.path, followed.version
            where = self.fs_root
        elif is_remote_root(root):
            import fsspec

            url = str(root).rstrip("/")
            self.fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
            followed = follow(self.fs, path.rstrip("/"))
            self.version = followed.version
            self.fs_root = where = followed.path
            self.root = url if followed.version is None else f"{url}/{followed.version}"
        else:
            text = str(root)
            # file:// URLs are local paths (read with pathlib as before, not through fsspec).
            local, self.version = follow_local(text[len("file://"):] if text.startswith("file://") else root)
            self.root = where = local
        self.info = DatasetInfo.load(where, fs=self.fs)
        self.tasks: list[str] = read_tasks(where, fs=self.fs)

    @cached_property
    def episodes(self) -> pa.Table:
        if self.fs is not None:
            return read_episodes(self.fs_root, fs=self.fs)  # type: ignore[arg-type]
        return read_episodes(self.root)

    @cached_property
    def stats(self) -> Stats:
        if self.fs is None:
            return read_stats(self.root)
        return read_stats(self.fs_root, fs=self.fs)  # type: ignore[arg-type]

    @cached_property
    def _rows(self) -> list[dict[str, Any]]:
        cols = [c for c in self.episodes.column_names if not c.startswith("stats/")]
        return self.episodes.select(cols).to_pylist()

    @property
    def fps(self) -> int:
        return self.info.fps

    @property
    def video_keys(self) -> list[str]:
        return self.info.video_keys

    @property
    def num_episodes(self) -> int:
        return self.episodes.num_rows

    def episode(self, position: int) -> dict[str, Any]:
        """Row (without stats columns) of the episode at this position in episode order."""
        return self._rows[position]

    def episode_by_index(self, episode_index: int) -> dict[str, Any]:
        for row in self._rows:
            if row["episode_index"] == episode_index:
                return row
        raise KeyError(f"episode {episode_index} not in {self.root}")

    def _join(self, rel: str) -> Path | str:
        # A URL for remote roots (Path would fold "s3://" into "s3:/").
        return self.root / rel if isinstance(self.root, Path) else f"{self.root}/{rel}"

    def data_file(self, chunk_index: int, file_index: int) -> Path | str:
        """The data file (chunk, file) as this dataset's own `data_path` names it."""
        return self._join(format_path(self.info.data_path, "data", chunk_index, file_index))

    def video_file(self, key: str, chunk_index: int, file_index: int) -> Path | str:
        """The video file of camera `key` as this dataset's own `video_path` names it."""
        if self.info.video_path is None:
            raise TemplateError(f"{self.root}: video_path is null but video file {key!r} was asked for")
        return self._join(format_path(self.info.video_path, "video", chunk_index, file_index, key))

    def episode_video_file(self, row: dict[str, Any], key: str) -> Path | str:
        return self.video_file(key, row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"])
