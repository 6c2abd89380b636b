"""What the modules see of a dataset's episodes: frame timestamps, the recorded states, the task,
the cameras (with their image sizes and video segments) and the episode's existing language rows."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.annotate.schema import LANGUAGE_EVENTS, LANGUAGE_PERSISTENT, from_arrow_rows
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.recording.paths import data_rel, video_rel
from lerobot_assets.stats.dataset import column_to_numpy

STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
ACTION_KEY = "action"


@dataclass(frozen=True)
class Camera:
    key: str
    height: int
    width: int


@dataclass
class EpisodeData:
    index: int
    task: str
    timestamps: np.ndarray  # float32, one per frame
    fps: int
    state: np.ndarray | None = None  # (n, d) float
    env_state: np.ndarray | None = None  # (n, 16) PushT block keypoints when recorded
    action: np.ndarray | None = None
    cameras: list[Camera] = field(default_factory=list)
    videos: dict[str, tuple[Path, float]] = field(default_factory=dict)  # camera -> (file, from_timestamp)
    persistent: list[dict[str, Any]] = field(default_factory=list)  # existing rows (with timestamps)
    events: list[dict[str, Any]] = field(default_factory=list)  # existing event rows, timestamps added

    @property
    def length(self) -> int:
        return len(self.timestamps)

    @property
    def times(self) -> list[float]:
        """Frame timestamps as Python floats (float32 values, exact)."""
        return [float(t) for t in self.timestamps]

    @property
    def duration(self) -> float:
        return float(self.timestamps[-1] - self.timestamps[0]) if self.length else 0.0

    def snap(self, t: float) -> float:
        """The frame timestamp nearest to `t`."""
        i = int(np.argmin(np.abs(self.timestamps.astype(np.float64) - t)))
        return float(self.timestamps[i])

    def frame_of(self, t: float) -> int:
        return int(np.argmin(np.abs(self.timestamps.astype(np.float64) - t)))

    def fingerprint(self) -> str:
        """Changes when what the modules read of the episode changes."""
        h = hashlib.sha256()
        h.update(self.task.encode())
        for arr in (self.timestamps, self.state, self.env_state, self.action):
            if arr is not None:
                h.update(np.ascontiguousarray(arr).tobytes())
        h.update(repr([(c.key, c.height, c.width) for c in self.cameras]).encode())
        return h.hexdigest()[:16]


def cameras_of(meta: DatasetMeta) -> list[Camera]:
    out = []
    for key in meta.info.camera_keys:
        shape = meta.info.features[key].shape
        names = meta.info.features[key].names
        # LeRobot video features are [height, width, channels]; channel-first if names say so.
        if isinstance(names, list) and names[:1] == ["channels"]:
            h, w = shape[1], shape[2]
        else:
            h, w = shape[0], shape[1]
        out.append(Camera(key, int(h), int(w)))
    return out


def iter_episodes(root: Path, episodes: Sequence[int] | None = None, meta: DatasetMeta | None = None) -> Iterator[EpisodeData]:
    """The episodes `episodes` (all when None) of the local dataset at `root`, in index order."""
    meta = meta or DatasetMeta(root)
    root = Path(meta.root)
    rows = {int(r["episode_index"]): r for r in meta.episodes.to_pylist()}
    wanted = sorted(rows) if episodes is None else sorted(set(int(e) for e in episodes))
    for e in wanted:
        if e not in rows:
            raise ValueError(f"episode {e} is not in {root} (episodes 0-{len(rows) - 1})")
    cameras = cameras_of(meta)
    features = meta.info.features
    by_file: dict[tuple[int, int], list[int]] = {}
    for e in wanted:
        by_file.setdefault((rows[e]["data/chunk_index"], rows[e]["data/file_index"]), []).append(e)
    for (c, f), eps in sorted(by_file.items()):
        table = pq.read_table(root / data_rel(meta.info, c, f))
        ep_col = column_to_numpy(table.column("episode_index")).astype(np.int64)
        for e in eps:
            part = table.filter(pa.array(ep_col == e))
            yield episode_from_table(meta, e, rows[e], part, cameras, features)


def episode_from_table(meta: DatasetMeta, e: int, meta_row: dict[str, Any], part: pa.Table, cameras: list[Camera], features: Any) -> EpisodeData:
    order = np.argsort(column_to_numpy(part.column("frame_index")), kind="stable")
    part = part.take(pa.array(order))
    ts = column_to_numpy(part.column("timestamp")).astype(np.float32)
    task_idx = column_to_numpy(part.column("task_index")).astype(np.int64)
    task = meta.tasks[int(task_idx[0])] if len(task_idx) and 0 <= task_idx[0] < len(meta.tasks) else ""

    def numeric(key: str) -> np.ndarray | None:
        if key not in part.column_names or key not in features:
            return None
        return np.asarray(column_to_numpy(part.column(key)), dtype=np.float64).reshape(part.num_rows, -1)

    ep = EpisodeData(e, task, ts, int(meta.info.fps), numeric(STATE_KEY), numeric(ENV_STATE_KEY), numeric(ACTION_KEY), list(cameras))
    if ep.env_state is not None and ep.env_state.shape[1] != 16:
        ep.env_state = None
    for cam in cameras:
        if f"videos/{cam.key}/chunk_index" in meta_row:
            rel = video_rel(meta.info, cam.key, meta_row[f"videos/{cam.key}/chunk_index"], meta_row[f"videos/{cam.key}/file_index"])
            ep.videos[cam.key] = (Path(meta.root) / rel, float(meta_row[f"videos/{cam.key}/from_timestamp"]))
    if LANGUAGE_PERSISTENT in part.column_names and part.num_rows:
        ep.persistent = from_arrow_rows(part.column(LANGUAGE_PERSISTENT)[0].as_py())
        for r in ep.persistent:
            r["timestamp"] = float(np.float32(r["timestamp"]))
    if LANGUAGE_EVENTS in part.column_names:
        for t, frame_rows in zip(ep.times, part.column(LANGUAGE_EVENTS).to_pylist()):
            for r in from_arrow_rows(frame_rows):
                r["timestamp"] = t
                ep.events.append(r)
    return ep
