"""Writing a raw-v1 session: `session.json` first, episodes one by one, `_COMPLETE` last."""

import json
import os
import shutil
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from lerobot_assets.sources.inbox.spec import COMPLETE_MARKER, EPISODE_PREFIX, FRAMES_FILE, SESSION_FILE, SessionSpec
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.encode import encode_frames

# PNG writing in the background: zlib level 1 keeps a 640x480 frame at ~4 ms and ~17 KB.
PNG_COMPRESS_LEVEL = 1


class RawSessionWriter:
    """Writes a raw-v1 session: `session.json` at creation, episodes one by one, `_COMPLETE` last.

    Frames stream in through `add_frame` (nothing of an episode is kept but its numeric rows); PNGs
    are compressed by a small thread pool so the producer (a simulator, a robot loop) keeps running.
    Cameras go to PNG folders unless `camera_format="mp4"` (encoded when the episode ends).
    """

    def __init__(
        self,
        root: Path | str,
        spec: SessionSpec,
        *,
        camera_format: Literal["png", "mp4"] = "png",
        png_threads: int = 2,
    ) -> None:
        self.root = Path(root)
        if (self.root / SESSION_FILE).exists():
            raise FileExistsError(f"{self.root}: a raw session is already there")
        self.spec = spec
        self.camera_format = camera_format
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / SESSION_FILE).write_text(json.dumps(spec.model_dump(exclude_none=True), indent=2) + "\n")
        self.num_episodes = 0
        self._pool = ThreadPoolExecutor(max_workers=png_threads, thread_name_prefix="png-write")
        self._limit = threading.BoundedSemaphore(4 * png_threads)  # bounds frames held in memory
        self._pending: list[Future[None]] = []
        self._rows: list[dict[str, Any]] = []
        self._video: dict[str, list[np.ndarray]] = {}
        self._dir: Path | None = None

    @classmethod
    def create(
        cls,
        root: Path | str,
        *,
        fps: int,
        features: dict[str, dict[str, Any]],
        robot_type: str | None = None,
        camera_format: Literal["png", "mp4"] = "png",
    ) -> "RawSessionWriter":
        """From dataset-style `features` (numeric ones and `dtype: video` cameras of shape [h, w, 3])."""
        numeric, cameras = {}, {}
        for key, f in features.items():
            if f["dtype"] in ("video", "image"):
                h, w = f["shape"][:2]
                cameras[key] = {"height": h, "width": w}
            else:
                numeric[key] = {k: f[k] for k in ("dtype", "shape", "names") if k in f}
        spec = SessionSpec(fps=fps, robot_type=robot_type, features=numeric, cameras=cameras)
        return cls(root, spec, camera_format=camera_format)

    def _start(self) -> Path:
        d = self.root / f"{EPISODE_PREFIX}{self.num_episodes:06d}"
        d.mkdir(parents=True, exist_ok=False)
        if self.camera_format == "png":
            for key in self.spec.cameras:
                (d / key).mkdir()
        self._video = {k: [] for k in self.spec.cameras} if self.camera_format == "mp4" else {}
        return d

    def add_frame(self, frame: dict[str, Any], timestamp: float | None = None) -> None:
        if self._dir is None:
            self._dir = self._start()
        i = len(self._rows)
        row: dict[str, Any] = {"timestamp": float(i / self.spec.fps if timestamp is None else timestamp)}
        for key in self.spec.features:
            row[key] = np.asarray(frame[key]).reshape(-1).tolist()
        row["task"] = frame["task"]
        self._rows.append(row)
        for key in self.spec.cameras:
            image = np.asarray(frame[key])
            if self.camera_format == "mp4":
                self._video[key].append(image)
            else:
                self._limit.acquire()
                self._pending.append(self._pool.submit(self._write_png, self._dir / key / f"{i:06d}.png", image))

    def _write_png(self, path: Path, image: np.ndarray) -> None:
        try:
            Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        finally:
            self._limit.release()

    def save_episode(self) -> int:
        """Write the episode's frames.parquet (and MP4s); returns its length."""
        if self._dir is None or not self._rows:
            raise ValueError("save_episode() called with no frames; add_frame() first")
        d, n = self._dir, len(self._rows)
        for fut in self._pending:
            fut.result()
        self._pending = []
        if self.camera_format == "mp4":
            # Near-lossless H.264: a raw recording should lose as little as the camera allows.
            config = VideoEncoderConfig(vcodec="libx264", crf=10, preset="veryfast", g=self.spec.fps)
            for key, frames in self._video.items():
                encode_frames(frames, d / f"{key}.mp4", self.spec.fps, config)
        columns: dict[str, pa.Array] = {"timestamp": pa.array([r["timestamp"] for r in self._rows], pa.float64())}
        for key, feat in self.spec.features.items():
            arrow_t = pa.bool_() if feat.dtype == "bool" else pa.from_numpy_dtype(np.dtype(feat.dtype))
            columns[key] = pa.array([r[key] for r in self._rows], pa.list_(arrow_t, feat.shape[0]))
        columns["task"] = pa.array([r["task"] for r in self._rows], pa.string())
        tmp = d / f".{FRAMES_FILE}.tmp"
        pq.write_table(pa.table(columns), tmp)
        os.replace(tmp, d / FRAMES_FILE)  # frames.parquet appears whole, after the camera files
        self._rows, self._video, self._dir = [], {}, None
        self.num_episodes += 1
        return n

    def clear_episode(self) -> None:
        for fut in self._pending:
            fut.exception()
        self._pending = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._rows, self._video, self._dir = [], {}, None

    def complete(self) -> None:
        """Mark the session complete (the inbox sensor picks it up from then on)."""
        if self._rows:
            raise RuntimeError("an episode is still open: save_episode() or clear_episode() first")
        self.close()
        (self.root / COMPLETE_MARKER).write_text("")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "RawSessionWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.clear_episode()
            self.close()


def write_session(
    root: Path | str,
    *,
    fps: int,
    features: dict[str, dict[str, Any]],
    episodes: Iterable[Iterable[dict[str, Any]]],
    robot_type: str | None = None,
    camera_format: Literal["png", "mp4"] = "png",
    complete: bool = True,
) -> Path:
    """Write a whole raw session from episodes of frames (a test and import helper)."""
    with RawSessionWriter.create(root, fps=fps, features=features, robot_type=robot_type, camera_format=camera_format) as w:
        for frames in episodes:
            for frame in frames:
                w.add_frame(frame)
            w.save_episode()
        if complete:
            w.complete()
        else:
            w.close()
    return Path(root)


def png_bytes(image: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    buf = BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
