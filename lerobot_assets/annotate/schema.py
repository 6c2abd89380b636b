"""LeRobot 0.6.1's language columns: styles, routing, the camera rule, the `say` tool, and rows.

A row is a plain dict with the fields of `language_row_type` (role, content, style, timestamp,
camera, tool_calls); in staging and in memory every row keeps its `timestamp`, events included (the
writer drops it from event rows, whose time is their frame's). `tool_calls` holds dicts, with a
tool call's `arguments` a dict as LeRobot stores it (not a JSON string).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from lerobot_assets.format.features import (
    LANGUAGE_COLUMNS,
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    Feature,
    arrow_type,
)

__all__ = [
    "CORE_STYLES",
    "EVENT_ONLY_STYLES",
    "LANGUAGE_COLUMNS",
    "LANGUAGE_EVENTS",
    "LANGUAGE_PERSISTENT",
    "PERSISTENT_STYLES",
    "SAY_TOOL_SCHEMA",
    "VIEW_DEPENDENT_STYLES",
    "camera_problem",
    "column_for_style",
    "column_type",
    "language_feature",
    "row",
    "say",
    "to_arrow",
]

CORE_STYLES = ("subtask", "plan", "memory", "motion", "interjection", "vqa", "trace", "task_aug")
PERSISTENT_STYLES = frozenset({"subtask", "plan", "memory", "motion", "task_aug"})
EVENT_ONLY_STYLES = frozenset({"interjection", "vqa", "trace"})
VIEW_DEPENDENT_STYLES = frozenset({"vqa", "trace"})
ROW_FIELDS = ("role", "content", "style", "timestamp", "camera", "tool_calls")

SAY_TOOL_SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "say",
        "description": "Speak a short utterance to the user via TTS.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "The verbatim text to speak."}},
            "required": ["text"],
        },
    },
}


def language_feature() -> Feature:
    """How info.json declares each language column."""
    return Feature(dtype="language", shape=[1], names=None)


def column_type(column: str) -> pa.DataType:
    """The canonical Arrow type of `column` (list of structs; float32 timestamps; list<json> tool calls)."""
    return arrow_type(language_feature(), column)


def column_for_style(style: str | None) -> str:
    """Which column a style's rows go to: a tool-call atom (style None) and event-only styles to
    events, persistent styles to persistent; anything else is an error, as in LeRobot."""
    if style is None or style in EVENT_ONLY_STYLES:
        return LANGUAGE_EVENTS
    if style in PERSISTENT_STYLES:
        return LANGUAGE_PERSISTENT
    raise ValueError(f"Unknown language style: {style!r}")


def camera_problem(style: str | None, camera: str | None, cameras: set[str] | None = None) -> str | None:
    """LeRobot's camera rule: vqa and trace rows name an `observation.images.*` camera, every other
    row (speech atoms and motion included) has camera None. None when the rule holds."""
    if style in VIEW_DEPENDENT_STYLES:
        if not camera:
            return f"style {style!r} needs a camera"
        if cameras is not None and camera not in cameras:
            return f"unknown camera {camera!r} (cameras: {sorted(cameras)})"
        return None
    if camera is not None:
        return f"style {style!r} must have camera None, got {camera!r}"
    return None


def say(text: str) -> dict[str, Any]:
    """A `say` tool call, `arguments` a dict as LeRobot stores it."""
    return {"type": "function", "function": {"name": "say", "arguments": {"text": text}}}


def row(
    role: str,
    content: str | None,
    style: str | None,
    timestamp: float,
    camera: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {"role": role, "content": content, "style": style, "timestamp": float(timestamp), "camera": camera, "tool_calls": tool_calls}


def speech_atom(text: str, timestamp: float) -> dict[str, Any]:
    return row("assistant", None, None, timestamp, None, [say(text)])


def is_speech_atom(r: Mapping[str, Any]) -> bool:
    return r.get("style") is None and r.get("role") == "assistant" and bool(r.get("tool_calls"))


def persistent_sort_key(r: dict[str, Any]) -> tuple[float, str, str]:
    return (float(r["timestamp"]), r.get("style") or "", r.get("role") or "")


def event_sort_key(r: dict[str, Any]) -> tuple[str, str, str]:
    return (r.get("style") or "", r.get("role") or "", r.get("camera") or "")


def _tool_calls_json(calls: Any) -> list[str] | None:
    if calls is None:
        return None
    return [c if isinstance(c, str) else json.dumps(c, ensure_ascii=False) for c in calls]


def to_arrow(column: str, rows_per_frame: list[list[dict[str, Any]]]) -> pa.Array:
    """One frame's list of rows per element -> the column in its canonical type."""
    typ = column_type(column)
    struct = typ.value_type
    names = [f.name for f in struct]
    # Built over plain strings, then cast: the json extension type takes its storage (string).
    storage = pa.list_(
        pa.struct([pa.field(f.name, pa.list_(pa.string()) if f.name == "tool_calls" else f.type, f.nullable) for f in struct])
    )
    values = [[{n: (_tool_calls_json(r.get(n)) if n == "tool_calls" else r.get(n)) for n in names} for r in frame] for frame in rows_per_frame]
    return pa.array(values, type=storage).cast(typ)


def from_arrow_rows(values: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Rows read back from a language column in any type LeRobot writes (canonical json tool calls,
    or the annotator's inferred structs): tool calls as dicts, timestamps as Python floats."""
    out = []
    for r in values or []:
        calls = r.get("tool_calls")
        if calls is not None:
            calls = [json.loads(c) if isinstance(c, str) else c for c in calls]
        d = {k: r.get(k) for k in ROW_FIELDS if k != "timestamp"}
        d["tool_calls"] = calls
        if "timestamp" in r:
            d["timestamp"] = r["timestamp"]
        out.append(d)
    return out
