"""The three modules: each turns a backend's answers for one episode into language rows.

- `plan`: subtask spans (starts snapped to distinct frames, stitched to cover the episode), a
  `subtask` and a `plan` row at each span start, `memory` rows from the second span on, and
  `task_aug` rephrasings at the first frame.
- `interjections`: the opening speech atom, and up to N (interjection, speech atom) pairs at span
  starts, each where a `plan` row is (the span's own).
- `vqa`: one (question, answer) pair per anchor and camera, anchors every 1/hz seconds.

Sampling is seeded per episode (`random.Random(f"{seed}:{episode}:{module}")`), as LeRobot does.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from lerobot_assets.annotate.backends.base import Backend, RawSpan, VqaRequest
from lerobot_assets.annotate.config import AnnotateConfig
from lerobot_assets.annotate.episodes import EpisodeData
from lerobot_assets.annotate.schema import row, speech_atom

Row = dict[str, Any]


@dataclass(frozen=True)
class Span:
    text: str
    start: float  # a frame timestamp
    end: float  # the next span's start, or the episode's last frame timestamp


def clean_spans(raw: list[RawSpan], ep: EpisodeData) -> list[Span]:
    """LeRobot's cleaning: drop bad entries, clamp, swap reversed, sort, snap starts to distinct frames
    (a start on a taken frame moves to the next free one, or is dropped), then stitch: the first start
    is the first frame, each end the next start, the last end the last frame."""
    if not ep.length:
        return []
    t0, t_last = ep.times[0], ep.times[-1]
    items = []
    for s in raw:
        text = (s.text or "").strip()
        try:
            a, b = float(s.start), float(s.end)
        except (TypeError, ValueError):
            continue
        if not text or a != a or b != b:
            continue
        a, b = min(max(a, t0), t_last), min(max(b, t0), t_last)
        items.append((min(a, b), text))
    items.sort()
    taken: set[int] = set()
    snapped: list[tuple[int, str]] = []
    for a, text in items:
        i = ep.frame_of(a)
        while i in taken and i < ep.length:
            i += 1
        if i >= ep.length:
            continue
        taken.add(i)
        snapped.append((i, text))
    snapped.sort()
    if not snapped:
        return []
    snapped[0] = (0, snapped[0][1])
    times = ep.times
    spans = []
    for k, (i, text) in enumerate(snapped):
        end = times[snapped[k + 1][0]] if k + 1 < len(snapped) else t_last
        spans.append(Span(text, times[i], end))
    return spans


def spans_from_rows(rows: list[Row]) -> list[Span]:
    """Subtask spans back from persistent rows (each end the next start; the last is open-ended)."""
    subs = sorted((r for r in rows if r.get("style") == "subtask"), key=lambda r: float(r["timestamp"]))
    return [
        Span(r.get("content") or "", float(r["timestamp"]), float(subs[k + 1]["timestamp"]) if k + 1 < len(subs) else float("inf"))
        for k, r in enumerate(subs)
    ]


def plan_text(spans: list[Span], t: float) -> str:
    todo = [s.text for s in spans if s.start >= t]
    return "\n".join(f"{i}. {text}" for i, text in enumerate(todo, 1))


def plan_module(ep: EpisodeData, backend: Backend, cfg: AnnotateConfig) -> tuple[list[Row], list[Span]]:
    spans = clean_spans(backend.subtasks(ep, cfg), ep)
    rows: list[Row] = []
    if not spans:
        return rows, spans
    t0 = ep.times[0]
    task = ep.task
    variants = [task, *backend.task_variants(ep, task, cfg.n_task_rephrasings, cfg)] if cfg.n_task_rephrasings > 0 else []
    for text in dict.fromkeys(v.strip() for v in variants if v and v.strip()):
        rows.append(row("user", text, "task_aug", t0))
    memory = ""
    for k, span in enumerate(spans):
        rows.append(row("assistant", span.text, "subtask", span.start))
        if cfg.emit_plan:
            rows.append(row("assistant", plan_text(spans, span.start), "plan", span.start))
        if cfg.emit_memory and k > 0:
            memory = backend.memory(ep, memory, spans[k - 1].text, [s.text for s in spans[k:]])
            if memory:
                rows.append(row("assistant", memory, "memory", span.start))
    return rows, spans


def interjections_module(ep: EpisodeData, spans: list[Span], backend: Backend, cfg: AnnotateConfig) -> list[Row]:
    rows: list[Row] = []
    if not ep.length:
        return rows
    opening = backend.initial_speech(ep, ep.task, cfg)
    if opening:
        rows.append(speech_atom(opening, ep.times[0]))
    if len(spans) < 2 or cfg.max_interjections <= 0:
        return rows
    candidates = [k for k in range(1, len(spans)) if spans[k].start - ep.times[0] >= cfg.interjection_min_t]
    rng = random.Random(f"{cfg.seed}:{ep.index}:interjection")
    chosen = sorted(rng.sample(candidates, min(cfg.max_interjections, len(candidates))))
    for k in chosen:
        t = spans[k].start
        got = backend.interjection(ep, spans[k - 1].text, spans[k].text, t, cfg)
        if got is None:
            continue
        cue, reply = got
        rows.append(row("user", cue, "interjection", t))
        rows.append(speech_atom(reply, t))
    return rows


def vqa_anchors(ep: EpisodeData, cfg: AnnotateConfig) -> list[float]:
    """Every 1/hz seconds from the first frame: the nearest frame and the next K-1 frames."""
    if not ep.length:
        return []
    out: list[int] = []
    t, step = ep.times[0], 1.0 / cfg.vqa_hz
    while t <= ep.times[-1] + 1e-9:
        i = ep.frame_of(t)
        out.extend(range(i, min(i + cfg.vqa_k, ep.length)))
        t += step
    return [ep.times[i] for i in sorted(set(out))]


def vqa_module(ep: EpisodeData, backend: Backend, cfg: AnnotateConfig) -> list[Row]:
    if not backend.supports_vqa(ep):
        return []
    cameras = [c.key for c in ep.cameras if cfg.cameras is None or c.key in cfg.cameras]
    rng = random.Random(f"{cfg.seed}:{ep.index}:vqa")
    requests: list[VqaRequest] = []
    for t in vqa_anchors(ep, cfg):
        qtype = rng.choice(list(cfg.question_types))
        requests.extend(VqaRequest(t, cam, qtype) for cam in cameras)
    rows: list[Row] = []
    for req, got in zip(requests, backend.vqa(ep, requests, cfg)):
        if got is None:
            continue
        question, answer = got
        rows.append(row("user", question, "vqa", req.timestamp, req.camera))
        rows.append(row("assistant", json.dumps(answer, sort_keys=True), "vqa", req.timestamp, req.camera))
    return rows
