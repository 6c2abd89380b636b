"""The raw-v1 format's names (files, folders, marker) and the schema of `session.json`."""

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lerobot_assets.format.names import check_name

FORMAT: Final = "lerobot-assets/raw-v1"
SESSION_FILE = "session.json"
COMPLETE_MARKER = "_COMPLETE"
FRAMES_FILE = "frames.parquet"
EPISODE_PREFIX = "episode_"
_RESERVED_COLUMNS = ("timestamp", "task")
# Index columns the dataset writer numbers itself; a recording must not carry them as features.
_WRITER_COLUMNS = ("frame_index", "episode_index", "index", "task_index")


class NumericFeatureSpec(BaseModel):
    """A non-camera feature: one column of `frames.parquet`, a number or a fixed-length vector."""

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"] = "float32"
    shape: list[int] = Field(min_length=1, max_length=1)
    names: list[str] | None = None

    @field_validator("shape")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if v[0] < 1:
            raise ValueError(f"shape must be [n] with n >= 1, got {v}")
        return v


class CameraSpec(BaseModel):
    """An RGB camera: frames of `height` x `width` pixels, one per row of `frames.parquet`."""

    model_config = ConfigDict(extra="forbid")

    height: int = Field(ge=1, le=8192)
    width: int = Field(ge=1, le=8192)


class SessionSpec(BaseModel):
    """The contents of `session.json`."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["lerobot-assets/raw-v1"] = FORMAT
    fps: int = Field(gt=0, le=1000)
    robot_type: str | None = None
    features: dict[str, NumericFeatureSpec]
    cameras: dict[str, CameraSpec] = Field(default_factory=dict)
    timestamp_tolerance_s: float | None = Field(
        None, gt=0, description="largest |timestamp - row/fps| accepted; default a quarter frame period"
    )

    @field_validator("features")
    @classmethod
    def _state_and_action(cls, v: dict[str, NumericFeatureSpec]) -> dict[str, NumericFeatureSpec]:
        missing = [k for k in ("observation.state", "action") if k not in v]
        if missing:
            raise ValueError(f"features must declare {missing} (every episode records a state and an action)")
        bad = [k for k in v if k in _RESERVED_COLUMNS or k in _WRITER_COLUMNS]
        if bad:
            raise ValueError(f"feature names {bad} are reserved (timestamp, task and the writer's index columns)")
        for key in v:  # they become info.json feature names, and columns named after them
            check_name(key, "feature name")
        return v

    @field_validator("cameras")
    @classmethod
    def _camera_keys_are_names(cls, v: dict[str, CameraSpec]) -> dict[str, CameraSpec]:
        # A camera key is a file (`<key>.mp4`) or folder in each episode folder and a directory of
        # the dataset built from it: `../x` or `/abs` would read or write outside both.
        for key in v:
            check_name(key, "camera key")
        return v

    @property
    def tolerance_s(self) -> float:
        return self.timestamp_tolerance_s if self.timestamp_tolerance_s is not None else 0.25 / self.fps

    def writer_features(self) -> dict[str, dict[str, Any]]:
        """The `features` a DatasetWriter takes: numeric features first, then cameras as videos."""
        out: dict[str, dict[str, Any]] = {k: f.model_dump() for k, f in self.features.items()}
        for key, cam in self.cameras.items():
            out[key] = {"dtype": "video", "shape": [cam.height, cam.width, 3], "names": ["height", "width", "channels"]}
        return out
