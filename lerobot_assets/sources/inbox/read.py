"""Reading a validated raw session: an episode's frames as a dataset writer takes them; a preview frame."""

from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from lerobot_assets.sources.inbox.errors import RawFormatError, RawProblem
from lerobot_assets.sources.inbox.session import RawEpisode, RawSession, episode_dirs


def _feature_arrays(session: RawSession, ep: RawEpisode) -> tuple[dict[str, np.ndarray], list[str]]:
    table = pq.read_table(ep.frames_file)
    arrays = {}
    for key, feat in session.spec.features.items():
        col = table.column(key).combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
            values = pc.list_flatten(col).to_numpy(zero_copy_only=False).reshape(len(col), feat.shape[0])
        else:
            values = col.to_numpy(zero_copy_only=False).reshape(len(col), 1)
        arr = values.astype(np.dtype(feat.dtype))
        arrays[key] = arr.reshape(len(col)) if feat.shape == [1] else arr
    return arrays, table.column("task").to_pylist()


def _png_path(folder: Path, i: int) -> Path:
    return folder / f"{i:06d}.png"


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _png_frames(folder: Path, n: int, prefetch: int = 8) -> Iterator[np.ndarray]:
    """Decoded frames 0..n-1 in order; decoding runs ahead in a thread (zlib releases the GIL)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="png-read") as pool:
        pending: list[Future[np.ndarray]] = [pool.submit(_read_png, _png_path(folder, i)) for i in range(min(prefetch, n))]
        for i in range(n):
            frame = pending.pop(0).result()
            if i + prefetch < n:
                pending.append(pool.submit(_read_png, _png_path(folder, i + prefetch)))
            yield frame


def _mp4_frames(path: Path, n: int) -> Generator[np.ndarray, None, None]:
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if count >= n:
                break
            yield frame.to_ndarray(format="rgb24")
            count += 1
    if count < n:
        raise RawFormatError([RawProblem(path, f"decoded only {count} frames for {n} rows of frames.parquet", row=count)])


def iter_episode_frames(session: RawSession, ep: RawEpisode) -> Iterator[dict[str, Any]]:
    """Frames of one episode as a DatasetWriter's `add_frame` takes them (`{key: array, "task": str}`)."""
    arrays, tasks = _feature_arrays(session, ep)
    streams: dict[str, Iterator[np.ndarray]] = {}
    for key, cam in ep.cameras.items():
        streams[key] = _mp4_frames(cam.path, ep.length) if cam.kind == "mp4" else _png_frames(cam.path, ep.length)
    try:
        for i in range(ep.length):
            frame: dict[str, Any] = {key: arr[i] for key, arr in arrays.items()}
            for key, stream in streams.items():
                frame[key] = next(stream)
            frame["task"] = tasks[i]
            yield frame
    finally:
        for stream in streams.values():
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def preview_frame(root: Path | str, camera_key: str) -> np.ndarray | None:
    """Frame 0 of the first episode of camera `camera_key`, as HxWx3 uint8 RGB, from its MP4 or PNG folder.

    Reads the folder as it is (validation is `validate_session`'s job): None when there is no episode
    folder or the first one holds no file for that camera; an MP4 without a frame raises RawFormatError.
    """
    dirs = episode_dirs(Path(root))
    if not dirs:
        return None
    _, ep = dirs[0]
    mp4 = ep / f"{camera_key}.mp4"
    if mp4.is_file():
        frames = _mp4_frames(mp4, 1)
        try:
            return next(frames)
        finally:
            frames.close()
    png = _png_path(ep / camera_key, 0)
    return _read_png(png) if png.is_file() else None
