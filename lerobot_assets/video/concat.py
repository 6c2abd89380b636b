"""Join MP4 segments by stream copy (no re-encode) into one faststart MP4.

Segment k is shifted by exactly the sum of the previous segments' durations, counted in stream
ticks, so its frames keep their pts relative to each other and the joined timeline has no gaps
or overlaps; `segment_durations_s` reports the same durations, so a writer's `from_timestamp`
values line up with the frames. The output may be one of the inputs (appending an episode to an
existing file): it is written to a temp sibling and renamed over the target when complete.
"""

import os
from pathlib import Path
from typing import Any

import av

from lerobot_assets.video.files import atomic_output
from lerobot_assets.video.probe import first_video_stream, packet_span, stream_time_base, summarize_stream

PathLike = str | os.PathLike[str]

# Fields that must agree for a stream copy to produce a decodable, evenly timed file.
_CHECKED_FIELDS = ("codec", "width", "height", "pix_fmt", "fps", "time_base")
# H.264/HEVC in MP4 keep SPS/PPS only in the sample description (extradata), which the joined
# file takes from the first segment; a segment with different parameter sets would decode wrong.
# AV1 repeats its sequence header in-band, so differing av1C boxes are harmless there.
_EXTRADATA_CODECS = ("h264", "hevc")


def segment_durations_s(inputs: list[PathLike]) -> list[float]:
    """Each input's duration in seconds, exactly as `concatenate_videos` offsets the segments."""
    out = []
    for path in inputs:
        with av.open(str(path)) as container:
            stream = first_video_stream(container, path)
            _, first, end = packet_span(container, stream)
            out.append(float((end - first) * stream_time_base(stream, path)))
    return out


def _describe(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as container:
        stream = first_video_stream(container, path)
        info = summarize_stream(stream, with_extradata=True)
        first = next((p for p in container.demux(stream) if p.size > 0), None)
        info["starts_with_keyframe"] = bool(first is not None and first.is_keyframe)
    return info


def check_compatible(inputs: list[Path]) -> None:
    """Raise ValueError naming the first field where an input differs from the first input."""
    ref_path = inputs[0]
    ref = _describe(ref_path)
    for path in inputs:
        info = ref if path == ref_path else _describe(path)
        if not info["starts_with_keyframe"]:
            raise ValueError(f"Cannot concatenate {path}: its first frame is not a keyframe")
        if path == ref_path:
            continue
        for field in _CHECKED_FIELDS:
            if info[field] != ref[field]:
                raise ValueError(
                    f"Incompatible videos for concatenation: {field} differs: "
                    f"{ref_path} has {ref[field]}, {path} has {info[field]}"
                )
        if ref["codec"] in _EXTRADATA_CODECS and info["extradata"] != ref["extradata"]:
            raise ValueError(
                f"Incompatible videos for concatenation: extradata (codec parameter sets) differs: "
                f"{ref_path} has {len(ref['extradata'])} bytes, {path} has {len(info['extradata'])} bytes "
                "that are not identical (encoded with different settings)"
            )


def concatenate_videos(inputs: list[PathLike], output: PathLike, check: bool = True) -> None:
    """Stream-copy `inputs` (in order) into `output` with faststart, atomically.

    With `check`, inputs must agree on codec, size, pix_fmt, fps and time base (ValueError names
    the field, both files and both values). Only the first video stream of each input is kept.
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise FileNotFoundError("No input video paths provided.")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"Input video not found: {path}")
    if check:
        check_compatible(paths)
    target = Path(output)
    with atomic_output(target) as tmp:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "faststart"}) as out:
            out_stream = None
            offset = 0  # ticks of the output stream's time base
            last_dts: int | None = None
            for path in paths:
                with av.open(str(path)) as src:
                    in_stream = first_video_stream(src, path)
                    if out_stream is None:
                        out_stream = out.add_stream_from_template(in_stream, opaque=True)
                        # Not carried by the template; without it the muxer guesses a time base.
                        out_stream.time_base = in_stream.time_base
                        out_tb = stream_time_base(in_stream, path)
                    in_tb = stream_time_base(in_stream, path)
                    scale = in_tb / out_tb  # 1 unless check=False let differing time bases in
                    # Segment starts at `offset`: shift by offset minus its own start (0 for ours).
                    start = in_stream.start_time or 0
                    first: int | None = None
                    end: int | None = None
                    for packet in src.demux(in_stream):
                        if packet.size == 0 or packet.pts is None:
                            continue  # flush packets carry no frame
                        pts = packet.pts
                        dts = packet.dts if packet.dts is not None else pts
                        first = pts if first is None else min(first, pts)
                        stop = pts + (packet.duration or 0)
                        end = stop if end is None else max(end, stop)
                        packet.pts = offset + round((pts - start) * scale)
                        packet.dts = offset + round((dts - start) * scale)
                        packet.duration = round((packet.duration or 0) * scale)
                        packet.time_base = out_tb
                        if last_dts is not None and packet.dts <= last_dts:
                            packet.dts = last_dts + 1  # keep dts strictly increasing across a join
                        last_dts = packet.dts
                        packet.stream = out_stream
                        out.mux(packet)
                    if first is None or end is None:  # set together, by the first real packet
                        raise ValueError(f"Cannot concatenate {path}: it has no video frames")
                    offset += round((end - first) * scale)
