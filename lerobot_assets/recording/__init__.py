"""Recording episodes into LeRobot v3.0 datasets (crash-safe, resumable)."""

from lerobot_assets.recording.writer import DatasetLockedError, DatasetWriter, EpisodeSummary

__all__ = ["DatasetLockedError", "DatasetWriter", "EpisodeSummary"]
