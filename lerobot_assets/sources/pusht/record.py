"""Recording the built-in PushT simulation into a dataset (new, or appended to).

A run records the seeds `config.seed .. config.seed + episodes - 1` that the root does not hold yet
(an episode's seed is recognized by its first frame), in order: re-running a run that was killed
finishes it, and the result equals an uninterrupted run's, never a second copy of its episodes.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from lerobot_assets.format.episodes import read_episodes
from lerobot_assets.recording.writer import DatasetWriter, EpisodeSummary, absolute_root
from lerobot_assets.sources.pusht.config import ACTION_KEY, PUSHT_FPS, STATE_KEY, PushTSourceConfig
from lerobot_assets.sources.pusht.episodes import (
    EpisodeResult,
    episode_seeds,
    first_frame_signature,
    iter_episode_frames,
    seed_signatures,
)
from lerobot_assets.video.config import VideoEncoderConfig


@dataclass
class SimRecordReport:
    root: str
    episodes: int = 0  # recorded by this run
    frames: int = 0
    successes: int = 0
    seeds: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    dropped_frames: int = 0
    held_seeds: list[int] = field(default_factory=list)  # asked for, but in the root already

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s else 0.0


def held_seeds(writer: DatasetWriter, config: PushTSourceConfig, seeds: list[int]) -> list[int]:
    """Which of `seeds` the writer's dataset holds an episode of (compared by first frame)."""
    if writer.num_episodes == 0:
        return []
    firsts = _first_frames(writer)
    return sorted(seed for sig, seed in seed_signatures(seeds, config).items() if sig in firsts)


def _first_frames(writer: DatasetWriter) -> set[bytes]:
    """Signatures of the first frames of the dataset's episodes (empty when it has no PushT columns)."""
    episodes = read_episodes(writer.root, columns=["episode_index", "data/chunk_index", "data/file_index"])
    files = sorted(set(zip(episodes.column("data/chunk_index").to_pylist(), episodes.column("data/file_index").to_pylist())))
    out: set[bytes] = set()
    for chunk, file in files:
        path = writer.root / writer.info.data_path.format(chunk_index=chunk, file_index=file)
        names = pq.read_schema(path).names
        if not {"frame_index", STATE_KEY, ACTION_KEY} <= set(names):
            return set()
        table = pq.read_table(path, columns=["frame_index", STATE_KEY, ACTION_KEY])
        table = table.filter(pc.equal(table["frame_index"], 0))
        for state, action in zip(table[STATE_KEY].to_pylist(), table[ACTION_KEY].to_pylist()):
            out.add(first_frame_signature(state, action))
    return out


def record_pusht(
    root: Path | str,
    config: PushTSourceConfig,
    *,
    encoder: VideoEncoderConfig | None = None,
    streaming: bool = True,
    background_save: bool = True,
    on_frame: Callable[[], None] | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    on_held: Callable[[list[int]], None] | None = None,
    **writer_options: object,
) -> SimRecordReport:
    """Record the seeded PushT episodes of `config` the dataset at root (created if absent) does
    not hold yet (see the module docstring).

    `on_held(seeds)` is told once which seeds were there already; `on_episode(result)` once per
    recorded episode, when it is durable on disk (with background_save, after its commit).
    """
    root = absolute_root(root)
    report = SimRecordReport(root=str(root))
    t0 = time.perf_counter()
    writer = DatasetWriter.open_or_create(
        root,
        fps=PUSHT_FPS,
        features=config.features(),
        robot_type="pusht",
        encoder=encoder,
        streaming=streaming,
        background_save=background_save,
        **writer_options,
    )
    summaries: list[EpisodeSummary] = []
    queued: list[tuple[EpisodeSummary, EpisodeResult]] = []

    def report_durable(wait: bool) -> None:
        while queued and (wait or queued[0][0].done()):
            summary, result = queued.pop(0)
            summary.wait()  # re-raises a failed commit; reported only once it is on disk
            if on_episode is not None:
                on_episode(result)

    with writer:
        seeds = episode_seeds(config)
        report.held_seeds = held_seeds(writer, config, seeds)
        if on_held is not None:
            on_held(report.held_seeds)
        held = set(report.held_seeds)
        for seed in (s for s in seeds if s not in held):
            result = EpisodeResult(seed=seed)
            for frame in iter_episode_frames(seed, config, result):
                writer.add_frame(frame)
                if on_frame is not None:
                    on_frame()
            # The sim is not real time: recording the next episode overlaps this one's commit.
            summaries.append(writer.save_episode())
            queued.append((summaries[-1], result))
            report.episodes += 1
            report.frames += summaries[-1].length
            report.successes += int(result.success)
            report.seeds.append(seed)
            report_durable(wait=False)
        writer.flush()
        report_durable(wait=True)
    report.dropped_frames = sum(sum(s.dropped_frames.values()) for s in summaries)
    report.elapsed_s = time.perf_counter() - t0
    return report
