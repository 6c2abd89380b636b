"""Synthetic LeRobot v3.0 datasets for the SQL tests and benchmark, written with pyarrow only.

The files follow the on-disk format exactly (see shared/reference/lerobot-v3-format.md): the flattened
episodes parquet (`videos/<key>/...`, `stats/<feature>/<stat>`, `meta/episodes/...`), tasks.parquet with
pandas index metadata, info.json, stats.json, and data parquet with one row group per episode. Rollover
limits are parameters, so tests get many chunk/file shards from a few episodes. MP4s are sparse
placeholder files: the SQL reads only their sizes.

This stands in for the dataset writer (another sub-package) until tests can switch to it. Statistics
are computed vectorised (min/max/mean/std exact; quantiles approximated from them), because nothing in
the SQL models reads them and the benchmark needs 100,000 episodes quickly.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def find_lerobot_fixture() -> Path:
    """The LeRobot-written tiny dataset vendored in tests/fixtures."""
    from helpers import FIXTURE

    return FIXTURE


STAT_NAMES = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
ANOMALIES = frozenset(
    {
        "nan_state",  # a NaN in observation.state
        "inf_action",  # an inf in action
        "timestamp_gap",  # timestamps jump by 5 frame periods mid-episode
        "non_monotonic",  # timestamps run backwards (every step negative, none a gap)
        "idle",  # state and action constant over the episode
        "video_short",  # the first camera's segment is 3 frames shorter than `length`
        "video_reversed",  # the first camera's segment has to_timestamp < from_timestamp
        "missing_frame",  # one middle frame absent from the data parquet (length unchanged)
    }
)


@dataclass
class SyntheticSpec:
    n_episodes: int
    tasks: Sequence[str] = ("pick the cube", "place the cube", "push the block")
    fps: int = 30
    min_frames: int = 20
    max_frames: int = 40
    state_dim: int = 6
    cameras: Mapping[str, tuple[int, int]] = field(
        default_factory=lambda: {"observation.images.front": (96, 128), "observation.images.wrist": (64, 80)}
    )
    video_bytes_per_frame: Mapping[str, int] = field(default_factory=dict)  # default 200 per camera
    episodes_per_meta_file: int = 1000
    episodes_per_data_file: int = 1000
    episodes_per_video_file: int = 1000
    chunks_size: int = 1000  # files per chunk directory
    robot_type: str | None = "so100"
    codec: str = "av1"
    seed: int = 0
    write_frames: bool = True
    write_videos: bool = True
    row_group_per_episode: bool = True
    anomalies: Mapping[int, Sequence[str]] = field(default_factory=dict)
    lengths: Sequence[int] | None = None  # explicit episode lengths (overrides min/max_frames)
    task_of: Sequence[Sequence[str]] | None = None  # explicit tasks per episode (default: round robin)


@dataclass
class SyntheticDataset:
    """What was written: the expected answers for tests."""

    root: Path
    fps: int
    lengths: list[int]
    episode_tasks: list[list[str]]
    tasks: list[str]
    meta_files: list[Path]
    data_files: list[Path]
    video_files: dict[str, list[Path]]
    video_bytes: dict[str, int]

    @property
    def n_frames(self) -> int:
        return int(sum(self.lengths))


def _indices(n_episodes: int, per_file: int, chunks_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunk_index, file_index) of each episode: a new file every `per_file` episodes, a new chunk every
    `chunks_size` files (LeRobot's `update_chunk_file_indices`)."""
    file_no = np.arange(n_episodes) // per_file
    return file_no // chunks_size, file_no % chunks_size


_FLOAT64 = pa.float64()


def _list(values: np.ndarray, width: int, value_type: pa.DataType = _FLOAT64) -> pa.Array:
    flat = pa.array(values.reshape(-1), type=value_type)
    offsets = pa.array(np.arange(0, len(flat) + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, flat)


def _image_stat(values: np.ndarray) -> pa.Array:
    """(n, 3) → list<list<list<double>>> of shape (3, 1, 1) per row, as LeRobot writes image stats."""
    n = values.shape[0]
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, 3 * n + 1, dtype=np.int32)), pa.array(values.reshape(-1)))
    middle = pa.ListArray.from_arrays(pa.array(np.arange(0, 3 * n + 1, dtype=np.int32)), inner)
    return pa.ListArray.from_arrays(pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32)), middle)


def _segment_stats(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Per-episode min/max/mean/std over rows (vectorised with reduceat); quantiles approximated."""
    v = values.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        mins = np.minimum.reduceat(v, starts, axis=0)
        maxs = np.maximum.reduceat(v, starts, axis=0)
        sums = np.add.reduceat(v, starts, axis=0)
        sq = np.add.reduceat(v * v, starts, axis=0)
        n = lengths.reshape(-1, *([1] * (v.ndim - 1))).astype(np.float64)
        mean = sums / n
        std = np.sqrt(np.maximum(sq / n - mean * mean, 0.0))
    return {
        "min": mins,
        "max": maxs,
        "mean": mean,
        "std": std,
        "q01": mins,
        "q10": mean - 1.2816 * std,
        "q50": mean,
        "q90": mean + 1.2816 * std,
        "q99": maxs,
    }


def write_synthetic_dataset(root: str | Path, spec: SyntheticSpec) -> SyntheticDataset:
    root = Path(root)
    rng = np.random.default_rng(spec.seed)
    n, fps, dim = spec.n_episodes, spec.fps, spec.state_dim
    for episode, kinds in spec.anomalies.items():
        unknown = set(kinds) - ANOMALIES
        if unknown:
            raise ValueError(f"episode {episode}: unknown anomalies {sorted(unknown)}")
    lengths = (
        np.asarray(spec.lengths, dtype=np.int64)
        if spec.lengths is not None
        else rng.integers(spec.min_frames, spec.max_frames + 1, size=n).astype(np.int64)
    )
    episode_tasks = (
        [list(t) for t in spec.task_of] if spec.task_of is not None else [[spec.tasks[i % len(spec.tasks)]] for i in range(n)]
    )
    tasks: list[str] = []
    for ts in episode_tasks:  # task indices in first-seen order, as LeRobot assigns them
        for t in ts:
            if t not in tasks:
                tasks.append(t)
    task_index = {t: i for i, t in enumerate(tasks)}
    ends = np.cumsum(lengths)
    starts = ends - lengths
    total = int(ends[-1]) if n else 0

    # ---- frames ----
    episode_of_frame = np.repeat(np.arange(n), lengths)
    frame_index = np.arange(total) - np.repeat(starts, lengths)
    state = rng.standard_normal((total, dim)).astype(np.float32)
    action = rng.standard_normal((total, dim)).astype(np.float32)
    timestamp = (frame_index / fps).astype(np.float32)
    keep = np.ones(total, dtype=bool)
    for episode, kinds in spec.anomalies.items():
        s, length = int(starts[episode]), int(lengths[episode])
        mid = s + length // 2
        if "nan_state" in kinds:
            state[mid, 0] = np.nan
        if "inf_action" in kinds:
            action[mid, 1] = np.inf
        if "timestamp_gap" in kinds:
            timestamp[mid : s + length] += np.float32(5 / fps)
        if "non_monotonic" in kinds:
            timestamp[s : s + length] = timestamp[s : s + length][::-1].copy()
        if "idle" in kinds:
            state[s : s + length] = state[s]
            action[s : s + length] = action[s]
        if "missing_frame" in kinds:
            keep[mid] = False
    task_of_frame = np.array([task_index[episode_tasks[e][0]] for e in range(n)], dtype=np.int64)[episode_of_frame]

    data_chunk, data_file = _indices(n, spec.episodes_per_data_file, spec.chunks_size)
    data_files: list[Path] = []
    if spec.write_frames and n:
        schema = pa.schema(
            [
                ("observation.state", pa.list_(pa.float32(), dim)),
                ("action", pa.list_(pa.float32(), dim)),
                ("timestamp", pa.float32()),
                ("frame_index", pa.int64()),
                ("episode_index", pa.int64()),
                ("index", pa.int64()),
                ("task_index", pa.int64()),
            ]
        )
        features_meta = {
            "observation.state": {"feature": {"dtype": "float32", "_type": "Value"}, "length": dim, "_type": "List"},
            "action": {"feature": {"dtype": "float32", "_type": "Value"}, "length": dim, "_type": "List"},
            "timestamp": {"dtype": "float32", "_type": "Value"},
            **{k: {"dtype": "int64", "_type": "Value"} for k in ("frame_index", "episode_index", "index", "task_index")},
        }
        schema = schema.with_metadata({"huggingface": json.dumps({"info": {"features": features_meta}})})
        file_keys = data_chunk * 10**6 + data_file
        for key in np.unique(file_keys):
            eps = np.nonzero(file_keys == key)[0]
            path = root / f"data/chunk-{int(key // 10**6):03d}/file-{int(key % 10**6):03d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            lo, hi = int(starts[eps[0]]), int(ends[eps[-1]])
            sel = np.arange(lo, hi)[keep[lo:hi]]
            table = pa.table(
                [
                    pa.FixedSizeListArray.from_arrays(pa.array(state[sel].reshape(-1)), dim),
                    pa.FixedSizeListArray.from_arrays(pa.array(action[sel].reshape(-1)), dim),
                    pa.array(timestamp[sel]),
                    pa.array(frame_index[sel]),
                    pa.array(episode_of_frame[sel]),
                    pa.array(sel.astype(np.int64)),
                    pa.array(task_of_frame[sel]),
                ],
                schema=schema,
            )
            with pq.ParquetWriter(path, schema, compression="snappy", use_dictionary=True) as writer:
                if spec.row_group_per_episode:
                    # one row group per episode, as LeRobot's writer does
                    episode_col = episode_of_frame[sel]
                    bounds = np.searchsorted(episode_col, eps, side="left").tolist() + [len(sel)]
                    for a, b in zip(bounds[:-1], bounds[1:]):
                        writer.write_table(table.slice(a, b - a))
                else:
                    writer.write_table(table)
            data_files.append(path)

    # ---- episodes metadata ----
    columns: dict[str, pa.Array] = {
        "episode_index": pa.array(np.arange(n, dtype=np.int64)),
        "tasks": pa.array(episode_tasks, type=pa.list_(pa.string())),
        "length": pa.array(lengths),
        "data/chunk_index": pa.array(data_chunk.astype(np.int64)),
        "data/file_index": pa.array(data_file.astype(np.int64)),
        "dataset_from_index": pa.array(starts.astype(np.int64)),
        "dataset_to_index": pa.array(ends.astype(np.int64)),
    }
    video_chunk, video_file = _indices(n, spec.episodes_per_video_file, spec.chunks_size)
    video_files: dict[str, list[Path]] = {}
    video_bytes: dict[str, int] = {}
    for ci, key in enumerate(spec.cameras):
        duration = lengths / fps
        file_keys = video_chunk * 10**6 + video_file
        from_ts = np.zeros(n)
        for fk in np.unique(file_keys):
            eps = np.nonzero(file_keys == fk)[0]
            # from_timestamp = sum of the durations before the episode in the same MP4 (restarts per file)
            from_ts[eps] = np.concatenate([[0.0], np.cumsum(duration[eps])[:-1]])
        to_ts = from_ts + duration
        if ci == 0:
            for episode, kinds in spec.anomalies.items():
                if "video_short" in kinds:
                    to_ts[episode] -= 3 / fps
                if "video_reversed" in kinds:
                    from_ts[episode], to_ts[episode] = to_ts[episode], from_ts[episode]
        columns[f"videos/{key}/chunk_index"] = pa.array(video_chunk.astype(np.int64))
        columns[f"videos/{key}/file_index"] = pa.array(video_file.astype(np.int64))
        columns[f"videos/{key}/from_timestamp"] = pa.array(from_ts)
        columns[f"videos/{key}/to_timestamp"] = pa.array(to_ts)
        bpf = spec.video_bytes_per_frame.get(key, 200)
        video_files[key] = []
        video_bytes[key] = 0
        if spec.write_videos:
            for fk in np.unique(file_keys):
                eps = np.nonzero(file_keys == fk)[0]
                path = root / f"videos/{key}/chunk-{int(fk // 10**6):03d}/file-{int(fk % 10**6):03d}.mp4"
                path.parent.mkdir(parents=True, exist_ok=True)
                size = int(lengths[eps].sum()) * bpf
                with open(path, "wb") as handle:
                    handle.truncate(size)  # sparse: the size is what the SQL reads
                video_files[key].append(path)
                video_bytes[key] += size

    # per-episode stats columns, feature order as in info.json
    stats_columns: dict[str, pa.Array] = {}
    stats_for_json: dict[str, dict[str, list]] = {}
    numeric = {
        "observation.state": state,
        "action": action,
        "timestamp": timestamp[:, None].astype(np.float64),
        "frame_index": frame_index[:, None].astype(np.float64),
        "episode_index": episode_of_frame[:, None].astype(np.float64),
        "index": np.arange(total, dtype=np.float64)[:, None],
        "task_index": task_of_frame[:, None].astype(np.float64),
    }
    if n:
        for feature, values in numeric.items():
            st = _segment_stats(values, starts, lengths)
            width = values.shape[1]
            for stat in STAT_NAMES:
                name = f"stats/{feature}/{stat}"
                if stat == "count":
                    stats_columns[name] = _list(lengths.reshape(-1, 1), 1, pa.int64())
                else:
                    stats_columns[name] = _list(st[stat], width)
            stats_for_json[feature] = _aggregate(st, lengths)
        for key in spec.cameras:
            pix = rng.uniform(0.2, 0.8, size=(n, 3))
            for stat in STAT_NAMES:
                name = f"stats/{key}/{stat}"
                if stat == "count":
                    stats_columns[name] = _list(np.minimum(lengths, 100).reshape(-1, 1), 1, pa.int64())
                else:
                    stats_columns[name] = _image_stat(pix)
            stats_for_json[key] = {
                s: [[[float(v)]] for v in pix.mean(axis=0)] for s in STAT_NAMES if s != "count"
            } | {"count": [int(np.minimum(lengths, 100).sum())]}
    columns.update(stats_columns)
    meta_chunk, meta_file = _indices(n, spec.episodes_per_meta_file, spec.chunks_size)
    columns["meta/episodes/chunk_index"] = pa.array(meta_chunk.astype(np.int64))
    columns["meta/episodes/file_index"] = pa.array(meta_file.astype(np.int64))
    episodes = pa.table(columns)
    meta_files: list[Path] = []
    file_keys = meta_chunk * 10**6 + meta_file
    for fk in np.unique(file_keys):
        eps = np.nonzero(file_keys == fk)[0]
        path = root / f"meta/episodes/chunk-{int(fk // 10**6):03d}/file-{int(fk % 10**6):03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(episodes.slice(int(eps[0]), len(eps)), path, compression="snappy")
        meta_files.append(path)

    # ---- tasks.parquet (pandas frame indexed by task, as LeRobot writes it) ----
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.3.3",
    }
    tasks_table = pa.table(
        {"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())}
    ).replace_schema_metadata({"pandas": json.dumps(pandas_meta)})
    (root / "meta").mkdir(parents=True, exist_ok=True)
    pq.write_table(tasks_table, root / "meta/tasks.parquet", compression="snappy")

    # ---- info.json / stats.json ----
    features: dict[str, dict] = {
        "observation.state": {"dtype": "float32", "shape": [dim], "names": [f"j{i}" for i in range(dim)]},
        "action": {"dtype": "float32", "shape": [dim], "names": [f"j{i}" for i in range(dim)]},
    }
    for key, (h, w) in spec.cameras.items():
        features[key] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": h,
                "video.width": w,
                "video.codec": spec.codec,
                "video.pix_fmt": "yuv420p",
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": False,
                "video.g": 2,
                "video.crf": 30,
                "video.preset": 12,
                "video.fast_decode": 0,
                "video.video_backend": "pyav",
                "video.extra_options": {},
                "is_depth_map": False,
            },
        }
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for k in ("frame_index", "episode_index", "index", "task_index"):
        features[k] = {"dtype": "int64", "shape": [1], "names": None}
    info = {
        "codebase_version": "v3.0",
        "fps": fps,
        "features": features,
        "total_episodes": n,
        "total_frames": total,
        "total_tasks": len(tasks),
        "chunks_size": spec.chunks_size,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4" if spec.cameras else None,
        "robot_type": spec.robot_type,
        "splits": {"train": f"0:{n}"},
    }
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    (root / "meta/stats.json").write_text(json.dumps(stats_for_json))
    return SyntheticDataset(
        root=root,
        fps=fps,
        lengths=[int(x) for x in lengths],
        episode_tasks=episode_tasks,
        tasks=tasks,
        meta_files=meta_files,
        data_files=data_files,
        video_files=video_files,
        video_bytes=video_bytes,
    )


def _aggregate(st: dict[str, np.ndarray], lengths: np.ndarray) -> dict[str, list]:
    w = lengths.astype(np.float64)[:, None]
    with np.errstate(invalid="ignore"):
        mean = (st["mean"] * w).sum(axis=0) / w.sum()
        var = ((st["std"] ** 2 + (st["mean"] - mean) ** 2) * w).sum(axis=0) / w.sum()
    out = {
        "min": st["min"].min(axis=0),
        "max": st["max"].max(axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "q01": st["q01"].min(axis=0),
        "q10": (st["q10"] * w).sum(axis=0) / w.sum(),
        "q50": (st["q50"] * w).sum(axis=0) / w.sum(),
        "q90": (st["q90"] * w).sum(axis=0) / w.sum(),
        "q99": st["q99"].max(axis=0),
    }
    result = {k: [float(x) for x in v] for k, v in out.items()}
    result["count"] = [int(lengths.sum())]
    return result


def write_synthetic_home(
    home: str | Path,
    n_datasets: int,
    episodes_per_dataset: int,
    *,
    episodes_per_file: int,
    prefix: str = "datasets",
    seed: int = 0,
    **spec_kwargs: object,
) -> list[SyntheticDataset]:
    """`n_datasets` datasets under `<home>/<prefix>/ds-XXX`, each with files rolling over every
    `episodes_per_file` episodes (episodes, data and video files alike)."""
    out = []
    for i in range(n_datasets):
        spec = SyntheticSpec(
            n_episodes=episodes_per_dataset,
            episodes_per_meta_file=episodes_per_file,
            episodes_per_data_file=episodes_per_file,
            episodes_per_video_file=episodes_per_file,
            seed=seed + i,
            **spec_kwargs,  # type: ignore[arg-type]
        )
        out.append(write_synthetic_dataset(Path(home) / prefix / f"ds-{i:03d}", spec))
    return out


@contextlib.contextmanager
def moto_s3(bucket: str = "lerobot") -> Iterator[str]:
    """An S3-compatible server (moto) on loopback with `bucket` created; yields its endpoint URL.

    Dummy credentials are set in the environment for the duration (s3fs/botocore need some).
    """
    import boto3
    from moto.server import ThreadedMotoServer

    credentials = mock.patch.dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    credentials.start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # moto keeps its buckets per process, not per server: without a reset, objects an earlier test
        # uploaded under the same prefix would show up here as extra files.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
        # region us-east-1: s3fs's mkdir would send a location constraint that moto rejects
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()
        forget_s3_clients()
        credentials.stop()


def forget_s3_clients() -> None:
    """Drop fsspec's cached S3 filesystems. One made without options (a URL opened with only
    AWS_ENDPOINT_URL set) keeps the endpoint it was made with, and fsspec hands the same instance to
    the next test that opens an s3:// URL the same way: a later test would talk to a stopped server."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


def upload(endpoint: str, local: str | Path, remote: str) -> None:
    """Copy a local tree to `bucket/prefix` on the server."""
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=endpoint, client_kwargs={"region_name": "us-east-1"})
    fs.put(str(local).rstrip("/") + "/", remote.rstrip("/") + "/", recursive=True)


@contextlib.contextmanager
def duckdb_writer_elsewhere(path: str | Path, seconds: float) -> Iterator[None]:
    """Another process holding a DuckDB file open for writing (its lock) for up to `seconds`, as an asset
    run materializing into the catalog does; released when the block ends."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(float(sys.argv[2]))",
         str(path), str(seconds)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait(timeout=30)
