"""One episode being recorded: its frame buffer, and what `save_episode()` derives from it (videos,
data rows, statistics)."""

import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lerobot_assets.format.features import Feature, arrow_type, data_columns, data_schema
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.stats_json import Stats
from lerobot_assets.stats.image import ImageStatsAccumulator, to_hwc_uint8
from lerobot_assets.stats.numeric import numeric_stats
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.encode import encode_frames
from lerobot_assets.video.streaming import EpisodeVideo, PendingEpisode

logger = logging.getLogger(__name__)


@dataclass
class EpisodeBuffer:
    """One episode's frames: recorded by the caller's thread, then committed (maybe elsewhere)."""

    directory: Path
    buffer: dict[str, list[Any]]
    visual_acc: dict[str, ImageStatsAccumulator]
    tasks: list[str] = field(default_factory=list)
    index: int = -1
    start: int = -1
    video: PendingEpisode | None = None

    def discard(self) -> None:
        if self.video is not None:
            self.video.cancel()
        shutil.rmtree(self.directory, ignore_errors=True)


def finish_videos(
    ep: EpisodeBuffer, info: DatasetInfo, encoder: VideoEncoderConfig, threads: int | None
) -> dict[str, EpisodeVideo]:
    """The episode's videos: awaited from the streaming encoders, or encoded now from the buffered frames."""
    keys = info.video_keys
    n = len(ep.tasks)
    if not keys:
        return {}
    if ep.video is not None:
        results, ep.video = ep.video.wait(), None
        for key, r in results.items():
            if r.frames != n:
                raise RuntimeError(
                    f"camera {key!r}: the encoder wrote {r.frames} frames for an episode of {n}; "
                    "the episode was not saved"
                )
            if r.dropped:
                logger.warning(
                    "episode %d, camera %s: %d frame(s) dropped on a full encoder queue, each replaced "
                    "by a repeat of the previous frame",
                    ep.index, key, r.dropped,
                )
        return results

    def encode(key: str) -> tuple[str, EpisodeVideo]:
        path = ep.directory / f"{key}.mp4"
        frames = ep.buffer[key]
        acc = ep.visual_acc[key]
        for frame in frames:
            acc.update(frame)
        count = encode_frames(frames, path, info.fps, encoder, threads=threads)
        return key, EpisodeVideo(path, acc.stats(), count, 0, acc.hist)

    # One thread per camera: PyAV releases the GIL while encoding.
    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        return dict(pool.map(encode, keys))


def episode_table(features: dict[str, Feature], ep: EpisodeBuffer, index_values: dict[str, np.ndarray]) -> pa.Table:
    """The episode's rows of the data parquet, in the data schema's column order."""
    schema = data_schema(features)
    arrays = []
    for key in data_columns(features):
        feature = features[key]
        if key in index_values:
            arrays.append(pa.array(index_values[key], type=arrow_type(feature)))
        elif feature.dtype == "image":
            arrays.append(pa.array([{"bytes": b, "path": None} for b in ep.buffer[key]], arrow_type(feature)))
        elif feature.dtype == "string":
            arrays.append(pa.array(ep.buffer[key], pa.string()))
        else:
            stacked = np.stack(ep.buffer[key])
            t = arrow_type(feature)
            if pa.types.is_fixed_size_list(t):
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(stacked.reshape(-1)), t.list_size))
            else:
                arrays.append(pa.array(stacked.reshape(-1), type=t))
    return pa.Table.from_arrays(arrays, schema=schema)


def episode_stats(
    features: dict[str, Feature], ep: EpisodeBuffer, index_values: dict[str, np.ndarray], videos: dict
) -> Stats:
    """Per-feature statistics of the episode (images and videos from their accumulators)."""
    stats: Stats = {}
    for key, feature in features.items():
        if feature.dtype == "string":
            continue
        if key in index_values:
            stats[key] = numeric_stats(index_values[key])
        elif feature.dtype == "video":
            s = videos[key].stats
            if s is None:
                raise RuntimeError(f"camera {key!r}: the encoder returned no image statistics")
            stats[key] = s
        elif feature.dtype == "image":
            s = ep.visual_acc[key].stats()
            if s is None:
                raise RuntimeError(f"image {key!r}: no frame was accumulated for its statistics")
            stats[key] = s
        else:
            stats[key] = numeric_stats(np.stack(ep.buffer[key]))
    return stats


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image  # imported lazily: only image features need it

    buf = BytesIO()
    Image.fromarray(to_hwc_uint8(image)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
