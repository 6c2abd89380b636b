"""The session build: a session's raw episodes -> its own small v3 dataset under `<home>/sessions/<session>/`,
built beside the old one and swapped in whole. Pure library: no Dagster import."""

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from lerobot_assets.format.atomic import recover_replace, replace_dir
from lerobot_assets.home.raw import RawSummary
from lerobot_assets.home.scratch import Progress, scratch_dir
from lerobot_assets.recording.writer import DatasetWriter
from lerobot_assets.sources import inbox
from lerobot_assets.tools.merge import merge_datasets
from lerobot_assets.video.config import VideoEncoderConfig

logger = logging.getLogger(__name__)


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
    encoder: VideoEncoderConfig | None = None,
    encoder_threads: int | None = None,
    progress: Progress | None = None,
) -> SessionBuild:
    """Write the session's v3 dataset at `output`, built beside it and swapped in whole.

    raw-v1 sessions go through the DatasetWriter (one episode at a time, videos encoded while the
    frames stream in); imported v3 datasets are copied by the merge tool's stream copy, so their
    videos are never re-encoded.
    """
    say = progress or logger.info
    output = Path(output).absolute()
    t0 = time.perf_counter()
    # Before scratch_dir clears this session's old scratch: a killed swap's new dataset may be there.
    recover_replace(output)
    scratch = scratch_dir(output.parent, summary.session)
    target = scratch / "dataset"
    try:
        if summary.format == "lerobot-v3":
            result = merge_datasets([(summary.session, Path(summary.source))], target, progress=say)
            episodes, frames, dropped = result.episodes, result.frames, 0
        else:
            episodes, frames, dropped = _write_raw_session(summary, target, encoder, encoder_threads, say)
        replace_dir(target, output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return SessionBuild(output, episodes, frames, dropped, time.perf_counter() - t0)


def _write_raw_session(
    summary: RawSummary, target: Path, encoder: VideoEncoderConfig | None, threads: int | None, say: Progress
) -> tuple[int, int, int]:
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
