"""meta/info.json as a pydantic model that round-trips LeRobot's key order."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lerobot_assets.format.atomic import write_json_atomic
from lerobot_assets.format.features import Feature
from lerobot_assets.format.files import MetadataFileError, read_metadata_object
from lerobot_assets.format.layout import (
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    INFO_PATH,
    VIDEO_PATH,
)
from lerobot_assets.format.names import check_name
from lerobot_assets.format.templates import check_template

if TYPE_CHECKING:  # fsspec is only needed for remote roots
    from fsspec import AbstractFileSystem


class NotAV3DatasetError(ValueError):
    """`root` is not a LeRobot v3 dataset (no meta/info.json, or another codebase_version)."""


class InfoSchemaError(MetadataFileError):
    """info.json is a JSON object that does not match the schema; the reason names the key."""


def schema_problem(error: ValidationError) -> str:
    """A pydantic error as one line: where (dotted key) and what, plus how many more there are."""
    problems = error.errors()
    first = problems[0]
    # A key with a newline or control character would break the one line: such parts are repr'd.
    loc = ".".join(str(x) if str(x).isprintable() else repr(x) for x in first["loc"]) or "(top level)"
    ctx_error = (first.get("ctx") or {}).get("error")
    # A ValueError raised by a validator: its own message, without pydantic's "Value error, " prefix.
    msg = str(ctx_error) if isinstance(ctx_error, Exception) else first["msg"]
    value = first.get("input")
    shown = "" if ctx_error is not None or isinstance(value, (dict, list)) else f" (got {_short(value)})"
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{loc}: {msg}{shown}{more}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class DatasetInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    codebase_version: str = CODEBASE_VERSION
    # Every reader divides by fps and counts with the totals; zero or negative values are nonsense.
    fps: int = Field(gt=0)
    features: dict[str, Feature]
    total_episodes: int = Field(0, ge=0)
    total_frames: int = Field(0, ge=0)
    total_tasks: int = Field(0, ge=0)
    chunks_size: int = Field(DEFAULT_CHUNK_SIZE, ge=1)
    data_files_size_in_mb: float = Field(DEFAULT_DATA_FILE_SIZE_IN_MB, gt=0)
    video_files_size_in_mb: float = Field(DEFAULT_VIDEO_FILE_SIZE_IN_MB, gt=0)
    data_path: str = DATA_PATH
    video_path: str | None = VIDEO_PATH
    robot_type: str | None = None
    splits: dict[str, str] = Field(default_factory=dict)

    @field_validator("features")
    @classmethod
    def _safe_feature_names(cls, v: dict[str, Feature]) -> dict[str, Feature]:
        # Video keys become directories and every key a column path (`videos/<key>/...`,
        # `stats/<key>/...`): a key that is not one safe path component is rejected here.
        for key in v:
            check_name(key, "feature name")
        return v

    @field_validator("data_path")
    @classmethod
    def _honoured_data_path(cls, v: str) -> str:
        return check_template(v, "data", "data_path")

    @field_validator("video_path")
    @classmethod
    def _honoured_video_path(cls, v: str | None) -> str | None:
        return None if v is None else check_template(v, "video", "video_path")

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
        """Read `<root>/meta/info.json`; with `fs`, `root` is a path on that fsspec filesystem.

        Raises FileNotFoundError (no info.json), NotAV3DatasetError (not v3.x), and ValueError
        subclasses naming the file for everything else: not a regular file or too large
        (`files.MetadataFileError`), invalid JSON or not an object, a schema mismatch naming the
        key (`InfoSchemaError`), an unsafe feature name or a template we do not honour.
        """
        path: Path | str = Path(root) / INFO_PATH if fs is None else f"{str(root).rstrip('/')}/{INFO_PATH}"
        try:
            raw = read_metadata_object(path, fs)
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: not a LeRobot dataset root (meta/info.json is missing)") from None
        return cls.parse(raw, path)

    @classmethod
    def parse(cls, raw: dict[str, Any], where: Path | str) -> "DatasetInfo":
        """The model of info.json object `raw` read from `where` (named in every error)."""
        version = raw.get("codebase_version")
        if version is None or not str(version).startswith("v3"):
            raise NotAV3DatasetError(
                f"{where}: codebase_version {_short(version)} is not v3.x (only LeRobot v3 datasets are supported)"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise InfoSchemaError(where, f"does not match the info.json schema at {schema_problem(e)}") from None
