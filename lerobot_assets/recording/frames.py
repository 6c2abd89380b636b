"""Validation of frames handed to the writer, with errors that name the key, expected and got."""

from typing import Any

import numpy as np

from lerobot_assets.format.features import Feature, numpy_dtype
from lerobot_assets.format.layout import INDEX_FEATURES


def _to_numpy(value: Any) -> Any:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensors, without importing torch
        return value.detach().cpu().numpy()
    return value


def validate_visual(key: str, feature: Feature, value: Any) -> np.ndarray:
    arr = np.asarray(_to_numpy(value))
    h, w, c = feature.shape
    if arr.shape not in ((h, w, c), (c, h, w)):
        raise ValueError(
            f"frame key {key!r}: expected an image of shape {(h, w, c)} (HWC) or {(c, h, w)} (CHW), "
            f"got {arr.shape}"
        )
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"frame key {key!r}: expected dtype uint8 or float in [0, 1], got {arr.dtype}")
    return arr


def validate_value(key: str, feature: Feature, value: Any) -> Any:
    if feature.dtype == "string":
        if not isinstance(value, str):
            raise ValueError(f"frame key {key!r}: expected a str, got {type(value).__name__}")
        return value
    expected = numpy_dtype(feature)
    raw = _to_numpy(value)
    if isinstance(raw, np.ndarray | np.generic):
        if raw.dtype != expected:
            raise ValueError(f"frame key {key!r}: expected dtype {expected}, got {raw.dtype}")
        arr = np.asarray(raw)
    else:
        # Python scalars and lists carry no dtype of their own: convert, but never lose values.
        arr = np.asarray(raw)
        if arr.dtype == object or not np.can_cast(arr.dtype, expected, casting="same_kind"):
            raise ValueError(f"frame key {key!r}: expected dtype {expected}, got {arr.dtype}")
        arr = arr.astype(expected)
    shape = tuple(feature.shape)
    if shape == (1,) and arr.shape in ((), (1,)):
        return arr.reshape(())
    if arr.shape != shape:
        raise ValueError(f"frame key {key!r}: expected shape {shape}, got {arr.shape}")
    return arr


def validate_frame(frame: dict[str, Any], features: dict[str, Feature]) -> tuple[str, dict[str, Any]]:
    """Check a frame against the user features; returns (task, {key: validated value})."""
    if "task" not in frame:
        raise ValueError("frame is missing the 'task' key (a str describing the episode's task)")
    task = frame["task"]
    if not isinstance(task, str) or not task:
        raise ValueError(f"frame key 'task': expected a non-empty str, got {task!r}")
    user = {k: f for k, f in features.items() if k not in INDEX_FEATURES}
    unknown = sorted(set(frame) - set(user) - {"task"})
    if unknown:
        given_index = [k for k in unknown if k in INDEX_FEATURES]
        if given_index:
            raise ValueError(f"frame keys {given_index} are set by the writer; do not pass them")
        raise ValueError(f"frame has unknown keys {unknown}; expected keys: {sorted(user)} and 'task'")
    missing = sorted(set(user) - set(frame))
    if missing:
        raise ValueError(f"frame is missing keys {missing}; expected keys: {sorted(user)} and 'task'")
    out = {}
    for key, feature in user.items():
        if feature.is_visual:
            out[key] = validate_visual(key, feature, frame[key])
        else:
            out[key] = validate_value(key, feature, frame[key])
    return task, out
