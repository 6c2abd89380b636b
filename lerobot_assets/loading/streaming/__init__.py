"""Streaming reader of LeRobot v3.0 datasets for training at scale (see `dataset.py`)."""

from lerobot_assets.loading.streaming.collate import streaming_collate
from lerobot_assets.loading.streaming.dataset import StreamingDataset
from lerobot_assets.loading.streaming.loader import StreamingDataLoader
from lerobot_assets.loading.streaming.retry import RetryPolicy
from lerobot_assets.loading.streaming.split import EpisodeRef

__all__ = ["EpisodeRef", "RetryPolicy", "StreamingDataLoader", "StreamingDataset", "streaming_collate"]
