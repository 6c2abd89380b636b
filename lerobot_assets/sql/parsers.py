"""The JSON parsers a `format: json` source names: one JSON file of a dataset → typed rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from lerobot_assets.sql.discovery import DatasetRoot


@dataclass(frozen=True)
class JsonParser:
    """Turns one JSON file of a dataset into rows; `schema` (without `dataset`) also types empty tables."""

    schema: pa.Schema
    parse: Callable[[Any, DatasetRoot], list[dict[str, Any]]]


def _parse_info(doc: Any, root: DatasetRoot) -> list[dict[str, Any]]:
    features = doc.get("features") or {}
    return [
        {
            "root": root.url,
            "codebase_version": doc.get("codebase_version"),
            "robot_type": doc.get("robot_type"),
            "fps": _num(doc.get("fps")),
            "total_episodes": doc.get("total_episodes"),
            "total_frames": doc.get("total_frames"),
            "total_tasks": doc.get("total_tasks"),
            "chunks_size": doc.get("chunks_size"),
            "data_files_size_in_mb": _num(doc.get("data_files_size_in_mb")),
            "video_files_size_in_mb": _num(doc.get("video_files_size_in_mb")),
            "data_path": doc.get("data_path"),
            "video_path": doc.get("video_path"),
            "splits": json.dumps(doc.get("splits")),
            "features": json.dumps(features),
            "feature_names": list(features),
        }
    ]


def _parse_stats(doc: Any, root: DatasetRoot) -> list[dict[str, Any]]:
    rows = []
    for feature, stats in (doc or {}).items():
        if not isinstance(stats, dict):
            continue
        for stat, value in stats.items():
            arr = np.asarray(value, dtype=np.float64)
            rows.append(
                {"feature": feature, "stat": stat, "value": arr.ravel().tolist(), "shape": list(arr.shape)}
            )
    return rows


def _parse_cameras(doc: Any, root: DatasetRoot) -> list[dict[str, Any]]:
    rows = []
    for key, feature in (doc.get("features") or {}).items():
        if not isinstance(feature, dict) or feature.get("dtype") not in ("video", "image"):
            continue
        info = feature.get("info") or {}
        shape = list(feature.get("shape") or [])
        names = list(feature.get("names") or [])
        # LeRobot writes (height, width, channels) with matching names; fall back to that order.
        dims = dict(zip(names, shape)) if len(names) == len(shape) else {}
        height = info.get("video.height", dims.get("height", shape[0] if len(shape) == 3 else None))
        width = info.get("video.width", dims.get("width", shape[1] if len(shape) == 3 else None))
        channels = info.get("video.channels", dims.get("channels", shape[2] if len(shape) == 3 else None))
        rows.append(
            {
                "video_key": key,
                "dtype": feature.get("dtype"),
                "height": height,
                "width": width,
                "channels": channels,
                "codec": info.get("video.codec"),
                "pix_fmt": info.get("video.pix_fmt"),
                "fps": _num(info.get("video.fps", doc.get("fps"))),
                "has_audio": info.get("has_audio"),
                "is_depth_map": info.get("is_depth_map"),
                "g": info.get("video.g"),
                "crf": _num(info.get("video.crf")),
                "preset": str(info["video.preset"]) if info.get("video.preset") is not None else None,
                "video_backend": info.get("video.video_backend"),
                "info": json.dumps(info),
            }
        )
    return rows


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


JSON_PARSERS: dict[str, JsonParser] = {
    "info": JsonParser(
        pa.schema(
            [
                ("root", pa.string()),
                ("codebase_version", pa.string()),
                ("robot_type", pa.string()),
                ("fps", pa.float64()),
                ("total_episodes", pa.int64()),
                ("total_frames", pa.int64()),
                ("total_tasks", pa.int64()),
                ("chunks_size", pa.int64()),
                ("data_files_size_in_mb", pa.float64()),
                ("video_files_size_in_mb", pa.float64()),
                ("data_path", pa.string()),
                ("video_path", pa.string()),
                ("splits", pa.string()),
                ("features", pa.string()),
                ("feature_names", pa.list_(pa.string())),
            ]
        ),
        _parse_info,
    ),
    "stats": JsonParser(
        pa.schema(
            [
                ("feature", pa.string()),
                ("stat", pa.string()),
                ("value", pa.list_(pa.float64())),
                ("shape", pa.list_(pa.int64())),
            ]
        ),
        _parse_stats,
    ),
    "cameras": JsonParser(
        pa.schema(
            [
                ("video_key", pa.string()),
                ("dtype", pa.string()),
                ("height", pa.int64()),
                ("width", pa.int64()),
                ("channels", pa.int64()),
                ("codec", pa.string()),
                ("pix_fmt", pa.string()),
                ("fps", pa.float64()),
                ("has_audio", pa.bool_()),
                ("is_depth_map", pa.bool_()),
                ("g", pa.int64()),
                ("crf", pa.float64()),
                ("preset", pa.string()),
                ("video_backend", pa.string()),
                ("info", pa.string()),
            ]
        ),
        _parse_cameras,
    ),
}
