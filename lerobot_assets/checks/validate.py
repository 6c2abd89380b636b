"""Validation of a whole LeRobot v3.0 dataset root against the invariants LeRobot's reader relies on.

`validate_dataset(root)` never raises for a broken dataset (it reports a `Problem` naming the file
and, where it applies, the episode); it raises `NotAV3DatasetError` only when `root` is not a v3
dataset at all. Everything is read once: the episodes metadata (without its stats columns), five
index columns of each data file, the packet timestamps of each video file (demux only, no
decoding), grouped so that one video file is opened once whatever number of episodes it holds.
Per-episode checks are vectorised over all frames, so thousands of episodes stay fast.

Why each check matters to LeRobot 0.6.1's `LeRobotDataset`:
- it concatenates every `data/*/*.parquet` in path order and indexes rows by position, so the
  global `index` must be 0..N-1 in that order and each episode's `dataset_from/to_index` must
  point at its rows;
- it looks episodes and tasks up by position (`meta.episodes[ep]`, `tasks.iloc[task_index]`), so
  both must be numbered 0..n-1 in file order;
- it decodes video at `from_timestamp + timestamp` and fails when no frame lies within
  `tolerance_s` (1e-4 s), so timestamps must equal frame_index/fps and each episode's frames must
  sit at from_timestamp + k/fps in its video file.
"""

import json
import math
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import INDEX_FEATURES, INFO_PATH, STATS_PATH, TASKS_PATH
from lerobot_assets.format.stats_json import QUANTILES

Severity = Literal["error", "warning"]

# LeRobot's default reader tolerance (seconds) between a queried and a decoded timestamp.
DEFAULT_TOLERANCE_S = 1e-4
REQUIRED_STAT_KEYS = ("min", "max", "mean", "std", "count")
# Quantile stats appeared later in v3.0; datasets converted from v2.1 may lack them.
OPTIONAL_STAT_KEYS = tuple(QUANTILES)
_INDEX_DTYPES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64",
                 "index": "int64", "task_index": "int64"}
_EPISODE_COLUMNS = ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
                    "dataset_from_index", "dataset_to_index")


class NotAV3DatasetError(ValueError):
    """`root` is not a LeRobot v3 dataset (no meta/info.json, or another codebase_version)."""


@dataclass(frozen=True)
class Problem:
    severity: Severity
    file: str  # relative to the dataset root
    episode: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.episode is None else f"{self.file} [episode {self.episode}]"
        return f"{self.severity.upper()} {where}: {self.message}"


@dataclass
class ValidationReport:
    root: Path
    problems: list[Problem] = field(default_factory=list)
    # What was looked at, for the one-line summary.
    num_episodes: int = 0
    num_frames: int = 0
    num_data_files: int = 0
    num_video_files: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        state = "OK" if self.ok else "INVALID"
        return (f"{state} {self.root}: {self.num_episodes} episodes, {self.num_frames} frames, "
                f"{self.num_data_files} data files, {self.num_video_files} video files checked; "
                f"{len(self.errors)} errors, {len(self.warnings)} warnings")


@dataclass
class _Episodes:
    """Episode metadata as numpy columns (position k = k-th row in file order)."""

    index: np.ndarray
    length: np.ndarray
    start: np.ndarray
    end: np.ndarray
    data_file: list[tuple[int, int]]
    tasks: list[list[str]]
    video: dict[str, dict[str, np.ndarray]]


class _Validator:
    def __init__(self, root: Path, tolerance_s: float, max_per_check: int | None, check_videos: bool) -> None:
        self.root = root
        self.tolerance_s = tolerance_s
        self.max_per_check = max_per_check
        self.check_videos = check_videos
        self.report = ValidationReport(root=root)
        self._counts: dict[str, int] = defaultdict(int)
        self._first: dict[str, tuple[Severity, str]] = {}
        self._episode_files: list[Path] = []
        self._row_file: list[Path] = []  # episodes parquet file of each episode row
        self.info: DatasetInfo | None = None
        self.tasks: list[str] | None = None
        self.eps: _Episodes | None = None

    # ------------------------------------------------------------------ reporting
    def add(self, severity: Severity, file: str | Path, episode: int | None, message: str,
            check: str | None = None) -> None:
        """Record a problem; per-check caps keep a systematic fault from printing 10,000 lines."""
        rel = self._rel(file)
        if check is not None and self.max_per_check is not None:
            self._counts[check] += 1
            self._first.setdefault(check, (severity, rel))
            if self._counts[check] > self.max_per_check:
                return
        self.report.problems.append(Problem(severity, rel, None if episode is None else int(episode), message))

    def error(self, file: str | Path, episode: int | None, message: str, check: str | None = None) -> None:
        self.add("error", file, episode, message, check)

    def warn(self, file: str | Path, episode: int | None, message: str, check: str | None = None) -> None:
        self.add("warning", file, episode, message, check)

    def _rel(self, file: str | Path) -> str:
        p = Path(file)
        try:
            return p.relative_to(self.root).as_posix() if p.is_absolute() else p.as_posix()
        except ValueError:
            return p.as_posix()

    def _flush_caps(self) -> None:
        for check, n in self._counts.items():
            if self.max_per_check is not None and n > self.max_per_check:
                severity, rel = self._first[check]
                self.report.problems.append(Problem(
                    severity, rel, None,
                    f"{n - self.max_per_check} more problems of this kind ({check}) not listed; "
                    f"{n} in all, the first {self.max_per_check} are above",
                ))

    # ------------------------------------------------------------------ steps
    def run(self) -> ValidationReport:
        if not self.load_info():
            return self.report
        self.check_info_features()
        self.load_tasks()
        if self.load_episodes():
            self.check_episodes()
            self.check_data()
            if self.check_videos:
                self.check_video_files()
        self.check_stats()
        self._flush_caps()
        return self.report

    def load_info(self) -> bool:
        path = self.root / INFO_PATH
        if not self.root.is_dir():
            raise NotAV3DatasetError(f"{self.root}: not a directory")
        if not path.is_file():
            raise NotAV3DatasetError(f"{self.root}: not a LeRobot dataset root (meta/info.json is missing)")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            self.error(INFO_PATH, None, f"invalid JSON: {e}")
            return False
        if not isinstance(raw, dict):
            self.error(INFO_PATH, None, "not a JSON object")
            return False
        version = raw.get("codebase_version")
        if version is None or not str(version).startswith("v3"):
            raise NotAV3DatasetError(
                f"{path}: codebase_version {version!r} is not v3.x (only LeRobot v3 datasets are supported)"
            )
        try:
            self.info = DatasetInfo.model_validate(raw)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            self.error(INFO_PATH, None, f"does not match the info.json schema at {loc}: {first['msg']}")
            return False
        return True

    def check_info_features(self) -> None:
        info = self.info
        assert info is not None
        if info.fps <= 0:
            self.error(INFO_PATH, None, f"fps is {info.fps}; it must be positive")
        for key, dtype in _INDEX_DTYPES.items():
            f = info.features.get(key)
            if f is None:
                self.error(INFO_PATH, None, f"feature {key!r} is missing (LeRobot adds it to every dataset)")
            elif f.dtype != dtype:
                self.error(INFO_PATH, None, f"feature {key!r} has dtype {f.dtype}, expected {dtype}")
        if info.video_keys and not info.video_path:
            self.error(INFO_PATH, None, "video_path is null but the dataset has video features")
        for key in info.video_keys:
            f = info.features[key]
            if len(f.shape) != 3:
                self.error(INFO_PATH, None, f"video feature {key!r} has shape {f.shape}; expected [H, W, C]")

    def load_tasks(self) -> None:
        path = self.root / TASKS_PATH
        if not path.is_file():
            self.error(TASKS_PATH, None, "missing")
            return
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as e:
            self.error(TASKS_PATH, None, f"unreadable parquet: {e}")
            return
        if "task_index" not in table.column_names or "task" not in table.column_names:
            self.error(TASKS_PATH, None, f"columns are {table.column_names}; expected task_index and task")
            return
        idx = table.column("task_index").to_pylist()
        names = table.column("task").to_pylist()
        # LeRobot resolves a task with tasks.iloc[task_index]: row k must hold task_index k.
        if idx != list(range(len(idx))):
            self.error(TASKS_PATH, None, f"task_index values {idx[:10]} are not 0..{len(idx) - 1} in row order")
        dup = sorted({t for t in names if names.count(t) > 1}) if len(set(names)) != len(names) else []
        if dup:
            self.error(TASKS_PATH, None, f"duplicate task strings: {dup[:5]}")
        self.tasks = names
        assert self.info is not None
        if self.info.total_tasks != len(names):
            self.error(INFO_PATH, None, f"total_tasks={self.info.total_tasks} but meta/tasks.parquet has {len(names)} tasks")

    def load_episodes(self) -> bool:
        files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not files:
            self.error("meta/episodes", None, "no episodes metadata (meta/episodes/chunk-*/file-*.parquet)")
            return False
        info = self.info
        assert info is not None
        wanted = list(_EPISODE_COLUMNS)
        for key in info.video_keys:
            wanted += [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
        tables: list[pa.Table] = []
        ok = True
        for path in files:
            try:
                schema = pq.read_schema(path)
                missing = [c for c in wanted if c not in schema.names]
                if missing:
                    self.error(path, None, f"missing columns {missing}")
                    ok = False
                    continue
                extra = [c for c in ("meta/episodes/chunk_index", "meta/episodes/file_index") if c in schema.names]
                table = pq.read_table(path, columns=wanted + extra)
            except (pa.ArrowInvalid, OSError) as e:
                self.error(path, None, f"unreadable episodes parquet: {e}")
                ok = False
                continue
            self._check_episode_file_location(path, table)
            tables.append(table.select(wanted))
            self._row_file += [path] * table.num_rows
        if not ok or not tables:
            return False
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            self.error("meta/episodes", None, f"episodes files have incompatible schemas: {e}")
            return False
        for name in wanted:
            if table.column(name).null_count:
                rows = np.flatnonzero(table.column(name).is_null().to_numpy(zero_copy_only=False))
                self.error(self._row_file[int(rows[0])], None, f"column {name!r} has null values ({rows.size} rows)")
                return False

        def col(name: str) -> np.ndarray:
            return table.column(name).to_numpy()

        video: dict[str, dict[str, np.ndarray]] = {}
        for key in info.video_keys:
            video[key] = {c: col(f"videos/{key}/{c}") for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")}
        self.eps = _Episodes(
            index=col("episode_index").astype(np.int64),
            length=col("length").astype(np.int64),
            start=col("dataset_from_index").astype(np.int64),
            end=col("dataset_to_index").astype(np.int64),
            data_file=list(zip(col("data/chunk_index").tolist(), col("data/file_index").tolist())),
            tasks=table.column("tasks").to_pylist(),
            video=video,
        )
        self._episode_files = files
        return True

    def _check_episode_file_location(self, path: Path, table: pa.Table) -> None:
        if "meta/episodes/chunk_index" not in table.column_names:
            return
        try:
            chunk = int(path.parent.name.split("-")[-1])
            file = int(path.stem.split("-")[-1])
        except ValueError:
            self.warn(path, None, "file name does not follow chunk-XXX/file-XXX.parquet")
            return
        c = table.column("meta/episodes/chunk_index").to_numpy()
        f = table.column("meta/episodes/file_index").to_numpy()
        bad = np.flatnonzero((c != chunk) | (f != file))
        if bad.size:
            ep = table.column("episode_index")[int(bad[0])].as_py()
            self.warn(path, ep, f"meta/episodes/chunk_index,file_index = {c[bad[0]]},{f[bad[0]]} "
                                f"but the row is stored in chunk {chunk} file {file} ({bad.size} rows)")

    def _episode_file_of(self, pos: int) -> Path:
        return self._row_file[pos]

    def check_episodes(self) -> None:
        eps, info = self.eps, self.info
        assert eps is not None and info is not None
        n_eps = len(eps.index)
        self.report.num_episodes = n_eps
        # LeRobot addresses episodes by position: episode k must be row k.
        bad = np.flatnonzero(eps.index != np.arange(n_eps))
        if bad.size:
            k = int(bad[0])
            self.error(self._episode_file_of(k), int(eps.index[k]),
                       f"episode_index values are not 0..{n_eps - 1} in file order "
                       f"(row {k} holds {eps.index[k]}; {bad.size} rows out of place)")
        if info.total_episodes != n_eps:
            self.error(INFO_PATH, None, f"total_episodes={info.total_episodes} but meta/episodes has {n_eps} episodes")
        total = int(eps.length.sum())
        if info.total_frames != total:
            self.error(INFO_PATH, None, f"total_frames={info.total_frames} but the episodes' lengths sum to {total}")
        for k in np.flatnonzero(eps.length <= 0).tolist():
            self.error(self._episode_file_of(k), int(eps.index[k]), f"length is {eps.length[k]}", check="length")
        for k in np.flatnonzero(eps.end - eps.start != eps.length).tolist():
            self.error(self._episode_file_of(k), int(eps.index[k]),
                       f"dataset_to_index - dataset_from_index = {eps.end[k] - eps.start[k]} "
                       f"but length is {eps.length[k]}", check="from_to_length")
        expected_start = np.concatenate([[0], np.cumsum(eps.length)[:-1]])
        for k in np.flatnonzero(eps.start != expected_start).tolist():
            self.error(self._episode_file_of(k), int(eps.index[k]),
                       f"dataset_from_index is {eps.start[k]}, expected {expected_start[k]} "
                       f"(episodes must cover 0..total_frames-1 contiguously, in order)", check="from_index")
        known = set(self.tasks or [])
        for k, tasks in enumerate(eps.tasks):
            if not tasks:
                self.error(self._episode_file_of(k), int(eps.index[k]), "tasks list is empty", check="ep_tasks")
            elif self.tasks is not None:
                unknown = [t for t in tasks if t not in known]
                if unknown:
                    self.error(self._episode_file_of(k), int(eps.index[k]),
                               f"tasks {unknown} are not in meta/tasks.parquet", check="ep_tasks")

    # ------------------------------------------------------------------ data files
    def _data_rel(self, chunk: int, file: int) -> str:
        assert self.info is not None
        return self.info.data_path.format(chunk_index=chunk, file_index=file)

    def check_data(self) -> None:
        eps, info = self.eps, self.info
        assert eps is not None and info is not None
        referenced = sorted(set(eps.data_file), key=lambda cf: self._data_rel(*cf))
        self.report.num_data_files = len(referenced)
        referenced_paths = {self._data_rel(*cf) for cf in referenced}
        # LeRobot loads every parquet under data/, referenced or not: a stray file shifts every row.
        for path in sorted((self.root / "data").glob("*/*.parquet")):
            if self._rel(path) not in referenced_paths:
                self.error(path, None, "data file is not referenced by any episode (LeRobot would still load its rows)")

        columns = [k for k, f in info.features.items() if f.dtype != "video"]
        index_cols = [k for k in INDEX_FEATURES if k in info.features]
        arrays: dict[str, list[np.ndarray]] = {k: [] for k in index_cols}
        file_ranges: dict[tuple[int, int], tuple[int, int]] = {}
        offset = 0
        complete = True
        eps_in_file: dict[tuple[int, int], list[int]] = defaultdict(list)
        for k, cf in enumerate(eps.data_file):
            eps_in_file[cf].append(k)
        for cf in referenced:
            rel = self._data_rel(*cf)
            path = self.root / rel
            first_ep = int(eps.index[eps_in_file[cf][0]])
            if not path.is_file():
                self.error(rel, first_ep, f"data file is missing (referenced by {_ep_list(eps.index[eps_in_file[cf]])})")
                complete = False
                continue
            try:
                pf = pq.ParquetFile(path, memory_map=True)
                schema = pf.schema_arrow
                missing = [c for c in columns if c not in schema.names]
                if missing:
                    self.error(rel, None, f"missing columns {missing}")
                self._check_column_types(rel, schema)
                table = pf.read(columns=[c for c in index_cols if c in schema.names])
            except (pa.ArrowInvalid, OSError) as e:
                self.error(rel, first_ep, f"unreadable data parquet: {e}")
                complete = False
                continue
            if any(c not in table.column_names for c in index_cols):
                complete = False
                continue
            nulls = [c for c in index_cols if table.column(c).null_count]
            if nulls:
                self.error(rel, None, f"null values in columns {nulls}")
                complete = False
                continue
            self._check_row_groups(rel, pf, eps_in_file[cf])
            for c in index_cols:
                arrays[c].append(table.column(c).to_numpy())
            file_ranges[cf] = (offset, offset + table.num_rows)
            offset += table.num_rows
        if not complete:
            return
        n = offset
        self.report.num_frames = n
        if info.total_frames != n:
            self.error(INFO_PATH, None, f"total_frames={info.total_frames} but the data files hold {n} rows")
        cols = {c: np.concatenate(v) if v else np.empty(0) for c, v in arrays.items()}
        self._check_rows(cols, file_ranges, n)

    def _check_column_types(self, rel: str, schema: pa.Schema) -> None:
        assert self.info is not None
        for key, f in self.info.features.items():
            if f.dtype in ("video", "image", "string") or key not in schema.names:
                continue
            t = schema.field(key).type
            if pa.types.is_fixed_size_list(t):
                if [t.list_size] != f.shape[:1] or len(f.shape) != 1:
                    self.error(rel, None, f"column {key!r} holds lists of {t.list_size} values but info.json says shape {f.shape}")
            elif pa.types.is_list(t) or pa.types.is_large_list(t):
                pass  # variable-length lists: lengths are not checked row by row here
            elif f.shape != [1]:
                self.error(rel, None, f"column {key!r} holds scalars but info.json says shape {f.shape}")

    def _check_row_groups(self, rel: str, pf: pq.ParquetFile, positions: list[int]) -> None:
        """LeRobot's writer writes one row group per episode; streaming readers shard on them."""
        eps = self.eps
        assert eps is not None
        sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.metadata.num_row_groups)]
        lengths = [int(eps.length[k]) for k in sorted(positions, key=lambda k: eps.start[k])]
        if sizes != lengths:
            self.warn(rel, None, f"{len(sizes)} row groups for {len(lengths)} episodes (row group sizes "
                                 f"{sizes[:5]}{'...' if len(sizes) > 5 else ''}); LeRobot writes one row group per episode")

    def _check_rows(self, cols: dict[str, np.ndarray], file_ranges: dict[tuple[int, int], tuple[int, int]], n: int) -> None:
        eps, info = self.eps, self.info
        assert eps is not None and info is not None
        n_eps = len(eps.index)
        # Each episode's rows must lie in the data file it names.
        for k in range(n_eps):
            lo, hi = file_ranges[eps.data_file[k]]
            if not (lo <= eps.start[k] and eps.end[k] <= hi):
                self.error(self._data_rel(*eps.data_file[k]), int(eps.index[k]),
                           f"rows [{eps.start[k]}, {eps.end[k]}) are not in this data file "
                           f"(it holds global rows [{lo}, {hi}))", check="rows_in_file")
        if int(eps.length.sum()) != n or (eps.start != np.concatenate([[0], np.cumsum(eps.length)[:-1]])).any():
            # Episode ranges and rows disagree already (reported); row-by-row checks would only echo that.
            return
        row_ep = np.repeat(np.arange(n_eps), eps.length)

        def per_episode(bad_rows: np.ndarray, check: str, describe) -> None:
            """One problem per episode holding bad rows; describe(k, rows) words it."""
            if not bad_rows.size:
                return
            # bad_rows is sorted and so is row_ep: each episode's bad rows are one slice.
            ks, firsts, counts = np.unique(row_ep[bad_rows], return_index=True, return_counts=True)
            for k, first, count in zip(ks.tolist(), firsts.tolist(), counts.tolist()):
                self.error(self._data_rel(*eps.data_file[k]), int(eps.index[k]),
                           describe(k, bad_rows[first:first + count]), check=check)

        if "index" in cols:
            index = cols["index"]
            bad = np.flatnonzero(index != np.arange(n))
            per_episode(bad, "index", lambda k, r: (
                f"index is not contiguous: global row {r[0]} holds index {index[r[0]]}, expected {r[0]} "
                f"({r.size} of the episode's rows differ)"))
        if "episode_index" in cols:
            col = cols["episode_index"]
            expected = eps.index[row_ep]
            bad = np.flatnonzero(col != expected)
            per_episode(bad, "episode_index", lambda k, r: (
                f"episode_index column holds {sorted(set(col[r].tolist()))[:5]} in {r.size} of its rows, expected {eps.index[k]}"))
        frame = np.arange(n) - eps.start[row_ep]
        if "frame_index" in cols:
            col = cols["frame_index"]
            bad = np.flatnonzero(col != frame)
            per_episode(bad, "frame_index", lambda k, r: (
                f"frame_index is not 0..{eps.length[k] - 1}: row {r[0] - eps.start[k]} holds {col[r[0]]} "
                f"({r.size} rows differ)"))
        if "timestamp" in cols:
            ts = cols["timestamp"].astype(np.float64)
            dev = np.abs(ts - frame / info.fps)
            bad = np.flatnonzero(~(dev <= self.tolerance_s))  # NaN counts as bad
            per_episode(bad, "timestamp", lambda k, r: (
                f"timestamp != frame_index/fps (fps={info.fps}) within {self.tolerance_s} s: frame {r[0] - eps.start[k]} "
                f"has {ts[r[0]]:.6f}, expected {frame[r[0]] / info.fps:.6f} ({r.size} frames off, max {np.nanmax(dev[r]):.6f} s)"))
        if "task_index" in cols and self.tasks is not None:
            col = cols["task_index"]
            n_tasks = len(self.tasks)
            bad = np.flatnonzero((col < 0) | (col >= n_tasks))
            per_episode(bad, "task_index", lambda k, r: (
                f"task_index {sorted(set(col[r].tolist()))[:5]} not in meta/tasks.parquet ({n_tasks} tasks) in {r.size} frames"))
            # The episode's `tasks` list must be the set of tasks its frames carry.
            pairs = np.unique(np.stack([row_ep, col]), axis=1)
            used: dict[int, set[str]] = defaultdict(set)
            for k, t in pairs.T.tolist():
                if 0 <= t < n_tasks:
                    used[k].add(self.tasks[t])
            with_bad_index = set(np.unique(row_ep[bad]).tolist())
            for k in range(n_eps):
                if k not in with_bad_index and set(eps.tasks[k]) != used[k]:
                    self.error(self._episode_file_of(k), int(eps.index[k]),
                               f"tasks {sorted(eps.tasks[k])} but its frames carry tasks {sorted(used[k])}",
                               check="tasks_match")

    # ------------------------------------------------------------------ videos
    def check_video_files(self) -> None:
        eps, info = self.eps, self.info
        assert eps is not None and info is not None
        jobs: list[tuple[str, str, list[int]]] = []
        for key in info.video_keys:
            v = eps.video[key]
            groups: dict[tuple[int, int], list[int]] = defaultdict(list)
            for k, cf in enumerate(zip(v["chunk_index"].tolist(), v["file_index"].tolist())):
                groups[cf].append(k)
            referenced = set()
            for (c, f), positions in sorted(groups.items()):
                rel = info.video_path.format(video_key=key, chunk_index=c, file_index=f)
                referenced.add(rel)
                jobs.append((key, rel, positions))
            for path in sorted((self.root / "videos" / key).glob("*/*.mp4")):
                if self._rel(path) not in referenced:
                    self.warn(path, None, "video file is not referenced by any episode")
        self.report.num_video_files = len(jobs)
        # Demuxing is I/O and C work; a few threads overlap it across files.
        workers = max(1, min(4, os.cpu_count() or 1, len(jobs)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda job: _probe_packets(self.root / job[1]), jobs))
        for (key, rel, positions), probe in zip(jobs, results):
            self._check_video_segments(key, rel, positions, probe)

    def _check_video_segments(self, key: str, rel: str, positions: list[int], probe: "_VideoProbe") -> None:
        eps, info = self.eps, self.info
        assert eps is not None and info is not None
        first_ep = int(eps.index[positions[0]])
        if probe.error is not None:
            missing = probe.error == "missing"
            msg = "video file is missing" if missing else f"unreadable video: {probe.error}"
            self.error(rel, first_ep, f"{msg} (referenced by {_ep_list(eps.index[positions])})")
            return
        feature = info.features[key]
        if len(feature.shape) == 3:
            names = feature.names if isinstance(feature.names, list) else None
            h, w = (feature.shape[1], feature.shape[2]) if names and names[0] == "channels" else feature.shape[:2]
            if (probe.height, probe.width) != (h, w):
                self.error(rel, None, f"resolution {probe.width}x{probe.height} but info.json says {w}x{h}")
        codec = (feature.info or {}).get("video.codec")
        if codec and probe.codec and codec != probe.codec:
            self.warn(rel, None, f"codec {probe.codec} but info.json says {codec}")
        fps = info.fps
        half = 0.5 / fps
        pts = probe.pts
        v = eps.video[key]
        segments = []
        for k in positions:
            ep = int(eps.index[k])
            start, stop = float(v["from_timestamp"][k]), float(v["to_timestamp"][k])
            length = int(eps.length[k])
            if not (math.isfinite(start) and math.isfinite(stop)):
                self.error(rel, ep, f"from/to timestamps {start}, {stop} are not finite", check="video_ts")
                continue
            if start < -half or stop > probe.duration + half or stop <= start:
                self.error(rel, ep, f"segment [{start:.6f}, {stop:.6f}] s is outside the video's duration "
                                    f"{probe.duration:.6f} s", check="video_range")
                continue
            if abs((stop - start) - length / fps) > half:
                self.error(rel, ep, f"segment lasts {stop - start:.6f} s but the episode's {length} frames "
                                    f"last {length / fps:.6f} s", check="video_span")
            lo, hi = np.searchsorted(pts, [start - half, stop - half])
            count = int(hi - lo)
            if count != length:
                self.error(rel, ep, f"video holds {count} frames in [{start:.6f}, {stop:.6f}) s but the "
                                    f"episode has {length}", check="video_count")
            else:
                dev = np.abs(pts[lo:hi] - (start + np.arange(length) / fps))
                worst = float(dev.max()) if dev.size else 0.0
                if worst >= self.tolerance_s:
                    j = int(dev.argmax())
                    self.error(rel, ep, f"frame {j} sits at {pts[lo + j]:.6f} s, {worst:.6f} s away from "
                                        f"from_timestamp + {j}/fps (reader tolerance {self.tolerance_s} s)",
                               check="video_align")
            segments.append((start, stop, ep))
        segments.sort()
        for (a0, a1, ea), (b0, b1, eb) in zip(segments, segments[1:]):
            if b0 < a1 - half:
                self.error(rel, eb, f"segment [{b0:.6f}, {b1:.6f}] overlaps episode {ea}'s [{a0:.6f}, {a1:.6f}]",
                           check="video_overlap")

    # ------------------------------------------------------------------ stats
    def check_stats(self) -> None:
        info = self.info
        assert info is not None
        path = self.root / STATS_PATH
        if not path.is_file():
            self.error(STATS_PATH, None, "missing (LeRobot normalizes with it)")
            return
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            self.error(STATS_PATH, None, f"invalid JSON: {e}")
            return
        if not isinstance(raw, dict):
            self.error(STATS_PATH, None, "not a JSON object")
            return
        for key, f in info.features.items():
            if f.dtype == "string":
                continue
            entry = raw.get(key)
            if not isinstance(entry, dict):
                self.error(STATS_PATH, None, f"no entry for feature {key!r}")
                continue
            expected = _stat_shape(f)
            for stat in (*REQUIRED_STAT_KEYS, *OPTIONAL_STAT_KEYS):
                if stat not in entry:
                    if stat in REQUIRED_STAT_KEYS:
                        self.error(STATS_PATH, None, f"{key}: stat {stat!r} is missing")
                    else:
                        self.warn(STATS_PATH, None, f"{key}: stat {stat!r} is missing", check="stats_quantile")
                    continue
                try:
                    arr = np.asarray(entry[stat], dtype=np.float64)
                except (TypeError, ValueError):
                    self.error(STATS_PATH, None, f"{key}/{stat}: not a numeric array")
                    continue
                want = (1,) if stat == "count" else expected
                if arr.shape != want:
                    self.error(STATS_PATH, None, f"{key}/{stat}: shape {arr.shape}, expected {want}")
                elif not np.isfinite(arr).all():
                    self.error(STATS_PATH, None, f"{key}/{stat}: holds non-finite values")


class _VideoProbe:
    """Packet timestamps (seconds, sorted) and stream facts of one video file."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.pts = np.empty(0)
        self.duration = 0.0
        self.width = 0
        self.height = 0
        self.codec: str | None = None


def _probe_packets(path: Path) -> _VideoProbe:
    """Demux (never decode) every packet of the first video stream; one pass over the file."""
    import av  # local: only video checks need PyAV

    probe = _VideoProbe()
    if not path.is_file():
        probe.error = "missing"
        return probe
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                probe.error = "no video stream"
                return probe
            stream = container.streams.video[0]
            tb = Fraction(stream.time_base)
            ctx = stream.codec_context
            probe.width, probe.height = ctx.width, ctx.height
            probe.codec = ctx.codec.canonical_name if ctx.codec is not None else None
            ticks: list[int] = []
            end = 0
            for packet in container.demux(stream):
                # The flush packet at the end carries no frame.
                if packet.pts is None or packet.size == 0:
                    continue
                ticks.append(packet.pts)
                end = max(end, packet.pts + (packet.duration or 0))
            if stream.duration is not None:
                probe.duration = float(stream.duration * tb)
            elif container.duration is not None:
                probe.duration = container.duration / 1_000_000
            else:
                probe.duration = float(end * tb)
            probe.pts = np.sort(np.asarray(ticks, dtype=np.int64)) * float(tb)
    except av.error.FFmpegError as e:
        # str(e) repeats the path, which the problem line already names.
        probe.error = e.strerror or str(e)
    except (OSError, ValueError) as e:
        probe.error = str(e)
    return probe


def _stat_shape(f: Any) -> tuple[int, ...]:
    """Shape LeRobot stores a feature's stats in: (C, 1, 1) for images, the feature shape otherwise."""
    if f.is_visual:
        names = f.names if isinstance(f.names, list) else None
        if names and "channels" in names:
            channels = f.shape[names.index("channels")]
        else:
            channels = f.shape[-1] if f.shape[-1] in (1, 3, 4) else f.shape[0]
        return (channels, 1, 1)
    return tuple(f.shape)


def _ep_list(indices: np.ndarray, limit: int = 10) -> str:
    values = [int(x) for x in indices]
    head = ", ".join(str(x) for x in values[:limit])
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return f"episode{'s' if len(values) > 1 else ''} {head}{more}"


def validate_dataset(
    root: Path | str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    check_videos: bool = True,
    max_problems_per_check: int | None = 50,
) -> ValidationReport:
    """Check every invariant LeRobot's reader relies on; see the module docstring.

    Raises NotAV3DatasetError when `root` is not a LeRobot v3 dataset; any other fault becomes a
    Problem in the returned report (`report.ok` is False when there is at least one error).
    """
    return _Validator(Path(root), tolerance_s, max_problems_per_check, check_videos).run()
