"""The LeRobot v3.0 on-disk format: layout, info.json, tasks, episodes, data schema."""

from lerobot_assets.format.episodes import episodes_schema, read_episodes
from lerobot_assets.format.features import Feature, data_schema, with_index_features
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import (
    CODEBASE_VERSION,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    INDEX_FEATURES,
    data_path,
    episodes_path,
    next_chunk_file,
    video_path,
)
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.format.tasks import read_tasks, write_tasks

__all__ = [
    "CODEBASE_VERSION",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_DATA_FILE_SIZE_IN_MB",
    "DEFAULT_VIDEO_FILE_SIZE_IN_MB",
    "INDEX_FEATURES",
    "DatasetInfo",
    "DatasetMeta",
    "Feature",
    "data_path",
    "data_schema",
    "episodes_path",
    "episodes_schema",
    "next_chunk_file",
    "read_episodes",
    "read_tasks",
    "video_path",
    "with_index_features",
    "write_tasks",
]
