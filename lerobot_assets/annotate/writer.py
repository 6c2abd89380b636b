"""The writer: a NEW dataset with `language_persistent` and `language_events` in LeRobot 0.6.1's
canonical types, through the rewrite engine (data rewritten one row group per episode, videos
copied, stats recomputed; the input is only read).

An episode given rows gets exactly those; every other episode keeps the language rows it has
(re-encoded in the canonical types, whatever types the input used), so annotating a subset never
drops the others' annotations. Persistent rows are sorted by (timestamp, style, role) and the same
list is stored on every frame; events go to the frame whose timestamp equals theirs, sorted by
(style, role, camera), without their timestamp. info.json declares both columns
(`{"dtype": "language", "shape": [1], "names": null}`) and lists the `say` tool in `tools`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lerobot_assets.annotate.schema import (
    LANGUAGE_COLUMNS,
    LANGUAGE_EVENTS,
    LANGUAGE_PERSISTENT,
    SAY_TOOL_SCHEMA,
    column_for_style,
    event_sort_key,
    from_arrow_rows,
    language_feature,
    persistent_sort_key,
    to_arrow,
)
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.stats.dataset import column_to_numpy
from lerobot_assets.tools.output import Progress
from lerobot_assets.tools.rewrite import AddedFeature, RewriteSummary, Transform, rewrite_dataset

Row = dict[str, Any]


def frame_columns(rows: list[Row], times: list[float]) -> tuple[list[list[Row]], list[list[Row]]]:
    """One episode's rows (each with a timestamp) -> (persistent per frame, events per frame)."""
    persistent = sorted((r for r in rows if column_for_style(r.get("style")) == LANGUAGE_PERSISTENT), key=persistent_sort_key)
    index = {t: i for i, t in enumerate(times)}
    events: list[list[Row]] = [[] for _ in times]
    for r in rows:
        if column_for_style(r.get("style")) != LANGUAGE_EVENTS:
            continue
        i = index.get(float(r["timestamp"]))
        if i is None:
            raise ValueError(f"event {r!r} is not at a frame timestamp")
        events[i].append({k: v for k, v in r.items() if k != "timestamp"})
    for frame in events:
        frame.sort(key=event_sort_key)
    return [persistent] * len(times), events


def _existing(part: pa.Table, times: list[float]) -> list[Row]:
    rows: list[Row] = []
    if LANGUAGE_PERSISTENT in part.column_names and part.num_rows:
        for r in from_arrow_rows(part.column(LANGUAGE_PERSISTENT)[0].as_py()):
            r["timestamp"] = float(np.float32(r["timestamp"]))
            rows.append(r)
    if LANGUAGE_EVENTS in part.column_names:
        for t, frame in zip(times, part.column(LANGUAGE_EVENTS).to_pylist()):
            for r in from_arrow_rows(frame):
                r["timestamp"] = t
                rows.append(r)
    return rows


class _Columns:
    """Both columns of one episode, computed once for the two `AddedFeature` calls."""

    def __init__(self, annotations: Mapping[int, list[Row]]) -> None:
        self.annotations = annotations
        self._cache: tuple[int, tuple[pa.Array, pa.Array]] | None = None

    def get(self, ep: int, part: pa.Table) -> tuple[pa.Array, pa.Array]:
        if self._cache is None or self._cache[0] != ep:
            order = np.argsort(column_to_numpy(part.column("frame_index")), kind="stable")
            times_sorted = [float(t) for t in column_to_numpy(part.column("timestamp")).astype(np.float32)[order]]
            times = [float(t) for t in column_to_numpy(part.column("timestamp")).astype(np.float32)]
            rows = self.annotations[ep] if ep in self.annotations else _existing(part, times)
            pers, events = frame_columns(rows, times_sorted)
            # Back to the part's row order (frames are in order in every file we know; be safe).
            back = np.empty_like(order)
            back[order] = np.arange(len(order))
            pers = [pers[i] for i in back]
            events = [events[i] for i in back]
            self._cache = (ep, (to_arrow(LANGUAGE_PERSISTENT, pers), to_arrow(LANGUAGE_EVENTS, events)))
        return self._cache[1]


def write_annotated(src: Path, dst: Path, annotations: Mapping[int, list[Row]], progress: Progress | None = None, meta: DatasetMeta | None = None) -> RewriteSummary:
    """Write `src` with its language columns replaced for the episodes of `annotations` (source
    episode index -> rows) into the empty directory `dst`."""
    meta = meta or DatasetMeta(src)
    cols = _Columns(annotations)
    transform = Transform(
        drop=[k for k in LANGUAGE_COLUMNS if k in meta.info.features],
        add={
            LANGUAGE_PERSISTENT: AddedFeature(language_feature(), lambda ep, part: cols.get(ep, part)[0]),
            LANGUAGE_EVENTS: AddedFeature(language_feature(), lambda ep, part: cols.get(ep, part)[1]),
        },
    )
    keep = sorted(int(e) for e in meta.episodes.column("episode_index").to_pylist())
    summary = rewrite_dataset(src, dst, keep, transform, progress=progress, meta=meta)
    add_say_tool(dst)
    return summary


def add_say_tool(root: Path) -> None:
    """Declare the `say` tool in info.json's `tools` unless a tool named say is there."""
    info = DatasetInfo.load(root)
    tools = list((info.model_extra or {}).get("tools") or [])
    if not any(isinstance(t, dict) and (t.get("function") or {}).get("name") == "say" for t in tools):
        tools.append(SAY_TOOL_SCHEMA)
    info_extra = info.model_extra
    assert info_extra is not None
    info_extra["tools"] = tools
    info.save(root)
