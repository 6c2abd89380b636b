"""A session's raw episodes: `normalize_session` materializes them under `<home>/raw/<session>/`,
described by a manifest (`RawSummary`) that the session build reads. Pure library: no Dagster import."""

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lerobot_assets.checks.validate import validate_dataset
from lerobot_assets.format.atomic import recover_replace, replace_dir
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.home.keys import SessionKey, parse_session_key
from lerobot_assets.home.layout import MANIFEST, HomeLayout
from lerobot_assets.home.scratch import Progress, scratch_dir
from lerobot_assets.sources import inbox
from lerobot_assets.sources.lerobot_import import hub_repo, read_import, resolve_dataset
from lerobot_assets.tools.merge import dataset_fingerprint
from lerobot_assets.video.summary import episode_first_frame

if TYPE_CHECKING:  # imported lazily at run time: the simulator pulls in gym and pygame
    from lerobot_assets.sources.pusht import PushTSourceConfig

logger = logging.getLogger(__name__)


@dataclass
class RawSummary:
    """manifest.json of a session's normalized raw episodes: what the session dataset is built from."""

    session: str
    kind: str
    format: Literal["raw-v1", "lerobot-v3"]
    # The raw-v1 session folder or the v3 dataset root: absolute in memory; in manifest.json relative
    # to the home when inside it, so a home moved, synced, or pulled into a workspace still resolves.
    source: str
    fps: int
    robot_type: str | None
    episodes: int
    frames: int
    lengths: list[int]
    tasks: list[str]
    cameras: dict[str, str]  # camera key -> "png" / "mp4" / "video"
    bytes: int
    fingerprint: str
    details: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps if self.fps else 0.0

    def save(self, path: Path, home: Path) -> None:
        record = asdict(self)
        source, root = Path(self.source), home.resolve()
        if source.resolve().is_relative_to(root):
            record["source"] = source.resolve().relative_to(root).as_posix()
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, home: Path) -> "RawSummary":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the session's raw episodes are not materialized (materialize raw_episodes first)")
        summary = cls(**json.loads(path.read_text()))
        if not Path(summary.source).is_absolute():
            summary.source = str(home.absolute() / summary.source)
        return summary


def read_raw_summary(layout: HomeLayout, session: str) -> RawSummary:
    return RawSummary.load(layout.raw(session) / MANIFEST, layout.root)


def _summary_from_raw(session: str, kind: str, raw: inbox.RawSession, source: Path, fingerprint: str, details: dict[str, Any]) -> RawSummary:
    return RawSummary(
        session=session,
        kind=kind,
        format="raw-v1",
        source=str(source),
        fps=raw.spec.fps,
        robot_type=raw.spec.robot_type,
        episodes=len(raw.episodes),
        frames=raw.frames,
        lengths=[e.length for e in raw.episodes],
        tasks=raw.tasks,
        cameras=raw.camera_kinds(),
        bytes=inbox.session_bytes(raw.root),
        fingerprint=fingerprint,
        details=details,
    )


def normalize_session(
    session: str,
    layout: HomeLayout,
    *,
    sim: "PushTSourceConfig | None" = None,
    progress: Progress | None = None,
) -> RawSummary:
    """Materialize a session's raw episodes under `<home>/raw/<session>/` and return its manifest.

    sim: a `PushTSourceConfig` whose fields other than seed/episodes apply to sim sessions.
    Never modifies or deletes anything in the inbox or in an imported dataset.
    """
    key = parse_session_key(session)
    say = progress or logger.info
    if key.kind == "sim":
        return _normalize_sim(key, layout, sim, say)
    if key.kind == "inbox":
        return _normalize_inbox(key, layout, say)
    return _normalize_import(key, layout, say)


def _normalize_sim(key: SessionKey, layout: HomeLayout, template: "PushTSourceConfig | None", say: Progress) -> RawSummary:
    from lerobot_assets.sources.pusht import PUSHT_FPS, EpisodeResult, PushTSourceConfig, iter_episode_frames

    seeds = key.seeds
    base = template if template is not None else PushTSourceConfig()
    config = base.model_copy(update={"seed": seeds[0], "episodes": len(seeds)})
    final = layout.raw(key.key)
    # Before scratch_dir clears this session's old scratch: a killed swap's new episodes may be there.
    recover_replace(final)
    scratch = scratch_dir(layout.raw_root, key.key)
    try:
        results = []
        t0 = time.perf_counter()
        with inbox.RawSessionWriter.create(scratch, fps=PUSHT_FPS, features=config.features(), robot_type="pusht") as w:
            for i, seed in enumerate(seeds):
                result = EpisodeResult(seed=seed)
                for frame in iter_episode_frames(seed, config, result):
                    w.add_frame(frame)
                n = w.save_episode()
                results.append(result)
                say(f"{key.key}: episode {i + 1}/{len(seeds)} (seed {seed}): {n} frames, "
                    f"{'success' if result.success else 'no success'} (coverage {result.max_coverage:.2f})")
            w.complete()
        raw = inbox.read_session(scratch)
        details = {
            "seeds": seeds,
            "success": [r.success for r in results],
            "success_rate": sum(r.success for r in results) / len(results),
            "max_steps": config.max_steps,
            "top_camera": config.top_camera,
            "image_size": config.image_size,
            "elapsed_s": round(time.perf_counter() - t0, 3),
        }
        summary = _summary_from_raw(key.key, "sim", raw, final, inbox.session_fingerprint(scratch), details)
        summary.save(scratch / MANIFEST, layout.root)
        replace_dir(scratch, final)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return summary


def _normalize_inbox(key: SessionKey, layout: HomeLayout, say: Progress) -> RawSummary:
    folder = layout.inbox / key.name
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: inbox session folder not found")
    fingerprint = inbox.session_fingerprint(folder)
    raw = inbox.read_session(folder)  # RawFormatError names the file and row
    say(f"{key.key}: {len(raw.episodes)} valid episodes, {raw.frames} frames, cameras {raw.camera_kinds()}")
    # The raw episodes stay in the inbox (never copied, moved or deleted); the manifest points at
    # them and records their fingerprint, so a later change to the inbox folder is noticed.
    summary = _summary_from_raw(key.key, "inbox", raw, folder.resolve(), fingerprint, {})
    out = layout.raw(key.key)
    out.mkdir(parents=True, exist_ok=True)
    summary.save(out / MANIFEST, layout.root)
    return summary


def _normalize_import(key: SessionKey, layout: HomeLayout, say: Progress) -> RawSummary:

    spec = read_import(layout.imports, key.name)
    if hub_repo(spec.source, spec.revision) is not None:
        say(f"{key.key}: fetching {spec.source} from the Hugging Face Hub")
    root = resolve_dataset(spec.source, download_dir=layout.downloads / key.name, revision=spec.revision)
    report = validate_dataset(root)
    if not report.ok:
        lines = "\n".join(f"  {p}" for p in report.errors[:20])
        raise ValueError(f"{key.key}: {root} is not a valid LeRobot v3 dataset:\n{lines}\n{report.summary()}")
    meta = DatasetMeta(root)
    lengths = [int(x) for x in meta.episodes.column("length").to_pylist()] if meta.num_episodes else []
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts)
    summary = RawSummary(
        session=key.key,
        kind="import",
        format="lerobot-v3",
        source=str(root),
        fps=meta.fps,
        robot_type=meta.info.robot_type,
        episodes=meta.num_episodes,
        frames=int(sum(lengths)),
        lengths=lengths,
        tasks=list(meta.tasks),
        cameras={k: "video" for k in meta.video_keys} | {k: "image" for k in meta.info.image_keys},
        bytes=size,
        fingerprint=dataset_fingerprint(root),
        details={"source": spec.source, "revision": spec.revision, "warnings": len(report.warnings)},
    )
    say(f"{key.key}: {summary.episodes} episodes, {summary.frames} frames from {root}")
    out = layout.raw(key.key)
    out.mkdir(parents=True, exist_ok=True)
    summary.save(out / MANIFEST, layout.root)
    return summary


def raw_preview(summary: RawSummary) -> np.ndarray | None:
    """Frame 0 of episode 0 of the last camera of a session's raw episodes (the widest view in our
    sources: PushT's top camera), HWC uint8 RGB; None when the session has no camera or episode."""
    if not summary.cameras or not summary.episodes:
        return None
    source = Path(summary.source)
    if summary.format == "lerobot-v3":
        keys = DatasetMeta(source).video_keys
        return episode_first_frame(source, keys[-1]) if keys else None
    return inbox.preview_frame(source, list(summary.cameras)[-1])
