"""DatasetMeta: the metadata of one v3 dataset root (info, tasks, episodes, stats)."""

from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa

from lerobot_assets.format.episodes import read_episodes
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import data_path, video_path
from lerobot_assets.format.tasks import read_tasks
from lerobot_assets.stats.io import Stats, read_stats


class DatasetMeta:
    """Read-only view of a dataset's metadata; works for our datasets and LeRobot-written ones."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.info = DatasetInfo.load(self.root)
        self.tasks: list[str] = read_tasks(self.root)

    @cached_property
    def episodes(self) -> pa.Table:
        return read_episodes(self.root)

    @cached_property
    def stats(self) -> Stats:
        return read_stats(self.root)

    @cached_property
    def _rows(self) -> list[dict[str, Any]]:
        cols = [c for c in self.episodes.column_names if not c.startswith("stats/")]
        return self.episodes.select(cols).to_pylist()

    @property
    def fps(self) -> int:
        return self.info.fps

    @property
    def video_keys(self) -> list[str]:
        return self.info.video_keys

    @property
    def num_episodes(self) -> int:
        return self.episodes.num_rows

    def episode(self, position: int) -> dict[str, Any]:
        """Row (without stats columns) of the episode at this position in episode order."""
        return self._rows[position]

    def episode_by_index(self, episode_index: int) -> dict[str, Any]:
        for row in self._rows:
            if row["episode_index"] == episode_index:
                return row
        raise KeyError(f"episode {episode_index} not in {self.root}")

    def data_file(self, chunk_index: int, file_index: int) -> Path:
        return self.root / data_path(chunk_index, file_index)

    def video_file(self, key: str, chunk_index: int, file_index: int) -> Path:
        return self.root / video_path(key, chunk_index, file_index)

    def episode_video_file(self, row: dict[str, Any], key: str) -> Path:
        return self.video_file(key, row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"])
