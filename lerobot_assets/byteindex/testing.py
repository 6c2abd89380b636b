"""Synthetic multi-episode MP4s and minimal dataset roots, for tests and benchmarks.

Built the way LeRobot builds its files: every episode is encoded on its own with explicit pts
(starting on a keyframe), then the episodes are concatenated by stream copy with FFmpeg's concat
demuxer (through PyAV) — with `movflags=faststart` like LeRobot, or without it to get a file whose
moov sits after the mdat. libx264 with its default B-frames yields `ctts` and an edit list.
"""

from __future__ import annotations

import atexit
import fractions
import functools
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.byteindex.episodes import DEFAULT_VIDEO_PATH

TIME_BASE_PER_FRAME = 512  # 1/15360 s at 30 fps, LeRobot's layout


def encoder_options(codec: str, gop: int) -> dict[str, str]:
    if codec == "libsvtav1":
        return {"g": str(gop), "crf": "35", "preset": "12"}
    if codec == "libx264":
        # Default B-frames (3) on purpose: they produce ctts and an edit list.
        return {"g": str(gop), "crf": "23", "preset": "veryfast"}
    return {"g": str(gop)}


def synthetic_frames(n: int, height: int, width: int, seed: int, noise: int = 0) -> np.ndarray:
    """Moving gradients plus a bar, different per seed: compressible but not trivial.

    `noise` > 0 adds uniform noise of that amplitude, to make large files quickly.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 255, size=3)
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        frames[i, ..., 0] = (xx * 2 + i * 5 + base[0]) % 256
        frames[i, ..., 1] = (yy * 3 + i * 3 + base[1]) % 256
        frames[i, ..., 2] = (xx + yy + base[2]) % 256
        bar = (i * 4) % max(1, height - 6)
        frames[i, bar : bar + 6, :, :] = 255
        if noise:
            frames[i] += rng.integers(0, noise, size=frames[i].shape, dtype=np.uint8)  # wraps mod 256
    return frames


def encode_episode(
    path: str | Path,
    n_frames: int,
    *,
    codec: str = "libx264",
    width: int = 64,
    height: int = 48,
    fps: int = 30,
    gop: int = 8,
    seed: int = 0,
    noise: int = 0,
    frames: np.ndarray | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Encode one episode to its own MP4 with pts = i * 512 in a 1/(fps*512) time base."""
    if frames is None:
        frames = synthetic_frames(n_frames, height, width, seed, noise)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        if not isinstance(stream, av.video.stream.VideoStream):
            raise ValueError(f"{codec} is not a video encoder")
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.time_base = fractions.Fraction(1, fps * TIME_BASE_PER_FRAME)
        stream.options = dict(options if options is not None else encoder_options(codec, gop))
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")
            frame.pts = i * TIME_BASE_PER_FRAME
            frame.time_base = stream.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def concat_mp4(inputs: Sequence[str | Path], output: str | Path, *, faststart: bool = True) -> None:
    """Stream-copy concatenation with FFmpeg's concat demuxer (no re-encode), like LeRobot."""
    fd, listing = tempfile.mkstemp(suffix=".txt", dir=os.path.dirname(os.path.abspath(output)))
    try:
        with os.fdopen(fd, "w") as f:
            for p in inputs:
                f.write(f"file '{os.path.abspath(p)}'\n")
        options = {"movflags": "faststart"} if faststart else {}
        with av.open(listing, "r", format="concat", options={"safe": "0"}) as src:
            with av.open(str(output), "w", format="mp4", options=options) as dst:
                in_stream = src.streams.video[0]
                # opaque=True copies codec parameters without instantiating a codec (PyAV would try
                # the *decoder* name, e.g. libdav1d, as an encoder otherwise).
                out_stream = dst.add_stream_from_template(in_stream, opaque=True)
                for packet in src.demux(in_stream):
                    if packet.dts is None:
                        continue
                    packet.stream = out_stream
                    dst.mux(packet)
    finally:
        os.unlink(listing)


def make_multi_episode_mp4(
    output: str | Path,
    lengths: Sequence[int],
    *,
    codec: str = "libx264",
    faststart: bool = True,
    width: int = 64,
    height: int = 48,
    fps: int = 30,
    gop: int = 8,
    seed: int = 0,
    noise: int = 0,
) -> list[tuple[float, float]]:
    """Encode each episode, concatenate, and return LeRobot-style (from, to) timestamps per episode."""
    output = Path(output)
    parts = []
    with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
        for k, n in enumerate(lengths):
            part = Path(tmp) / f"ep{k}.mp4"
            encode_episode(
                part, n, codec=codec, width=width, height=height, fps=fps, gop=gop, seed=seed + k, noise=noise
            )
            parts.append(part)
        concat_mp4(parts, output, faststart=faststart)
    bounds = []
    t = 0.0
    for n in lengths:
        # Sums of float durations, as LeRobot accumulates from_timestamp.
        bounds.append((t, t + n / fps))
        t += n / fps
    return bounds


def write_minimal_dataset(
    root: str | Path,
    videos: Mapping[str, Sequence[tuple[int, int, str | Path, Sequence[int], Sequence[tuple[float, float]]]]],
    *,
    fps: int = 30,
) -> None:
    """A dataset root with `meta/info.json`, `meta/episodes/chunk-000/file-000.parquet`, `videos/`.

    `videos[key]` lists (chunk_index, file_index, mp4_to_copy, episode_indices, bounds). Only the
    columns the byte index reads are written (episode_index, length, videos/<key>/...).
    """
    root = Path(root)
    rows: dict[int, dict] = {}
    for key, files in videos.items():
        for chunk, file_idx, mp4, episodes, bounds in files:
            dest = root / DEFAULT_VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file_idx)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if Path(mp4).resolve() != dest.resolve():
                dest.write_bytes(Path(mp4).read_bytes())
            for ep, (start, end) in zip(episodes, bounds):
                row = rows.setdefault(int(ep), {"episode_index": int(ep), "length": round((end - start) * fps)})
                row[f"videos/{key}/chunk_index"] = chunk
                row[f"videos/{key}/file_index"] = file_idx
                row[f"videos/{key}/from_timestamp"] = float(start)
                row[f"videos/{key}/to_timestamp"] = float(end)
    columns: list[pa.Field] = [pa.field("episode_index", pa.int64()), pa.field("length", pa.int64())]
    for key in videos:
        columns += [
            pa.field(f"videos/{key}/chunk_index", pa.int64()),
            pa.field(f"videos/{key}/file_index", pa.int64()),
            pa.field(f"videos/{key}/from_timestamp", pa.float64()),
            pa.field(f"videos/{key}/to_timestamp", pa.float64()),
        ]
    schema = pa.schema(columns)
    table = pa.Table.from_pylist([rows[e] for e in sorted(rows)], schema=schema)
    out = root / "meta/episodes/chunk-000/file-000.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    info = {"codebase_version": "v3.0", "fps": fps, "video_path": DEFAULT_VIDEO_PATH}
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))


# --------------------------------------------------------------------------- shared sample media


@dataclass(frozen=True)
class MediaFile:
    name: str
    path: Path
    codec: str  # encoder used
    faststart: bool
    lengths: tuple[int, ...]
    bounds: tuple[tuple[float, float], ...]


# name -> (encoder, faststart, episode lengths). Small on purpose: all of them encode in ~1 s.
MEDIA_SPECS: dict[str, tuple[str, bool, tuple[int, ...]]] = {
    "h264": ("libx264", True, (20, 25, 15, 30)),
    "h264_nofs": ("libx264", False, (20, 25, 15, 30)),
    "av1": ("libsvtav1", True, (20, 25, 15, 30)),
    "av1_nofs": ("libsvtav1", False, (12, 18)),
    "h264_single": ("libx264", True, (40,)),
}


@functools.cache
def sample_media() -> dict[str, MediaFile]:
    """The MEDIA_SPECS files, generated once per process into a temp dir removed at exit."""
    directory = Path(tempfile.mkdtemp(prefix="byteindex-media-"))
    atexit.register(shutil.rmtree, directory, True)
    out = {}
    for k, (name, (codec, faststart, lengths)) in enumerate(MEDIA_SPECS.items()):
        path = directory / f"{name}.mp4"
        bounds = make_multi_episode_mp4(path, lengths, codec=codec, faststart=faststart, seed=10 * k)
        out[name] = MediaFile(name, path, codec, faststart, lengths, tuple(bounds))
    return out


# camera key -> sample media name, for `write_sample_dataset`
SAMPLE_DATASET_CAMERAS = {
    "observation.images.h264": "h264",
    "observation.images.av1": "av1",
    "observation.images.nofs": "h264_nofs",
}


def write_sample_dataset(root: str | Path) -> dict[str, MediaFile]:
    """A 4-episode dataset with one H.264, one AV1 and one non-faststart H.264 camera."""
    media = sample_media()
    videos = {}
    for key, name in SAMPLE_DATASET_CAMERAS.items():
        m = media[name]
        videos[key] = [(0, 0, m.path, list(range(len(m.lengths))), m.bounds)]
    write_minimal_dataset(root, videos)
    return {key: media[name] for key, name in SAMPLE_DATASET_CAMERAS.items()}
