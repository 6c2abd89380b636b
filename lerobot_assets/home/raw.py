"""Recording sessions: their names, the data-home layout, and the two library steps of each session.

A session is a batch of episodes from one source, and the unit of work and of partitioning:

- `sim-s0000-0009`: PushT simulation episodes of seeds 0..9 (the name is the whole recipe);
- `inbox-<folder>`: a raw-v1 recording dropped into `<home>/inbox/<folder>/` (see inbox.py);
- `import-<name>`: an existing LeRobot v3 dataset, registered under `<home>/imports/<name>.json`.

Each session goes through `normalize_session` (raw episodes, described by a manifest under
`<home>/raw/<session>/`) and `build_session_dataset` (a v3 dataset under `<home>/sessions/<session>/`,
replaced atomically). The Dagster assets are thin wrappers around these; the benchmark calls them
directly as the "library alone" baseline. Pure library: no Dagster import.
"""

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lerobot_assets.format.atomic import replace_dir
from lerobot_assets.sources import inbox

if TYPE_CHECKING:  # imported lazily at run time: the simulator pulls in gym and pygame
    from lerobot_assets.sources.pusht import PushTSourceConfig
    from lerobot_assets.video.config import VideoEncoderConfig

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]

HOME_ENV = "LEROBOT_ASSETS_HOME"
DEFAULT_HOME = ".demo_home"


def default_home() -> str:
    """The data home when none is given: $LEROBOT_ASSETS_HOME, else `.demo_home` in the working
    directory (where `make demo` puts it). Every command, resource and query session uses this one."""
    return os.environ.get(HOME_ENV) or str(Path.cwd() / DEFAULT_HOME)

SESSION_KINDS = ("sim", "inbox", "import")
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}"
_KEY_RE = re.compile(rf"^(sim|inbox|import)-({_NAME})$")
_NAME_RE = re.compile(rf"^{_NAME}$")
_SIM_RE = re.compile(r"^s(\d+)-(\d+)$")
MANIFEST = "manifest.json"
MERGED_DATASET = "lerobot_dataset"


# ------------------------------------------------------------------------------------------ names
@dataclass(frozen=True)
class SessionKey:
    key: str
    kind: Literal["sim", "inbox", "import"]
    name: str

    @property
    def seeds(self) -> list[int]:
        """Seeds of a sim session, in episode order."""
        if self.kind != "sim":
            raise ValueError(f"{self.key} is not a sim session")
        m = _SIM_RE.match(self.name)
        assert m is not None  # checked by parse_session_key
        return list(range(int(m.group(1)), int(m.group(2)) + 1))


def parse_session_key(key: str) -> SessionKey:
    m = _KEY_RE.match(key)
    if m is None:
        raise ValueError(
            f"session {key!r} is not a session name: expected sim-s<first>-<last>, inbox-<folder> or "
            f"import-<name> (letters, digits, '.', '_', '-')"
        )
    kind, name = m.group(1), m.group(2)
    if kind == "sim":
        s = _SIM_RE.match(name)
        if s is None or int(s.group(2)) < int(s.group(1)):
            raise ValueError(f"sim session {key!r}: expected sim-s<first seed>-<last seed> with first <= last, e.g. sim-s0000-0009")
    return SessionKey(key, kind, name)  # type: ignore[arg-type]


def sim_session_key(first_seed: int, episodes: int) -> str:
    if first_seed < 0 or episodes < 1:
        raise ValueError(f"a sim session needs first_seed >= 0 and episodes >= 1, got {first_seed}, {episodes}")
    return f"sim-s{first_seed:04d}-{first_seed + episodes - 1:04d}"


def sim_session_keys(sessions: int, episodes: int, first_seed: int = 0) -> list[str]:
    """`sessions` consecutive sim sessions of `episodes` episodes each, seeds from `first_seed` on."""
    return [sim_session_key(first_seed + i * episodes, episodes) for i in range(sessions)]


def inbox_session_key(folder: str) -> str:
    if not _NAME_RE.match(folder):
        raise ValueError(f"inbox folder {folder!r} cannot name a session: use letters, digits, '.', '_', '-' (first a letter or digit)")
    return f"inbox-{folder}"


def import_session_key(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"import name {name!r}: use letters, digits, '.', '_', '-' (first a letter or digit)")
    return f"import-{name}"


# ------------------------------------------------------------------------------------------ layout
@dataclass(frozen=True)
class HomeLayout:
    """Where everything lives under a data home (a local directory)."""

    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def imports(self) -> Path:
        return self.root / "imports"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def raw_root(self) -> Path:
        return self.root / "raw"

    @property
    def sessions_root(self) -> Path:
        return self.root / "sessions"

    @property
    def datasets_root(self) -> Path:
        return self.root / "datasets"

    @property
    def previews(self) -> Path:
        return self.root / "previews"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog"

    def raw(self, session: str) -> Path:
        return self.raw_root / session

    def session(self, session: str) -> Path:
        return self.sessions_root / session

    def dataset(self, name: str = MERGED_DATASET) -> Path:
        return self.datasets_root / name

    def inbox_folder(self, session: str) -> Path:
        key = parse_session_key(session)
        if key.kind != "inbox":
            raise ValueError(f"{session} is not an inbox session")
        return self.inbox / key.name


def _scratch(parent: Path, session: str) -> Path:
    """A fresh temp dir beside the target (same filesystem: the final rename is atomic)."""
    parent.mkdir(parents=True, exist_ok=True)
    # '~' never occurs in a session name, so this matches this session's leftovers only (a killed
    # run's), not those of a session whose name merely starts with this one.
    for stale in parent.glob(f".tmp-{session}~*"):
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{session}~", dir=parent))


# ------------------------------------------------------------------------------------------ raw episodes
@dataclass
class RawSummary:
    """manifest.json of a session's normalized raw episodes: what the session dataset is built from."""

    session: str
    kind: str
    format: Literal["raw-v1", "lerobot-v3"]
    source: str  # absolute path of the raw-v1 session folder or of the v3 dataset root
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

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "RawSummary":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the session's raw episodes are not materialized (materialize raw_episodes first)")
        return cls(**json.loads(path.read_text()))


def read_raw_summary(layout: HomeLayout, session: str) -> RawSummary:
    return RawSummary.load(layout.raw(session) / MANIFEST)


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
    scratch = _scratch(layout.raw_root, key.key)
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
        summary.save(scratch / MANIFEST)
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
    summary.save(out / MANIFEST)
    return summary


def _normalize_import(key: SessionKey, layout: HomeLayout, say: Progress) -> RawSummary:
    from lerobot_assets.format.meta import DatasetMeta
    from lerobot_assets.format.validate import validate_dataset
    from lerobot_assets.sources.lerobot_import import hub_repo, read_import, resolve_dataset
    from lerobot_assets.tools.merge import dataset_fingerprint

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
    summary.save(out / MANIFEST)
    return summary


# ------------------------------------------------------------------------------------------ session dataset
@dataclass
class SessionBuild:
    root: Path
    episodes: int
    frames: int
    dropped_frames: int
    elapsed_s: float


def build_session_dataset(
    summary: RawSummary,
    output: Path,
    *,
    encoder: "VideoEncoderConfig | None" = None,
    encoder_threads: int | None = None,
    progress: Progress | None = None,
) -> SessionBuild:
    """Write the session's v3 dataset at `output`, built beside it and swapped in whole.

    raw-v1 sessions go through the DatasetWriter (one episode at a time, videos encoded while the
    frames stream in); imported v3 datasets are copied by the merge tool's stream copy, so their
    videos are never re-encoded.
    """
    say = progress or logger.info
    output = Path(output)
    t0 = time.perf_counter()
    scratch = _scratch(output.parent, summary.session)
    target = scratch / "dataset"
    try:
        if summary.format == "lerobot-v3":
            from lerobot_assets.tools.merge import merge_datasets

            result = merge_datasets([(summary.session, Path(summary.source))], target, progress=say)
            episodes, frames, dropped = result.episodes, result.frames, 0
        else:
            episodes, frames, dropped = _write_raw_session(summary, target, encoder, encoder_threads, say)
        replace_dir(target, output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return SessionBuild(output, episodes, frames, dropped, time.perf_counter() - t0)


def _write_raw_session(
    summary: RawSummary, target: Path, encoder: "VideoEncoderConfig | None", threads: int | None, say: Progress
) -> tuple[int, int, int]:
    from lerobot_assets.recording.writer import DatasetWriter

    source = Path(summary.source)
    if summary.kind == "inbox":
        now = inbox.session_fingerprint(source)
        if now != summary.fingerprint:
            raise RuntimeError(
                f"{source}: the inbox session changed after its raw episodes were materialized "
                f"(fingerprint {summary.fingerprint} -> {now}); materialize raw_episodes for {summary.session} again"
            )
    raw = inbox.read_session(source)
    frames = dropped = 0
    writer = DatasetWriter.create(
        target,
        fps=raw.spec.fps,
        features=raw.spec.writer_features(),
        robot_type=raw.spec.robot_type,
        encoder=encoder,
        encoder_threads=threads,
    )
    with writer:
        for ep in raw.episodes:
            for frame in inbox.iter_episode_frames(raw, ep):
                writer.add_frame(frame)
            saved = writer.save_episode()
            frames += saved.length
            lost = sum(saved.dropped_frames.values())
            dropped += lost
            say(f"{summary.session}: wrote episode {saved.episode_index + 1}/{len(raw.episodes)} "
                f"({saved.length} frames{f', {lost} dropped by the encoder' if lost else ''})")
    return len(raw.episodes), frames, dropped


# ------------------------------------------------------------------------------------------ sim seeds
def sim_seed_ranges(keys: list[str]) -> dict[str, tuple[int, int]]:
    """{session: (first seed, last seed)} of the sim sessions among `keys`."""
    out = {}
    for k in keys:
        try:
            key = parse_session_key(k)
        except ValueError:
            continue
        if key.kind == "sim":
            seeds = key.seeds
            out[k] = (seeds[0], seeds[-1])
    return out


def next_free_seed(keys: list[str]) -> int:
    """The seed after the highest one any registered sim session uses (0 if none)."""
    ranges = sim_seed_ranges(keys)
    return max((last for _, last in ranges.values()), default=-1) + 1


def overlapping_sim_sessions(keys: list[str], new: str) -> list[str]:
    """Registered sim sessions sharing a seed with `new` (their episodes would be duplicated)."""
    first, last = parse_session_key(new).seeds[0], parse_session_key(new).seeds[-1]
    return [k for k, (a, b) in sim_seed_ranges(keys).items() if k != new and a <= last and first <= b]
