"""Resolvers over one frame's language rows, with LeRobot 0.6.1's semantics (`language_render.py`):
what a user building training messages asks of `language_persistent` and `language_events`.

`persistent` is the episode's persistent list (as every frame holds it); `events` the frame's own
events (no timestamps: an event's time is its frame's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lerobot_assets.annotate.schema import PERSISTENT_STYLES

Row = dict[str, Any]
EMIT_TOLERANCE_S = 0.1


class AmbiguousResolverError(ValueError):
    """More than one row matches where a resolver must return one."""


def _tool_name_matches(r: Row, tool_name: str | None) -> bool:
    if tool_name is None:
        return True
    for call in r.get("tool_calls") or []:
        # As LeRobot: dict calls are matched on function.name; string calls are skipped.
        if isinstance(call, dict) and (call.get("function") or {}).get("name") == tool_name:
            return True
    return False


def _filter(rows: Sequence[Row], style: str | None, role: str | None, tool_name: str | None, camera: str | None, *, any_style: bool = False) -> list[Row]:
    return [
        r
        for r in rows
        if (any_style or r.get("style") == style)
        and (role is None or r.get("role") == role)
        and (camera is None or r.get("camera") == camera)
        and _tool_name_matches(r, tool_name)
    ]


def _one(rows: list[Row], what: str) -> Row | None:
    if not rows:
        return None
    if len(rows) > 1:
        raise AmbiguousResolverError(f"Ambiguous resolver {what}: {len(rows)} rows match")
    return rows[0]


def active_at(persistent: Sequence[Row], t: float, style: str, role: str | None = None, tool_name: str | None = None, camera: str | None = None) -> Row | None:
    """The persistent row of `style` in force at time `t`: among matching rows with ts <= t, the one at
    the latest timestamp (None before the first; several at that time raise)."""
    if style not in PERSISTENT_STYLES:
        raise ValueError(f"active_at takes a persistent style ({sorted(PERSISTENT_STYLES)}), got {style!r}")
    rows = [r for r in _filter(persistent, style, role, tool_name, camera) if float(r["timestamp"]) <= t]
    if not rows:
        return None
    latest = max(float(r["timestamp"]) for r in rows)
    return _one([r for r in rows if float(r["timestamp"]) == latest], f"active_at(t={t}, style={style!r})")


def emitted_at(
    persistent: Sequence[Row],
    events: Sequence[Row],
    t: float,
    style: str | None = None,
    role: str | None = None,
    tool_name: str | None = None,
    camera: str | None = None,
) -> Row | None:
    """The row emitted at `t`: for a persistent style, the matching row within 0.1 s of `t`; for an
    event style or None (speech atoms: filter by `role`/`tool_name`), the matching row of the frame's
    events, `t` ignored. Several matches raise."""
    if style in PERSISTENT_STYLES:
        rows = [r for r in _filter(persistent, style, role, tool_name, camera) if abs(float(r["timestamp"]) - t) <= EMIT_TOLERANCE_S]
    else:
        rows = _filter(events, style, role, tool_name, camera)
    return _one(rows, f"emitted_at(t={t}, style={style!r}, role={role!r})")


def _sorted(persistent: Sequence[Row], style: str | None, role: str | None) -> list[Row]:
    rows = _filter(persistent, style, role, None, None, any_style=style is None)
    return sorted(rows, key=lambda r: (float(r["timestamp"]), r.get("style") or "", r.get("role") or ""))


def _nth(persistent: Sequence[Row], t: float, offset: int, style: str | None, role: str | None, sign: int) -> Row | None:
    if offset == 0:
        raise ValueError("offset must not be 0")
    rows = _sorted(persistent, style, role)
    anchor = max((i for i, r in enumerate(rows) if float(r["timestamp"]) <= t), default=None)
    if anchor is None:
        return rows[offset - 1] if sign > 0 and 0 < offset <= len(rows) else None
    i = anchor + sign * offset
    return rows[i] if 0 <= i < len(rows) else None


def nth_next(persistent: Sequence[Row], t: float, offset: int = 1, style: str | None = None, role: str | None = None) -> Row | None:
    return _nth(persistent, t, offset, style, role, +1)


def nth_prev(persistent: Sequence[Row], t: float, offset: int = 1, style: str | None = None, role: str | None = None) -> Row | None:
    return _nth(persistent, t, offset, style, role, -1)
