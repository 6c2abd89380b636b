"""Per-episode byte index of LeRobot v3 MP4 files (pure library, no Dagster).

- `parse_mp4`: the video track's sample table (pts/dts/offset/size/keyframe) from the header only.
- `build_byte_index`: index a dataset root (incremental, parallel) into `meta/byte_index/*.parquet`.
- `ByteIndex` / `EpisodeReader`: fetch header + one range per episode (local or fsspec), cache,
  prefetch, and decode frames from a sparse file object.
"""

from lerobot_assets.byteindex.builder import (
    BuildProgress,
    BuildResult,
    BuildStats,
    build_byte_index,
    load_tables,
)
from lerobot_assets.byteindex.decode import (
    DecodedFrames,
    EpisodeFrames,
    frame_mappings_json,
    torchcodec_has_frame_mappings,
)
from lerobot_assets.byteindex.fetch import RangeFetcher
from lerobot_assets.byteindex.lookup import ByteIndex, Segment
from lerobot_assets.byteindex.mp4 import Mp4Error, Mp4Info, codec_name, parse_mp4
from lerobot_assets.byteindex.reader import EpisodeBytes, EpisodeReader, ReaderStats
from lerobot_assets.byteindex.sample_table import SampleTable
from lerobot_assets.byteindex.source import BufferSource, FileSource, RangesSource
from lerobot_assets.byteindex.spans import EpisodeSpan, TrackTimeline
from lerobot_assets.byteindex.sparse import SparseFile, SparseReadError
from lerobot_assets.byteindex.tables import INDEX_DIR, ByteIndexTables

__all__ = [
    "INDEX_DIR",
    "BufferSource",
    "BuildProgress",
    "BuildResult",
    "BuildStats",
    "ByteIndex",
    "ByteIndexTables",
    "DecodedFrames",
    "EpisodeBytes",
    "EpisodeFrames",
    "EpisodeReader",
    "EpisodeSpan",
    "FileSource",
    "Mp4Error",
    "Mp4Info",
    "RangeFetcher",
    "RangesSource",
    "ReaderStats",
    "SampleTable",
    "Segment",
    "SparseFile",
    "SparseReadError",
    "TrackTimeline",
    "build_byte_index",
    "codec_name",
    "frame_mappings_json",
    "load_tables",
    "parse_mp4",
    "torchcodec_has_frame_mappings",
]
