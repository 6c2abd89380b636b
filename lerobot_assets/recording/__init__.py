"""Recording episodes into LeRobot v3.0 datasets (crash-safe, resumable)."""

from lerobot_assets.recording.writer import DatasetWriter, EpisodeSummary

__all__ = ["DatasetWriter", "EpisodeSummary"]
