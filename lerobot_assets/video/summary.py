"""What a dataset's encoded camera videos are: per camera the codec, size, files, bytes, duration and
a preview frame. Read from the metadata and the files' sizes; only the preview decodes (one frame)."""

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from lerobot_assets.format.meta import DatasetMeta


@dataclass(frozen=True)
class CameraVideos:
    key: str
    codec: str
    width: int | None
    height: int | None
    pix_fmt: str | None
    files: int
    bytes: int
    episodes: int
    duration_s: float  # the episodes' spans in the files, summed


def camera_videos(root: Path) -> list[CameraVideos]:
    """One summary per video feature of the dataset at `root`, in feature order."""
    meta = DatasetMeta(root)
    episodes = meta.episodes
    out = []
    for key in meta.video_keys:
        block = meta.info.features[key].info or {}
        files = sorted({(int(c), int(f)) for c, f in zip(
            episodes.column(f"videos/{key}/chunk_index").to_pylist(),
            episodes.column(f"videos/{key}/file_index").to_pylist(),
        )}) if meta.num_episodes else []
        paths = [Path(meta.video_file(key, c, f)) for c, f in files]
        spans = (
            np.asarray(episodes.column(f"videos/{key}/to_timestamp").to_pylist(), dtype=np.float64)
            - np.asarray(episodes.column(f"videos/{key}/from_timestamp").to_pylist(), dtype=np.float64)
        ) if meta.num_episodes else np.zeros(0)
        out.append(CameraVideos(
            key=key,
            codec=str(block.get("video.codec", "?")),
            width=block.get("video.width"),
            height=block.get("video.height"),
            pix_fmt=block.get("video.pix_fmt"),
            files=len(paths),
            bytes=sum(p.stat().st_size for p in paths if p.is_file()),
            episodes=meta.num_episodes,
            duration_s=round(float(spans.sum()), 6),
        ))
    return out


def episode_first_frame(root: Path, key: str, position: int = 0) -> np.ndarray | None:
    """Frame 0 of the episode at `position` of camera `key`, HWC uint8 RGB (None: no such episode)."""
    meta = DatasetMeta(root)
    if position >= meta.num_episodes:
        return None
    row = meta.episode(position)
    return first_frame(Path(meta.episode_video_file(row, key)), float(row[f"videos/{key}/from_timestamp"]))


def first_frame(path: Path, at_s: float = 0.0) -> np.ndarray | None:
    """The first frame at or after `at_s` of a video file, as HWC uint8 RGB (PyAV: no torch import);
    None when the file holds no such frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is None or frame.time + 1e-6 >= at_s:
                return frame.to_ndarray(format="rgb24")
    return None
