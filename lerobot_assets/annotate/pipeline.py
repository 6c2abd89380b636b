"""`annotate_dataset`: modules -> staging -> validator -> writer, for one dataset root.

Nothing is written to the output unless every annotated episode validates; the input is only read.
Staging (and the VLM reply cache) live outside both, so a killed run resumes where it stopped and a
re-run with the same inputs recomputes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lerobot_assets.annotate.backends.base import Backend
from lerobot_assets.annotate.config import MODULES, AnnotateConfig
from lerobot_assets.annotate.episodes import EpisodeData, cameras_of, iter_episodes
from lerobot_assets.annotate.modules import Span, interjections_module, plan_module, spans_from_rows, vqa_module
from lerobot_assets.annotate.staging import Staging
from lerobot_assets.annotate.validator import AnnotationValidationError, Report, validate_episode
from lerobot_assets.annotate.writer import write_annotated
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.tools.output import (
    Progress,
    Stopwatch,
    check_not_input,
    check_output_free,
    new_dataset,
    no_progress,
    resolve_output,
)

Row = dict[str, Any]
# Which styles each module owns: re-annotating an episode replaces the rows of the modules run and
# keeps the others' rows (LeRobot publishes disabled modules' stale staging instead).
OWNED_STYLES: dict[str, set[str | None]] = {
    "plan": {"subtask", "plan", "memory", "task_aug"},
    "interjections": {"interjection", None},
    "vqa": {"vqa"},
}


@dataclass
class AnnotateResult:
    output: Path
    episodes: int  # episodes annotated in this run
    frames: int  # frames of the output
    rows_per_style: dict[str, int]
    calls: int
    cached: int
    resumed: int  # (episode, module) pairs taken from staging
    seconds: float
    report: Report
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        styles = ", ".join(f"{k}={v}" for k, v in sorted(self.rows_per_style.items()))
        return (
            f"annotate: {self.episodes} episodes annotated ({styles}); VLM calls {self.calls}, from cache {self.cached}; "
            f"{self.resumed} staged results reused; {self.seconds:.1f} s -> {self.output}"
        )


def default_staging(out: Path) -> Path:
    return out.parent / f".{out.name}.annotate-staging"


def parse_episodes(text: str | None) -> list[int] | None:
    """'0-9,12' -> [0..9, 12]; None or '' -> None (all)."""
    if not text:
        return None
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"bad episode range {part!r} (use e.g. 0-9,12)") from None
    return sorted(set(out))


def _key(backend: Backend, cfg: AnnotateConfig, module: str, ep: EpisodeData, upstream: Any = None) -> str:
    payload = json.dumps([backend.identity(), module, cfg.digest(module), ep.fingerprint(), upstream], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def annotate_episode(
    ep: EpisodeData, backend: Backend, cfg: AnnotateConfig, modules: Sequence[str], staging: Staging
) -> tuple[dict[str, list[Row]], int]:
    """Run `modules` on one episode through staging; (rows per module, pairs reused from staging)."""
    out: dict[str, list[Row]] = {}
    reused = 0
    spans: list[Span] | None = None
    if "plan" in modules:
        key = _key(backend, cfg, "plan", ep)
        if staging.is_done(ep.index, "plan", key):
            out["plan"] = staging.read(ep.index, "plan")
            reused += 1
        else:
            out["plan"], _ = plan_module(ep, backend, cfg)
            staging.write(ep.index, "plan", out["plan"], key)
        spans = spans_from_rows(out["plan"])
    if "interjections" in modules:
        if spans is None:
            spans = spans_from_rows(ep.persistent)
        for k, s in enumerate(spans):  # the open last end is the episode's last frame
            if s.end == float("inf"):
                spans[k] = Span(s.text, s.start, ep.times[-1])
        key = _key(backend, cfg, "interjections", ep, [(s.text, s.start) for s in spans])
        if staging.is_done(ep.index, "interjections", key):
            out["interjections"] = staging.read(ep.index, "interjections")
            reused += 1
        else:
            out["interjections"] = interjections_module(ep, spans, backend, cfg)
            staging.write(ep.index, "interjections", out["interjections"], key)
    if "vqa" in modules:
        key = _key(backend, cfg, "vqa", ep)
        if staging.is_done(ep.index, "vqa", key):
            out["vqa"] = staging.read(ep.index, "vqa")
            reused += 1
        else:
            out["vqa"] = vqa_module(ep, backend, cfg)
            staging.write(ep.index, "vqa", out["vqa"], key)
    return out, reused


def kept_rows(ep: EpisodeData, modules: Sequence[str]) -> list[Row]:
    """The episode's existing rows that no module of this run owns."""
    owned: set[str | None] = set().union(*(OWNED_STYLES[m] for m in modules)) if modules else set()
    return [r for r in [*ep.persistent, *ep.events] if r.get("style") not in owned]


def annotate_dataset(
    root: Path | str,
    out: Path | str,
    backend: Backend,
    *,
    modules: Sequence[str] = MODULES,
    episodes: Sequence[int] | None = None,
    config: AnnotateConfig | None = None,
    staging_dir: Path | str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> AnnotateResult:
    cfg = config or AnnotateConfig()
    progress = progress or no_progress
    clock = Stopwatch()
    unknown = [m for m in modules if m not in MODULES]
    if unknown or not modules:
        raise ValueError(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
    modules = [m for m in MODULES if m in modules]
    src = Path(root)
    final = resolve_output(out)
    # Refused before any work: nothing is computed for an output that cannot be written.
    check_not_input(final, [src])
    check_output_free(final, overwrite)
    meta = DatasetMeta(src)
    cameras = {c.key: c for c in cameras_of(meta)}
    check = getattr(backend, "check", None)
    if callable(check):
        check()  # an unreachable server fails here, before any episode is read
    if cfg.cameras is not None:
        bad = [c for c in cfg.cameras if c not in cameras]
        if bad:
            raise ValueError(f"unknown camera(s) {bad}; {src} has {sorted(cameras) or 'no cameras'}")
    staging = Staging(Path(staging_dir) if staging_dir else default_staging(final))
    report = Report()
    annotations: dict[int, list[Row]] = {}
    styles: Counter[str] = Counter()
    reused = 0
    selected = list(iter_episodes(src, episodes, meta))
    for done, ep in enumerate(selected, 1):
        by_module, n = annotate_episode(ep, backend, cfg, modules, staging)
        reused += n
        kept = kept_rows(ep, modules)
        checked: dict[str | None, list[Row]] = {None: kept}
        checked.update(by_module)
        validate_episode(ep.index, ep.times, checked, cameras, report)
        rows = [r for m in modules for r in by_module.get(m, [])] + kept
        annotations[ep.index] = rows
        styles.update(r.get("style") or "speech" for m in modules for r in by_module.get(m, []))
        for m in modules:  # one bar per module
            progress(m, done, len(selected))
    if report.errors:
        raise AnnotationValidationError(report)
    with new_dataset(final, [src], overwrite=overwrite, operation="annotate") as tmp:
        summary = write_annotated(src, tmp, annotations, progress, meta)
    c = backend.counters()
    return AnnotateResult(final, len(selected), summary.frames, dict(styles), c["calls"], c["cached"], reused, clock.seconds, report, summary.notes)


def validate_annotations(root: Path | str) -> Report:
    """Validate every episode's language rows of an annotated dataset (as stored)."""
    meta = DatasetMeta(root)
    cameras = {c.key: c for c in cameras_of(meta)}
    report = Report()
    for ep in iter_episodes(Path(meta.root), None, meta):
        validate_episode(ep.index, ep.times, {None: [*ep.persistent, *ep.events]}, cameras, report)
    return report
