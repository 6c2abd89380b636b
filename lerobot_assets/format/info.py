"""meta/info.json as a pydantic model that round-trips LeRobot's key order."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from lerobot_assets.format.atomic import write_json_atomic
from lerobot_assets.format.features import Feature
from lerobot_assets.format.layout import (
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    INFO_PATH,
    VIDEO_PATH,
)

if TYPE_CHECKING:  # fsspec is only needed for remote roots
    from fsspec import AbstractFileSystem


class DatasetInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    codebase_version: str = CODEBASE_VERSION
    fps: int
    features: dict[str, Feature]
    total_episodes: int = 0
    total_frames: int = 0
    total_tasks: int = 0
    chunks_size: int = DEFAULT_CHUNK_SIZE
    data_files_size_in_mb: float = DEFAULT_DATA_FILE_SIZE_IN_MB
    video_files_size_in_mb: float = DEFAULT_VIDEO_FILE_SIZE_IN_MB
    data_path: str = DATA_PATH
    video_path: str | None = VIDEO_PATH
    robot_type: str | None = None
    splits: dict[str, str] = Field(default_factory=dict)

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.dtype == "video"]

    @property
    def image_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.dtype == "image"]

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.is_visual]

    def dump(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "codebase_version": self.codebase_version,
            "fps": self.fps,
            "features": {k: f.dump() for k, f in self.features.items()},
        }
        for key in (
            "total_episodes", "total_frames", "total_tasks", "chunks_size", "data_files_size_in_mb",
            "video_files_size_in_mb", "data_path", "video_path", "robot_type", "splits",
        ):
            value = getattr(self, key)
            # LeRobot writes integral sizes as ints (100, not 100.0).
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            d[key] = value
        d.update(self.model_extra or {})
        return d

    def save(self, root: Path) -> None:
        write_json_atomic(Path(root) / INFO_PATH, self.dump())

    @classmethod
    def load(cls, root: Path | str, fs: "AbstractFileSystem | None" = None) -> "DatasetInfo":
        """Read `<root>/meta/info.json`; with `fs`, `root` is a path on that fsspec filesystem."""
        path: Path | str
        if fs is None:
            path = Path(root) / INFO_PATH
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not a LeRobot dataset root (meta/info.json is missing)")
        else:
            path = f"{str(root).rstrip('/')}/{INFO_PATH}"
            if not fs.isfile(path):
                raise FileNotFoundError(f"{path}: not a LeRobot dataset root (meta/info.json is missing)")
        try:
            if fs is None:
                raw = json.loads(path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
            else:
                with fs.open(path, "rb") as f:
                    raw = json.loads(f.read().decode("utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: invalid JSON: {e}") from e
        version = raw.get("codebase_version")
        if version is None or not str(version).startswith("v3"):
            raise ValueError(f"{path}: codebase_version {version!r} is not v3.x (only v3.0 datasets are supported)")
        return cls.model_validate(raw)
