"""Readers of LeRobot v3.0 datasets: the map-style `LeRobotV3Dataset` (`ds[i]`, delta_timestamps windows)."""

from lerobot_assets.loading.dataset import DatasetLayoutError, LeRobotV3Dataset

__all__ = ["DatasetLayoutError", "LeRobotV3Dataset"]

from lerobot_assets.loading.streaming import StreamingDataLoader, StreamingDataset, streaming_collate  # noqa: E402

__all__ += ["StreamingDataLoader", "StreamingDataset", "streaming_collate"]
