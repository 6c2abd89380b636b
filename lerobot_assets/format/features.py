"""Feature specs of info.json and their Arrow / Hugging Face `datasets` representations."""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, field_validator

from lerobot_assets.format.layout import INDEX_FEATURES

VISUAL_DTYPES = ("video", "image")
# Columns without statistics: free text, and LeRobot 0.6.1's language columns (`compute_stats`
# skips both dtypes).
TEXT_DTYPES = ("string", "language")
LANGUAGE_PERSISTENT = "language_persistent"
LANGUAGE_EVENTS = "language_events"
LANGUAGE_COLUMNS = (LANGUAGE_PERSISTENT, LANGUAGE_EVENTS)
_NUMERIC = {
    "float32": pa.float32(),
    "float64": pa.float64(),
    "float16": pa.float16(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int16": pa.int16(),
    "int8": pa.int8(),
    "uint8": pa.uint8(),
    "bool": pa.bool_(),
}


class Feature(BaseModel):
    """One entry of info.json `features`. Key order matches what LeRobot writes."""

    model_config = ConfigDict(extra="allow")

    dtype: str
    shape: list[int]
    names: list[str] | dict[str, Any] | None = None
    info: dict[str, Any] | None = None

    @field_validator("shape", mode="before")
    @classmethod
    def _shape_list(cls, v: Any) -> list[int]:
        # A before-validator's TypeError would escape pydantic as a traceback: say what is wrong.
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"shape must be a list of dimensions, got {type(v).__name__}")
        dims = []
        for x in v:
            if isinstance(x, bool) or not isinstance(x, (int, float, str)):
                raise ValueError(f"shape {list(v)!r} holds {x!r}, not a dimension")
            try:
                dim = int(x)
            except (ValueError, OverflowError):
                raise ValueError(f"shape {list(v)!r} holds {x!r}, not a dimension") from None
            if dim < 1:
                raise ValueError(f"shape {list(v)!r} holds {dim}; dimensions are at least 1")
            dims.append(dim)
        return dims

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, v: str) -> str:
        if v not in _NUMERIC and v not in (*VISUAL_DTYPES, *TEXT_DTYPES):
            raise ValueError(
                f"unsupported feature dtype {v!r}; allowed: {sorted([*_NUMERIC, *VISUAL_DTYPES, *TEXT_DTYPES])}"
            )
        return v

    @property
    def is_visual(self) -> bool:
        return self.dtype in VISUAL_DTYPES

    def dump(self) -> dict[str, Any]:
        d: dict[str, Any] = {"dtype": self.dtype, "shape": list(self.shape), "names": self.names}
        if self.info is not None:
            d["info"] = self.info
        d.update(self.model_extra or {})
        return d


def index_features() -> dict[str, Feature]:
    """The five features LeRobot adds to every dataset, in its order."""
    return {
        "timestamp": Feature(dtype="float32", shape=[1], names=None),
        "frame_index": Feature(dtype="int64", shape=[1], names=None),
        "episode_index": Feature(dtype="int64", shape=[1], names=None),
        "index": Feature(dtype="int64", shape=[1], names=None),
        "task_index": Feature(dtype="int64", shape=[1], names=None),
    }


def with_index_features(user: Mapping[str, Feature | dict[str, Any]]) -> dict[str, Feature]:
    feats: dict[str, Feature] = {}
    for key, spec in user.items():
        if key in INDEX_FEATURES:
            raise ValueError(f"feature {key!r} is added automatically; remove it from the features")
        if key == "task":
            raise ValueError("'task' is given per frame, not declared as a feature")
        feats[key] = spec if isinstance(spec, Feature) else Feature.model_validate(spec)
    feats.update(index_features())
    return feats


def language_row_type(column: str) -> pa.StructType:
    """One row of a language column, as LeRobot 0.6.1's `datasets/language.py` declares it: fields
    role, content, style, timestamp (persistent rows only: float32, not null), camera, tool_calls
    (a list of JSON values)."""
    fields = [pa.field("role", pa.string(), nullable=False), pa.field("content", pa.string()), pa.field("style", pa.string())]
    if column == LANGUAGE_PERSISTENT:
        fields.append(pa.field("timestamp", pa.float32(), nullable=False))
    elif column != LANGUAGE_EVENTS:
        raise ValueError(f"{column!r} is not a language column; LeRobot knows {list(LANGUAGE_COLUMNS)}")
    fields += [pa.field("camera", pa.string()), pa.field("tool_calls", pa.list_(pa.json_()))]
    return pa.struct(fields)


def arrow_type(feature: Feature, key: str | None = None) -> pa.DataType:
    """Arrow type of a non-video feature's column in the data parquet. A `language` feature's type
    depends on its column name, as in LeRobot (`key`)."""
    if feature.dtype == "language":
        return pa.list_(language_row_type(key or ""))
    if feature.dtype == "image":
        return pa.struct({"bytes": pa.binary(), "path": pa.string()})
    if feature.dtype == "string":
        return pa.string()
    base = _NUMERIC[feature.dtype]
    shape = feature.shape
    if shape == [1]:
        return base
    if len(shape) == 1:
        return pa.list_(base, shape[0])
    raise ValueError(f"feature shape {shape} of dtype {feature.dtype} is not supported (1-D only)")


def numpy_dtype(feature: Feature) -> np.dtype:
    return np.dtype("bool" if feature.dtype == "bool" else feature.dtype)


def _hf_language(column: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for fld in language_row_type(column):
        if fld.name == "tool_calls":
            row[fld.name] = {"feature": {"_type": "Json"}, "_type": "List"}
        else:
            row[fld.name] = {"dtype": "float32" if fld.name == "timestamp" else "string", "_type": "Value"}
    return {"feature": row, "_type": "List"}


def _hf_feature(feature: Feature, key: str = "") -> dict[str, Any]:
    if feature.dtype == "language":
        return _hf_language(key)
    if feature.dtype == "image":
        return {"_type": "Image"}
    dtype = "string" if feature.dtype == "string" else feature.dtype
    if feature.shape == [1] or feature.dtype == "string":
        return {"dtype": dtype, "_type": "Value"}
    return {"feature": {"dtype": dtype, "_type": "Value"}, "length": feature.shape[0], "_type": "List"}


def data_columns(features: dict[str, Feature]) -> list[str]:
    """Data parquet columns: every non-video feature in features order (index features last)."""
    return [k for k, f in features.items() if f.dtype != "video"]


def data_schema(features: dict[str, Feature]) -> pa.Schema:
    """The data parquet schema, with the `huggingface` metadata the `datasets` library reads."""
    cols = data_columns(features)
    hf = {k: _hf_feature(features[k], k) for k in cols}
    payload: dict[str, Any] = {"info": {"features": hf}}
    fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    payload["fingerprint"] = fingerprint
    return pa.schema(
        [pa.field(k, arrow_type(features[k], k)) for k in cols],
        metadata={"huggingface": json.dumps(payload)},
    )
