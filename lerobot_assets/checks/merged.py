"""A merged dataset against the sources it was merged from: totals add up, source by source."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_assets.format.episodes import read_episodes
from lerobot_assets.format.files import file_problem, read_metadata_json
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.tools.merge import SOURCES_PATH


@dataclass
class MergedTotals:
    """Per source (name, episodes, frames) as the sources hold them now, the merged totals, and what
    does not add up."""

    sources: list[tuple[str, int, int]] = field(default_factory=list)
    episodes: int = 0
    frames: int = 0
    merged_episodes: int = 0
    merged_frames: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def merged_totals(root: Path, source_root: Callable[[str], Path]) -> MergedTotals:
    """Check the merged dataset at `root` against each source recorded in its sources file;
    `source_root(name)` says where source `name` lives now."""
    root = Path(root)
    merged = DatasetInfo.load(root)
    sources_file = root / SOURCES_PATH
    sources = read_metadata_json(sources_file) if file_problem(sources_file) != "is missing" else []
    out = MergedTotals(merged_episodes=merged.total_episodes, merged_frames=merged.total_frames)
    for src in sources:
        name = src["name"]
        try:
            info = DatasetInfo.load(source_root(name))
        except (FileNotFoundError, ValueError) as e:
            out.problems.append(f"session {name}: {e}")
            continue
        out.episodes += info.total_episodes
        out.frames += info.total_frames
        out.sources.append((name, info.total_episodes, info.total_frames))
        if (src.get("episodes"), src.get("frames")) != (info.total_episodes, info.total_frames):
            out.problems.append(
                f"session {name}: merged as {src.get('episodes')} episodes / {src.get('frames')} frames, "
                f"now holds {info.total_episodes} / {info.total_frames} (re-materialize lerobot_dataset)"
            )
    episodes = read_episodes(root, columns=["episode_index", "length"])
    table_frames = int(sum(episodes.column("length").to_pylist())) if episodes.num_rows else 0
    if not sources:
        out.problems.append(f"{sources_file}: no record of merged sessions")
    if merged.total_episodes != out.episodes or merged.total_frames != out.frames:
        out.problems.append(
            f"meta/info.json: {merged.total_episodes} episodes / {merged.total_frames} frames, sessions sum to "
            f"{out.episodes} / {out.frames}"
        )
    if episodes.num_rows != merged.total_episodes or table_frames != merged.total_frames:
        out.problems.append(
            f"meta/episodes: {episodes.num_rows} episodes / {table_frames} frames, meta/info.json says "
            f"{merged.total_episodes} / {merged.total_frames}"
        )
    return out
