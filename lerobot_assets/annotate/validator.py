"""The annotation validator: every rule of LeRobot 0.6.1's `validator.py` (§2.12), the writer's row
checks (§2.13), and ours: spans cover the episode, every timestamp exactly a frame timestamp, at most
one row per (time, style) for persistent styles the resolvers read, bbox/keypoint inside the image.

Each problem names its episode, timestamp and rule (`Issue.rule`, one of `RULES`); matching is exact.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lerobot_assets.annotate.episodes import Camera
from lerobot_assets.annotate.schema import (
    CORE_STYLES,
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    PERSISTENT_STYLES,
    camera_problem,
    column_for_style,
    is_speech_atom,
)

RULES = {
    "unknown_style": "a style LeRobot does not know",
    "module_style": "plan emits persistent styles; interjections and vqa emit event styles",
    "camera_rule": "vqa/trace rows name a camera; every other row has camera None",
    "unknown_camera": "a camera that is not a camera of the dataset",
    "timestamp_not_frame": "a row without a timestamp, or one that is not exactly a frame timestamp",
    "interjection_without_speech": "an interjection needs a speech atom (say) at the same time",
    "interjection_without_plan": "an interjection needs a plan row at the same time",
    "vqa_answer_shape": "a VQA answer must be JSON of one of the five shapes",
    "vqa_duplicate": "more than one VQA row per (time, camera, role)",
    "row_content": "a row needs a role, and content or tool calls (a null-style row needs tool calls)",
    "speech_atom": "a speech atom is assistant, null content, one say(text=str) call",
    "span_coverage": "subtask spans start at the first frame and at distinct frames",
    "persistent_duplicate": "two persistent rows of one style at one time (active_at would be ambiguous)",
    "bbox_outside_image": "a bbox must be x1<=x2, y1<=y2, inside the camera's image",
    "keypoint_outside_image": "a keypoint must lie inside the camera's image",
}
# Warnings (LeRobot's too): the run still writes.
WARNINGS = {
    "no_plan": "persistent rows but no plan row",
    "memory_not_at_subtask": "a memory row not at a subtask start",
}
VQA_SHAPES = {
    "bbox": {"detections"},
    "keypoint": {"label", "point_format", "point"},
    "count": {"label", "count"},
    "attribute": {"label", "attribute", "value"},
    "spatial": {"subject", "relation", "object"},
}
MODULE_COLUMNS = {"plan": LANGUAGE_PERSISTENT, "interjections": LANGUAGE_EVENTS, "vqa": LANGUAGE_EVENTS}


@dataclass(frozen=True)
class Issue:
    episode: int
    timestamp: float | None
    rule: str
    message: str

    def __str__(self) -> str:
        at = "-" if self.timestamp is None else f"{self.timestamp:.6g}s"
        return f"episode {self.episode} t={at} [{self.rule}] {self.message}"


@dataclass
class Report:
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    episodes_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def rules(self) -> set[str]:
        return {i.rule for i in self.errors}


class AnnotationValidationError(ValueError):
    def __init__(self, report: Report) -> None:
        self.report = report
        shown = "; ".join(str(i) for i in report.errors[:10])
        more = f" (and {len(report.errors) - 10} more)" if len(report.errors) > 10 else ""
        super().__init__(f"annotation validation failed: {len(report.errors)} error(s): {shown}{more}")


def _answer_shape(content: Any) -> tuple[str | None, Any]:
    try:
        answer = json.loads(content) if isinstance(content, str) else None
    except json.JSONDecodeError:
        return None, None
    if not isinstance(answer, dict):
        return None, None
    for name, keys in VQA_SHAPES.items():
        if keys <= set(answer) and (name != "bbox" or isinstance(answer.get("detections"), list)):
            return name, answer
    return None, answer


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _geometry(ep: int, t: float, shape: str, answer: dict[str, Any], cam: Camera | None, out: list[Issue]) -> None:
    if cam is None:
        return
    if shape == "bbox":
        for det in answer["detections"]:
            box = det.get("bbox") if isinstance(det, dict) else None
            if not (isinstance(box, list) and len(box) == 4 and all(_num(v) for v in box)):
                out.append(Issue(ep, t, "vqa_answer_shape", f"{cam.key}: detection {det!r} has no [x1, y1, x2, y2] bbox"))
                continue
            x1, y1, x2, y2 = box
            if not (0 <= x1 <= x2 <= cam.width and 0 <= y1 <= y2 <= cam.height):
                out.append(Issue(ep, t, "bbox_outside_image", f"{cam.key}: bbox {box} not inside {cam.width}x{cam.height}"))
    elif shape == "keypoint":
        pt = answer.get("point")
        if not (isinstance(pt, list) and len(pt) == 2 and all(_num(v) for v in pt)):
            out.append(Issue(ep, t, "vqa_answer_shape", f"{cam.key}: point {pt!r} is not [x, y]"))
        elif not (0 <= pt[0] <= cam.width and 0 <= pt[1] <= cam.height):
            out.append(Issue(ep, t, "keypoint_outside_image", f"{cam.key}: point {pt} not inside {cam.width}x{cam.height}"))


def _row_checks(ep: int, t: float, r: Mapping[str, Any], errors: list[Issue]) -> None:
    style, role = r.get("style"), r.get("role")
    if not role:
        errors.append(Issue(ep, t, "row_content", f"row of style {style!r} has no role"))
    if r.get("content") is None and not r.get("tool_calls"):
        errors.append(Issue(ep, t, "row_content", f"row of style {style!r} has neither content nor tool calls"))
    if style is None:
        calls = r.get("tool_calls") or []
        if not calls:
            errors.append(Issue(ep, t, "row_content", "a row with style None needs tool calls"))
            return
        call: dict[str, Any] = calls[0] if isinstance(calls[0], dict) else {}
        fn: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
        args = fn.get("arguments")
        if role != "assistant" or r.get("content") is not None or call.get("type") != "function" or fn.get("name") != "say" or not (
            isinstance(args, dict) and isinstance(args.get("text"), str)
        ):
            errors.append(Issue(ep, t, "speech_atom", f"speech atom {dict(r)!r} is not assistant/null content/say(text=str) with dict arguments"))


def validate_episode(
    episode: int,
    frame_times: Sequence[float],
    rows_by_module: Mapping[str | None, Iterable[Mapping[str, Any]]],
    cameras: Mapping[str, Camera],
    report: Report | None = None,
) -> Report:
    """Check one episode's rows. `rows_by_module`: module name ("plan", "interjections", "vqa") or
    None (rows kept from the input) -> rows, each with its timestamp (events included)."""
    report = report or Report()
    errors, warnings = report.errors, report.warnings
    frames = {float(t) for t in frame_times}
    persistent: list[Mapping[str, Any]] = []
    events: list[Mapping[str, Any]] = []
    for module, rows in rows_by_module.items():
        for r in rows:
            style = r.get("style")
            ts = r.get("timestamp")
            t = float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None
            if style is not None and style not in CORE_STYLES:
                errors.append(Issue(episode, t, "unknown_style", f"unknown style {style!r}"))
                continue
            column = column_for_style(style)
            want = MODULE_COLUMNS.get(module or "")
            if want is not None and column != want:
                errors.append(Issue(episode, t, "module_style", f"module {module!r} emitted style {style!r} ({column})"))
            problem = camera_problem(style, r.get("camera"))
            if problem:
                errors.append(Issue(episode, t, "camera_rule", problem))
            elif r.get("camera") is not None and r.get("camera") not in cameras:
                errors.append(Issue(episode, t, "unknown_camera", f"unknown camera {r.get('camera')!r} (cameras: {sorted(cameras)})"))
            if t is None or t not in frames:
                errors.append(Issue(episode, t, "timestamp_not_frame", f"{style!r} row at {ts!r} is not exactly a frame timestamp"))
                continue
            _row_checks(episode, t, r, errors)
            (persistent if column == LANGUAGE_PERSISTENT else events).append(r)

    at = lambda rows, style: Counter(float(r["timestamp"]) for r in rows if r.get("style") == style)  # noqa: E731
    plans = at(persistent, "plan")
    speech = Counter(float(r["timestamp"]) for r in events if is_speech_atom(r))
    for r in events:
        if r.get("style") == "interjection":
            t = float(r["timestamp"])
            if not speech[t]:
                errors.append(Issue(episode, t, "interjection_without_speech", "interjection without a speech atom at the same time"))
            if not plans[t]:
                errors.append(Issue(episode, t, "interjection_without_plan", "interjection without a plan row at the same time"))
    if persistent and not plans:
        warnings.append(Issue(episode, None, "no_plan", "persistent rows but no plan row"))
    subtasks = at(persistent, "subtask")
    for t in at(persistent, "memory"):
        if not subtasks[t]:
            warnings.append(Issue(episode, t, "memory_not_at_subtask", "memory row not at a subtask start"))
    for style in PERSISTENT_STYLES - {"task_aug"}:
        for t, n in at(persistent, style).items():
            if n > 1:
                errors.append(Issue(episode, t, "persistent_duplicate", f"{n} {style!r} rows at the same time"))
    if subtasks and frame_times and min(subtasks) != float(frame_times[0]):
        errors.append(Issue(episode, min(subtasks), "span_coverage", f"the first subtask starts at {min(subtasks)}, not at the first frame {float(frame_times[0])}"))

    seen: Counter[tuple[float, str, str]] = Counter()
    for r in events:
        if r.get("style") != "vqa":
            continue
        t, cam, role = float(r["timestamp"]), r.get("camera") or "", r.get("role") or ""
        seen[(t, cam, role)] += 1
        if seen[(t, cam, role)] == 2:
            errors.append(Issue(episode, t, "vqa_duplicate", f"more than one {role} VQA row for camera {cam!r}"))
        if role == "assistant":
            shape, answer = _answer_shape(r.get("content"))
            if shape is None:
                errors.append(Issue(episode, t, "vqa_answer_shape", f"{cam}: answer {r.get('content')!r} matches none of {sorted(VQA_SHAPES)}"))
            else:
                _geometry(episode, t, shape, answer, cameras.get(cam), errors)
    report.episodes_checked += 1
    return report
