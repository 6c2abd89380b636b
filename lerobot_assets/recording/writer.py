"""DatasetWriter: records episodes into a LeRobot v3.0 dataset, crash-safe at every moment.

Each `save_episode()` publishes one consistent new version of every file it touches (data parquet,
video files, episodes metadata, tasks, stats, info) through a redo journal (see `commit.py`). So
unlike LeRobot, which keeps a ParquetWriter open (no footer) and buffers episode metadata until
`finalize()`, a killed process leaves a dataset holding exactly the episodes saved so far, and
`DatasetWriter.open()` resumes recording into it.

What is derived from one episode's frames (videos, data rows, statistics) lives in `episode.py`.
This module stays above 500 lines because the writer's state (write positions, pending background
commits) is read and, on a failed commit, rolled back by every step of `save_episode()`; splitting
the staging steps out would spread that state over several objects.
"""

import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.format.atomic import make_temp_dir
from lerobot_assets.format.episodes import episodes_schema
from lerobot_assets.format.features import Feature, data_schema, with_index_features
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    INDEX_FEATURES,
    INFO_PATH,
    STAGING_DIR,
    STATS_PATH,
    TASKS_PATH,
    episodes_path,
    image_hist_path,
    next_chunk_file,
)
from lerobot_assets.format.stats_json import Stats, flatten_stats, read_stats, stats_to_json, write_stats
from lerobot_assets.format.tasks import read_tasks, tasks_table
from lerobot_assets.recording.commit import JOURNAL, Commit, recover
from lerobot_assets.recording.episode import EpisodeBuffer, episode_stats, episode_table, finish_videos, png_bytes
from lerobot_assets.recording.frames import validate_frame
from lerobot_assets.recording.paths import check_templates, data_rel, video_rel
from lerobot_assets.recording.positions import Location, WritePositions
from lerobot_assets.stats.dataset import compute_dataset_stats, running_dataset_stats
from lerobot_assets.stats.image import ImageStatsAccumulator
from lerobot_assets.video.concat import concatenate_videos
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.probe import video_info_block
from lerobot_assets.video.streaming import EpisodeVideo, StreamingVideoEncoder

logger = logging.getLogger(__name__)
MB = 1024 * 1024


@dataclass
class EpisodeSummary:
    """What one save_episode() wrote.

    With `background_save`, the file fields are filled in once the episode is committed;
    `wait()` blocks until then (and re-raises a failure). Otherwise they are final on return.
    """

    episode_index: int
    length: int
    tasks: list[str]
    data_file: str = ""
    video_files: dict[str, str] = field(default_factory=dict)
    dropped_frames: dict[str, int] = field(default_factory=dict)
    _future: Future | None = field(default=None, repr=False, compare=False)

    def wait(self) -> "EpisodeSummary":
        if self._future is not None:
            self._future.result()
        return self

    def done(self) -> bool:
        """Whether the episode's commit has ended (durable, or failed: `wait()` re-raises)."""
        return self._future is None or self._future.done()


class DatasetWriter:
    """Create with `DatasetWriter.create(...)` or resume with `DatasetWriter.open(root)`.

    `background_save=True` commits each saved episode on a worker thread while the next one is
    recorded (commits stay in order), so the encoders never idle at episode boundaries; the
    episode is durable once `EpisodeSummary.wait()`, `flush()` or `finalize()` returns. After a
    failed background commit the writer refuses further work; the dataset on disk holds every
    episode committed before it.
    """

    def __init__(
        self,
        root: Path,
        info: DatasetInfo,
        encoder: VideoEncoderConfig,
        streaming: bool,
        encoder_threads: int | None,
        queue_maxsize: int,
        background_save: bool = False,
        feed_timeout_s: float | None = None,
        lock: IO[str] | None = None,
    ) -> None:
        """Use `create` / `open`. `lock`: the root's writer lock when the caller took it already."""
        # Absolute once, here: every later path is built from it, whatever the caller's cwd becomes.
        self.root = absolute_root(root)
        self.info = info
        # What info.json holds on disk before any episode is saved (create() publishes it with the
        # first one): restored when a commit fails.
        self._info_unpublished = info.model_copy(deep=True)
        self._created_root = False
        self.encoder = encoder
        self.streaming = streaming
        self.encoder_threads = encoder_threads
        self._lock_file: IO[str] | None = lock if lock is not None else lock_root(self.root)
        try:
            self._setup(streaming, encoder, encoder_threads, queue_maxsize, feed_timeout_s, background_save)
        except BaseException:
            self._release_lock()
            raise

    def _setup(
        self,
        streaming: bool,
        encoder: VideoEncoderConfig,
        encoder_threads: int | None,
        queue_maxsize: int,
        feed_timeout_s: float | None,
        background_save: bool,
    ) -> None:
        info = self.info
        self.tasks: list[str] = read_tasks(self.root)
        self._stats: Stats = read_stats(self.root)
        self._load_positions()
        self._stream: StreamingVideoEncoder | None = None
        if streaming and info.video_keys:
            self._stream = StreamingVideoEncoder(
                info.fps,
                encoder,
                queue_maxsize=queue_maxsize,
                threads=encoder_threads,
                feed_timeout_s=feed_timeout_s,
                fill_dropped=True,
            )
        self._episode: EpisodeBuffer | None = None
        self._next_episode = info.total_episodes
        self._next_frame = info.total_frames
        self._assigned_tasks = list(self.tasks)
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="episode-commit") if background_save else None
        self._pending: list[Future] = []
        self._failure: BaseException | None = None
        self._finalized = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(
        cls,
        root: Path | str,
        *,
        fps: int,
        features: Mapping[str, Feature | dict[str, Any]],
        robot_type: str | None = None,
        encoder: VideoEncoderConfig | None = None,
        chunks_size: int = DEFAULT_CHUNK_SIZE,
        data_files_size_in_mb: float = DEFAULT_DATA_FILE_SIZE_IN_MB,
        video_files_size_in_mb: float = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        streaming: bool = True,
        encoder_threads: int | None = None,
        queue_maxsize: int = 60,
        background_save: bool = False,
        feed_timeout_s: float | None = None,
    ) -> "DatasetWriter":
        """A new dataset at root (which must be absent or empty).

        `feed_timeout_s`: None (default) makes add_frame wait while a camera's encoder is behind,
        so no frame is ever dropped; a live capture loop that must not stall sets a timeout, after
        which the frame is dropped: the video repeats the previous frame in its place (so it stays
        aligned with the data rows), and the drop is counted in the EpisodeSummary and logged.
        """
        root = absolute_root(root)
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(f"{root} exists and is not a directory")
        if fps <= 0 or int(fps) != fps:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        if chunks_size < 1:
            raise ValueError(f"chunks_size must be >= 1, got {chunks_size}")
        feats = with_index_features(features)
        info = DatasetInfo(
            fps=int(fps),
            features=feats,
            robot_type=robot_type,
            chunks_size=chunks_size,
            data_files_size_in_mb=data_files_size_in_mb,
            video_files_size_in_mb=video_files_size_in_mb,
        )
        if not info.video_keys:
            info.video_path = None
        # A writer may be recording its first episode here (its files come and go): it is named
        # by the lock, not mistaken for a non-empty directory.
        lock = lock_root(root) if (root / STAGING_DIR / LOCK_NAME).is_file() else None
        if root.exists() and not _holds_only_unpublished(root):
            if lock is not None:
                _unlock(lock)
            raise FileExistsError(f"{root} exists and is not empty; use DatasetWriter.open() to append")
        created = not root.exists()
        root.mkdir(parents=True, exist_ok=True)
        if lock is None:
            lock = lock_root(root)
        try:
            # Under the lock: a killed first commit's journal is finished (then this is a dataset,
            # and create refuses), and its unpublished temp files removed.
            recover(root)
            if not _holds_only_unpublished(root):
                raise FileExistsError(f"{root} holds a dataset now; use DatasetWriter.open() to append")
        except BaseException:
            _unlock(lock)
            raise
        # meta/info.json is not written here but with the first episode, in its commit: until an
        # episode is durable the root holds no half-made dataset (an info.json without any of the
        # files it describes), and finalize() takes back what an unused root holds.
        writer = cls(
            root, info, encoder or VideoEncoderConfig(), streaming, encoder_threads, queue_maxsize,
            background_save, feed_timeout_s, lock,
        )
        writer._created_root = created
        return writer

    @classmethod
    def open(
        cls,
        root: Path | str,
        *,
        encoder: VideoEncoderConfig | None = None,
        streaming: bool = True,
        encoder_threads: int | None = None,
        queue_maxsize: int = 60,
        background_save: bool = False,
        feed_timeout_s: float | None = None,
    ) -> "DatasetWriter":
        """Reopen a dataset (ours or LeRobot's) to append episodes; completes an interrupted commit.

        DatasetLockedError when another writer has it open: the lock is taken before anything is
        recovered, since recovery removes staged files and replays journals, which belong to that
        writer while it runs.
        """
        root = absolute_root(root)
        if not (root / INFO_PATH).is_file() and not (root / JOURNAL).is_file():
            if (root / STAGING_DIR / LOCK_NAME).is_file():
                # A writer recording its first episode has published nothing yet: say so.
                _unlock(lock_root(root))
            DatasetInfo.load(root)  # FileNotFoundError naming the missing info.json; nothing created
        if (root / INFO_PATH).is_file():
            # Before the lock (whose file is the first thing written): templates never change
            # between versions, so a pending journal does not matter here.
            check_templates(DatasetInfo.load(root), root, writing=True)
        lock = lock_root(root)
        try:
            for line in recover(root):
                logger.warning("%s: %s", root, line)
            info = DatasetInfo.load(root)
            check_templates(info, root, writing=True)
            if encoder is None:
                encoder = _encoder_from_info(info)
        except BaseException:
            _unlock(lock)
            raise
        return cls(root, info, encoder, streaming, encoder_threads, queue_maxsize, background_save, feed_timeout_s, lock)

    @classmethod
    def open_or_create(cls, root: Path | str, **kwargs: Any) -> "DatasetWriter":
        root = absolute_root(root)
        # A pending journal may be the first commit, about to publish info.json: open() finishes it.
        if (root / INFO_PATH).is_file() or (root / JOURNAL).is_file():
            names = ("encoder", "streaming", "encoder_threads", "queue_maxsize", "background_save", "feed_timeout_s")
            keep = {k: kwargs[k] for k in names if k in kwargs}
            return cls.open(root, **keep)
        return cls.create(root, **kwargs)

    def _load_positions(self) -> None:
        pos = WritePositions.load(self.root, self.info)
        self._data_loc = pos.data
        self._data_tables: list[pa.Table] | None = None
        self._video_loc = pos.videos
        self._ep_loc, self._ep_rows, self._hist_rows = pos.episodes, pos.episode_rows, pos.hist_rows

    # ------------------------------------------------------------------ recording
    @property
    def num_episodes(self) -> int:
        """Episodes saved so far (committed or, with background_save, being committed)."""
        return self._next_episode

    @property
    def episode_frames(self) -> int:
        return len(self._episode.tasks) if self._episode is not None else 0

    def _check_usable(self) -> None:
        if self._finalized:
            raise RuntimeError(f"{self.root}: writer is finalized; open it again to append")
        if self._failure is not None:
            raise RuntimeError(
                f"{self.root}: a background save failed ({self._failure}); the dataset holds every episode "
                "committed before it; reopen it with DatasetWriter.open() to continue"
            ) from self._failure

    def add_frame(self, frame: dict[str, Any]) -> None:
        self._check_usable()
        task, values = validate_frame(frame, self.info.features)
        ep = self._episode if self._episode is not None else self._start_episode()
        for key, value in values.items():
            feature = self.info.features[key]
            if feature.dtype == "video" and self._stream is not None:
                self._stream.feed_frame(key, value)
            elif feature.dtype == "video":
                # Encode-after-episode path: keep frames, encode when the episode is saved.
                ep.buffer[key].append(np.array(value, copy=True))
            elif feature.dtype == "image":
                ep.visual_acc[key].update(value)
                ep.buffer[key].append(png_bytes(value))
            else:
                ep.buffer[key].append(value)
        ep.tasks.append(task)

    def _start_episode(self) -> EpisodeBuffer:
        ep = EpisodeBuffer(
            directory=make_temp_dir(self.root / STAGING_DIR, "episode-"),
            buffer={k: [] for k in self.info.features if k not in INDEX_FEATURES},
            visual_acc={k: ImageStatsAccumulator() for k in self.info.camera_keys},
        )
        if self._stream is not None:
            self._stream.start_episode(self.info.video_keys, ep.directory)
        self._episode = ep
        return ep

    def clear_episode_buffer(self) -> None:
        """Discard the episode being recorded; nothing on disk changes."""
        if self._stream is not None:
            self._stream.cancel_episode()
        if self._episode is not None:
            self._episode.discard()
        self._episode = None

    def save_episode(self) -> EpisodeSummary:
        self._check_usable()
        ep = self._episode
        if ep is None or not ep.tasks:
            raise ValueError("save_episode() called with no frames; add_frame() first")
        ep.index, ep.start = self._next_episode, self._next_frame
        for task in dict.fromkeys(ep.tasks):
            if task not in self._assigned_tasks:
                self._assigned_tasks.append(task)
        if self._stream is not None:
            ep.video = self._stream.end_episode()
        self._episode = None
        self._next_episode += 1
        self._next_frame += len(ep.tasks)
        summary = EpisodeSummary(ep.index, len(ep.tasks), list(dict.fromkeys(ep.tasks)))
        if self._committer is None:
            self._commit(ep, summary)
        else:
            summary._future = self._committer.submit(self._commit_in_background, ep, summary)
            self._pending.append(summary._future)
        return summary

    def flush(self) -> None:
        """Wait until every saved episode is committed; re-raises a background failure."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def _commit_in_background(self, ep: EpisodeBuffer, summary: EpisodeSummary) -> None:
        if self._failure is not None:
            ep.discard()
            raise RuntimeError(f"episode {ep.index} was not saved: an earlier episode failed") from self._failure
        try:
            self._commit(ep, summary)
        except BaseException as e:
            self._failure = e
            raise

    def _commit(self, ep: EpisodeBuffer, summary: EpisodeSummary) -> None:
        """Publish one episode; on failure the in-memory state returns to what is on disk."""
        n = len(ep.tasks)
        commit = Commit(self.root)
        try:
            videos = finish_videos(ep, self.info, self.encoder, self.encoder_threads)
            ep_tasks = summary.tasks
            new_tasks = [t for t in ep_tasks if t not in self.tasks]
            all_tasks = self.tasks + new_tasks
            task_ids = {t: i for i, t in enumerate(all_tasks)}
            index_values: dict[str, np.ndarray] = {
                "timestamp": (np.arange(n, dtype=np.float64) / self.info.fps).astype(np.float32),
                "frame_index": np.arange(n, dtype=np.int64),
                "episode_index": np.full(n, ep.index, dtype=np.int64),
                "index": np.arange(ep.start, ep.start + n, dtype=np.int64),
                "task_index": np.array([task_ids[t] for t in ep.tasks], dtype=np.int64),
            }
            table = episode_table(self.info.features, ep, index_values)
            ep_stats = episode_stats(self.info.features, ep, index_values, videos)
            row: dict[str, Any] = {
                "episode_index": ep.index,
                "tasks": ep_tasks,
                "length": n,
                "dataset_from_index": ep.start,
                "dataset_to_index": ep.start + n,
            }
            video_locs = self._stage_videos(commit, videos, n, row)
            data_loc, data_tables = self._stage_data(commit, table, n, row)
            if new_tasks:
                commit.stage_parquet(self.root / TASKS_PATH, tasks_table(all_tasks))
            hists = {k: v.histogram for k, v in videos.items() if v.histogram is not None}
            hists |= {k: a.hist for k, a in ep.visual_acc.items() if k not in videos and a.hist is not None}
            meta_state = self._stage_episode_row(commit, row, ep_stats, hists)
            self.info.total_episodes = ep.index + 1
            self.info.total_frames = ep.start + n
            self.info.total_tasks = len(all_tasks)
            self.info.splits = {"train": f"0:{ep.index + 1}"}
            stats = running_dataset_stats(self._stats, ep_stats)
            commit.stage_json(self.root / STATS_PATH, stats_to_json(stats))
            commit.stage_json(self.root / "meta/info.json", self.info.dump())
            commit.publish()
        except BaseException as e:
            target = commit.target_of(e.filename) if isinstance(e, OSError) else None
            commit.abort()
            ep.discard()
            published = (self.root / INFO_PATH).is_file()
            self.info = DatasetInfo.load(self.root) if published else self._info_unpublished.model_copy(deep=True)
            self._load_positions()
            self._next_episode, self._next_frame = self.info.total_episodes, self.info.total_frames
            self._assigned_tasks = list(self.tasks)
            if target is not None and isinstance(e, OSError):
                # Name the dataset's file (the temp is gone): "<file>: No space left on device".
                raise type(e)(e.errno, e.strerror, str(target)) from e
            raise
        ep.discard()
        self.tasks = all_tasks
        self._stats = stats
        self._video_loc.update(video_locs)
        self._data_loc, self._data_tables = data_loc, data_tables
        self._ep_loc, self._ep_rows, self._hist_rows = meta_state
        summary.data_file = data_rel(self.info, data_loc.chunk, data_loc.file)
        summary.video_files = {k: video_rel(self.info, k, loc.chunk, loc.file) for k, (loc, _) in video_locs.items()}
        summary.dropped_frames = {k: v.dropped for k, v in videos.items()}

    # ------------------------------------------------------------------ staging an episode's files
    def _stage_videos(
        self, commit: Commit, videos: dict[str, EpisodeVideo], n: int, row: dict[str, Any]
    ) -> dict[str, tuple[Location, float]]:
        locs = {}
        duration = n / self.info.fps
        limit = self.info.video_files_size_in_mb * MB
        for key in self.info.video_keys:
            ep_path = videos[key].path
            current = self._video_loc[key]
            if current is None:
                loc, start = Location(0, 0), 0.0
            else:
                loc, start = current
                cur_file = self.root / video_rel(self.info, key, loc.chunk, loc.file)
                if cur_file.stat().st_size + ep_path.stat().st_size >= limit:
                    loc, start = Location(*next_chunk_file(loc.chunk, loc.file, self.info.chunks_size)), 0.0
            final = self.root / video_rel(self.info, key, loc.chunk, loc.file)
            tmp = commit.stage(final, ".mp4")
            if start == 0.0:
                os.replace(ep_path, tmp)
            else:
                concatenate_videos([final, ep_path], tmp, check=True)
            feature = self.info.features[key]
            if feature.info is None:
                feature.info = video_info_block(tmp, self.encoder)
            row[f"videos/{key}/chunk_index"] = loc.chunk
            row[f"videos/{key}/file_index"] = loc.file
            row[f"videos/{key}/from_timestamp"] = start
            row[f"videos/{key}/to_timestamp"] = start + duration
            locs[key] = (loc, start + duration)
        return locs

    def _stage_data(
        self, commit: Commit, table: pa.Table, n: int, row: dict[str, Any]
    ) -> tuple[Location, list[pa.Table]]:
        loc = self._data_loc
        parts: list[pa.Table] = []
        if loc is None:
            loc = Location(0, 0)
        else:
            cur = self.root / data_rel(self.info, loc.chunk, loc.file)
            size = cur.stat().st_size
            frames_in_file = sum(t.num_rows for t in self._current_data_tables())
            per_frame = size / frames_in_file if frames_in_file else 0.0
            if size + per_frame * n >= self.info.data_files_size_in_mb * MB:
                loc = Location(*next_chunk_file(loc.chunk, loc.file, self.info.chunks_size))
            else:
                parts = list(self._current_data_tables())
        final = self.root / data_rel(self.info, loc.chunk, loc.file)
        # Rewriting the current file with the new row group appended keeps every published
        # version a complete parquet file (LeRobot's open writer has no footer until finalize).
        commit.stage_parquet(final, parts + [table])
        row["data/chunk_index"] = loc.chunk
        row["data/file_index"] = loc.file
        return loc, parts + [table]

    def _current_data_tables(self) -> list[pa.Table]:
        if self._data_tables is None:
            assert self._data_loc is not None
            pf = pq.ParquetFile(self.root / data_rel(self.info, self._data_loc.chunk, self._data_loc.file))
            schema = data_schema(self.info.features)
            self._data_tables = [pf.read_row_group(i).cast(schema) for i in range(pf.num_row_groups)]
        return self._data_tables

    def _stage_episode_row(
        self, commit: Commit, row: dict[str, Any], ep_stats: Stats, hists: dict[str, np.ndarray]
    ) -> tuple[Location, list[dict[str, Any]], list[dict[str, Any]]]:
        row.update(flatten_stats(ep_stats))
        loc, rows, hist_rows = self._ep_loc, list(self._ep_rows), list(self._hist_rows)
        if loc is None:
            loc = Location(0, 0)
        else:
            cur = self.root / episodes_path(loc.chunk, loc.file)
            if cur.stat().st_size >= self.info.data_files_size_in_mb * MB:
                loc, rows, hist_rows = Location(*next_chunk_file(loc.chunk, loc.file, self.info.chunks_size)), [], []
        row["meta/episodes/chunk_index"] = loc.chunk
        row["meta/episodes/file_index"] = loc.file
        rows.append(row)
        schema = episodes_schema(self.info.features)
        commit.stage_parquet(
            self.root / episodes_path(loc.chunk, loc.file),
            pa.Table.from_pylist([{n: r[n] for n in schema.names} for r in rows], schema=schema),
        )
        if hists:
            hist_rows.append({"episode_index": row["episode_index"], **{k: h.reshape(-1).tolist() for k, h in hists.items()}})
            cols = ["episode_index", *self.info.camera_keys]
            hschema = pa.schema([pa.field("episode_index", pa.int64())] + [pa.field(k, pa.list_(pa.int64())) for k in cols[1:]])
            commit.stage_parquet(
                self.root / image_hist_path(loc.chunk, loc.file),
                pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in hist_rows], schema=hschema),
            )
        return loc, rows, hist_rows

    # ------------------------------------------------------------------ finishing
    def finalize(self) -> Stats:
        """Write exact dataset statistics and release the encoder; idempotent."""
        if self._finalized:
            return self._stats
        if self.episode_frames:
            logger.warning("%s: finalize() discards an unsaved episode of %d frames", self.root, self.episode_frames)
        self.clear_episode_buffer()
        try:
            self.flush()
            if self.info.total_episodes:
                self._stats = compute_dataset_stats(self.root)
                write_stats(self.root, self._stats)
        finally:
            if self._committer is not None:
                self._committer.shutdown(wait=True)
            if self._stream is not None:
                self._stream.close()
            self._finalized = True
            self._take_back_if_unpublished()
            self._release_lock()
        return self._stats

    def _take_back_if_unpublished(self) -> None:
        """No episode was ever published: remove what this writer made (its lock file, the empty
        directories an aborted commit left, and the root if it created it), so a failed or empty
        first recording leaves no half-made root. Runs holding the lock (see lock_root)."""
        if (self.root / INFO_PATH).exists() or (self.root / JOURNAL).exists():
            return
        (self.root / STAGING_DIR / LOCK_NAME).unlink(missing_ok=True)
        for top in (STAGING_DIR, *_SCRATCH_TOPS):
            for dirpath, _dirs, _files in sorted(os.walk(self.root / top), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):  # not empty: something else is in there, keep it
                    os.rmdir(dirpath)
        if self._created_root:
            with contextlib.suppress(OSError):
                self.root.rmdir()

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            _unlock(self._lock_file)
            self._lock_file = None

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.clear_episode_buffer()
        self.finalize()


class DatasetLockedError(RuntimeError):
    """Another DatasetWriter (in this or another process) has the dataset open."""


LOCK_NAME = "writer.lock"
# Where an aborted first commit can leave empty directories (temp files are staged beside their
# targets): the layout's top directories.
_SCRATCH_TOPS = ("meta", "data", "videos")


def absolute_root(root: Path | str) -> Path:
    """`root` made absolute against the current directory, once, where a user's path comes in."""
    return Path(os.path.abspath(os.fspath(root)))


def _holds_only_unpublished(root: Path) -> bool:
    """Whether `root` holds nothing but what a writer that never published an episode leaves:
    `.staging/`, empty directories and unpublished temp files (`.<name>.<random>.tmp*`)."""
    for entry in root.iterdir():
        if entry.name == STAGING_DIR:
            continue
        if entry.is_symlink() or not entry.is_dir():
            return False
        for p in entry.rglob("*"):
            if p.is_symlink() or not (p.is_dir() or (p.is_file() and p.name.startswith(".") and ".tmp" in p.name)):
                return False
    return True


def lock_root(root: Path) -> IO[str]:
    """Take `root`'s writer lock (`.staging/writer.lock`, created with its directory); raises
    DatasetLockedError naming the root when another writer holds it. Call before touching anything
    a running writer owns (its staged files, journal, episode scratch)."""
    staging = root / STAGING_DIR
    path = staging / LOCK_NAME
    while True:
        staging.mkdir(parents=True, exist_ok=True)
        # "a": opening must not truncate or recreate the file another writer holds.
        f = open(path, "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise DatasetLockedError(
                f"{root}: another DatasetWriter is writing this dataset (it holds {path}); wait for it to finish"
            ) from None
        # A writer that published nothing removes its lock file before unlocking
        # (_take_back_if_unpublished): the file locked here may be that removed one.
        try:
            current = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        _unlock(f)
    # Leftover episode scratch dirs of a killed writer hold no committed data.
    for d in staging.glob("episode-*"):
        shutil.rmtree(d, ignore_errors=True)
    return f


def _unlock(lock: IO[str]) -> None:
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()


def _encoder_from_info(info: DatasetInfo) -> VideoEncoderConfig:
    """The encoder config recorded in an existing dataset's video info block (LeRobot's keys)."""
    for key in info.video_keys:
        block = info.features[key].info or {}
        if "video.codec" in block:
            return VideoEncoderConfig.from_info_block(block)
    return VideoEncoderConfig()
