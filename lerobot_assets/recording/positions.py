"""Where a dataset's next episode goes: its current data, video and episodes-metadata files.

Derived from the last episode's row, so the writer (resuming) and the merge tool (appending) agree
on one rule.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow.parquet as pq

from lerobot_assets.format.episodes import episodes_schema, read_episodes
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import episodes_path, image_hist_path


class Location(NamedTuple):
    chunk: int
    file: int


@dataclass
class WritePositions:
    data: Location | None = None
    # per camera: its current file and where that file ends (the last episode's to_timestamp)
    videos: dict[str, tuple[Location, float] | None] = field(default_factory=dict)
    episodes: Location | None = None
    episode_rows: list[dict[str, Any]] = field(default_factory=list)  # rows of the current episodes file
    hist_rows: list[dict[str, Any]] = field(default_factory=list)  # rows of its image-histogram sidecar

    @classmethod
    def load(cls, root: Path, info: DatasetInfo) -> "WritePositions":
        episodes = read_episodes(root)
        n = episodes.num_rows
        if n != info.total_episodes:
            raise ValueError(
                f"{root}: info.json says total_episodes={info.total_episodes} but the episodes "
                f"metadata holds {n} rows; run `lerobot-assets validate {root}`"
            )
        pos = cls(videos={k: None for k in info.video_keys})
        if n == 0:
            return pos
        last = episodes.slice(n - 1, 1).to_pylist()[0]
        pos.data = Location(last["data/chunk_index"], last["data/file_index"])
        for key in info.video_keys:
            loc = Location(last[f"videos/{key}/chunk_index"], last[f"videos/{key}/file_index"])
            pos.videos[key] = (loc, float(last[f"videos/{key}/to_timestamp"]))
        pos.episodes = Location(last["meta/episodes/chunk_index"], last["meta/episodes/file_index"])
        ep_file = Path(root) / episodes_path(*pos.episodes)
        pos.episode_rows = pq.read_table(ep_file).cast(episodes_schema(info.features)).to_pylist()
        hist_file = Path(root) / image_hist_path(*pos.episodes)
        if hist_file.is_file():
            pos.hist_rows = pq.read_table(hist_file).to_pylist()
        return pos
