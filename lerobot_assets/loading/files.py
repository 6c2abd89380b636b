"""Where a reader's files are: a local directory, or an fsspec root reopened in each process."""

import os
from pathlib import Path
from typing import Any

import fsspec

from lerobot_assets.format.meta import DatasetMeta


class DatasetFiles:
    """The files of one dataset root as this process reads them.

    `root` is a Path for a local root and the URL (str) for a remote one, whose reads go through
    fsspec (`fs_root` is the filesystem's path of the root). For a published prefix both are those of
    the version DatasetMeta followed the pointer to (`version`), so every file of one reader comes
    from one version.
    """

    def __init__(self, meta: DatasetMeta, storage_options: dict[str, Any] | None) -> None:
        self.root: Path | str = meta.root  # a published prefix's version, already followed by meta
        self.version: str | None = meta.version
        self.remote = meta.fs is not None
        self.fs_root: str | None = meta.fs_root
        self.storage_options = storage_options
        self._fs: Any = meta.fs
        self._fs_pid: int | None = os.getpid() if meta.fs is not None else None

    def __getstate__(self) -> dict[str, Any]:
        # Filesystem instances never cross processes (see filesystem()).
        state = self.__dict__.copy()
        state["_fs"] = None
        state["_fs_pid"] = None
        return state

    def join(self, rel: str) -> str:
        return f"{self.root}/{rel}" if self.remote else str(self.root / rel)  # type: ignore[operator]

    def filesystem(self) -> Any:
        """This process's fsspec filesystem of a remote root.

        fsspec's async filesystems (s3fs, ...) refuse to run in a forked child, and fsspec's
        instance cache is per process, so a worker opens its own (same storage_options).
        """
        pid = os.getpid()
        if self._fs is None or self._fs_pid != pid:
            self._fs, _ = fsspec.core.url_to_fs(str(self.root), **(self.storage_options or {}))
            self._fs_pid = pid
        return self._fs

    def open_remote_video(self, url: str) -> Any:
        """File object of a remote video for the "file" source (fsspec's default read-ahead cache)."""
        return self.filesystem().open(f"{self.fs_root}{url[len(str(self.root)):]}", "rb")

    def index_location(self) -> tuple[Any, str]:
        """(filesystem, its path of the root) as the byte-index code resolves it."""
        if self.remote:
            return self.filesystem(), self.fs_root  # type: ignore[return-value]
        return fsspec.filesystem("file"), str(Path(self.root).resolve())
