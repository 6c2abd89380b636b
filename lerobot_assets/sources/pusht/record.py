"""Recording the built-in PushT simulation into a dataset (new, or appended to)."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_assets.recording.writer import DatasetWriter, absolute_root
from lerobot_assets.sources.pusht.config import PUSHT_FPS, PushTSourceConfig
from lerobot_assets.sources.pusht.episodes import EpisodeResult, episode_seeds, iter_episode_frames
from lerobot_assets.video.config import VideoEncoderConfig


@dataclass
class SimRecordReport:
    root: str
    episodes: int = 0
    frames: int = 0
    successes: int = 0
    seeds: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    dropped_frames: int = 0

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s else 0.0


def record_pusht(
    root: Path | str,
    config: PushTSourceConfig,
    *,
    encoder: VideoEncoderConfig | None = None,
    streaming: bool = True,
    background_save: bool = True,
    on_frame: Callable[[], None] | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    **writer_options: object,
) -> SimRecordReport:
    """Record `config.episodes` seeded PushT episodes into the dataset at root (created if absent)."""
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
    summaries = []
    with writer:
        for seed in episode_seeds(config):
            result = EpisodeResult(seed=seed)
            for frame in iter_episode_frames(seed, config, result):
                writer.add_frame(frame)
                if on_frame is not None:
                    on_frame()
            # The sim is not real time: recording the next episode overlaps this one's commit.
            summaries.append(writer.save_episode())
            report.episodes += 1
            report.frames += summaries[-1].length
            report.successes += int(result.success)
            report.seeds.append(seed)
            if on_episode is not None:
                on_episode(result)
        writer.flush()
    report.dropped_frames = sum(sum(s.dropped_frames.values()) for s in summaries)
    report.elapsed_s = time.perf_counter() - t0
    return report
