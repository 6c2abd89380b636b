"""Video for LeRobot v3 datasets: encoder config, encoding (batch and streaming), stream-copy
concatenation, probing, and decoding with a bounded decoder cache.

Names are re-exported lazily, so importing the config does not pull in torch or torchcodec.
"""

import os
from importlib import import_module
from typing import Any

# SVT-AV1 prints a multi-line banner to stderr for every encoder it opens; keep errors only unless
# the user asked for more.
os.environ.setdefault("SVT_LOG", "1")

_EXPORTS = {
    "VideoEncoderConfig": "config",
    "default_encoder_config": "config",
    "encode_frames": "encode",
    "reencode_video": "encode",
    "Mp4FrameWriter": "encode",
    "StreamingVideoEncoder": "streaming",
    "EpisodeVideo": "streaming",
    "UnknownVideoKeyError": "streaming",
    "concatenate_videos": "concat",
    "segment_durations_s": "concat",
    "video_info_block": "probe",
    "video_duration_s": "probe",
    "video_frame_count": "probe",
    "stream_summary": "probe",
    "decode_frames": "decode",
    "FrameTimestampError": "decode",
    "VideoDecoderCache": "cache",
    "default_decoder_cache": "cache",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
