"""Merge v3 datasets into one by stream copy (no re-encode), appending when only new sources came.

The output records which sources it holds (name + content fingerprint, in order) in
`meta/lerobot_assets_sources.json`. When the new source list starts with exactly those, only the
remaining sources are appended, each in one journaled commit. Otherwise the output is rebuilt in a
temp directory and swapped in, so a failed merge never damages the existing dataset.

Episode indices, global frame indices and task indices are renumbered; video segments move with
their files (concatenated by stream copy, timestamps shifted by the output file's duration).
"""

import fcntl
import glob
import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lerobot_assets.format.atomic import make_temp_dir, recover_replace, replace_dir
from lerobot_assets.format.episodes import episodes_schema, read_episodes
from lerobot_assets.format.features import data_schema
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import (
    DATA_PATH,
    INDEX_FEATURES,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    episodes_path,
    image_hist_path,
    next_chunk_file,
)
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.format.stats_json import flatten_stats, read_stats, stats_to_json
from lerobot_assets.format.tasks import read_tasks, tasks_table
from lerobot_assets.format.templates import dataset_files
from lerobot_assets.recording.commit import Commit, recover
from lerobot_assets.recording.paths import check_templates, data_rel, video_rel
from lerobot_assets.recording.positions import WritePositions
from lerobot_assets.recording.writer import absolute_root
from lerobot_assets.stats.dataset import column_to_numpy, compute_dataset_stats, read_image_histograms
from lerobot_assets.stats.numeric import numeric_stats
from lerobot_assets.video.concat import concatenate_videos
from lerobot_assets.video.probe import video_duration_s

logger = logging.getLogger(__name__)
SOURCES_PATH = "meta/lerobot_assets_sources.json"
MB = 1024 * 1024
Progress = Callable[[str], None]


@dataclass
class MergeResult:
    mode: Literal["append", "rebuild", "unchanged"]
    episodes: int
    frames: int
    sources: list[str]
    sessions_added: list[str] = field(default_factory=list)


def dataset_fingerprint(root: Path) -> str:
    """Content hash of the metadata plus the sizes of the data and video files, which are listed
    from the dataset's templates and episodes (`format.templates.dataset_files`), so files named
    by a custom `data_path` count and stray files do not.

    Never raises for a dataset whose metadata cannot name its files (a failed validation records
    this fingerprint): the metadata bytes are hashed either way, and the listing's error stands in
    for the sizes.
    """
    root = Path(root)
    h = hashlib.sha256()
    for path in sorted([root / INFO_PATH, root / TASKS_PATH, *root.glob("meta/episodes/*/*.parquet")]):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    try:
        info = DatasetInfo.load(root)
        columns = ["episode_index", "data/chunk_index", "data/file_index"]
        columns += [f"videos/{k}/{c}" for k in info.video_keys for c in ("chunk_index", "file_index")]
        episodes = read_episodes(root, columns)
        rows = episodes.to_pydict() if episodes.num_rows else {c: [] for c in columns}
        files = [f.rel for f in dataset_files(info.data_path, info.video_path, info.video_keys, rows)]
    except (OSError, ValueError) as e:  # TemplateError is a ValueError
        h.update(f"unlisted: {e}".encode())
        return h.hexdigest()[:32]
    for rel in files:
        path = root / rel
        size = path.stat().st_size if path.is_file() else -1
        h.update(f"{rel}:{size}".encode())
    return h.hexdigest()[:32]


def _read_sources(output: Path) -> list[dict[str, Any]] | None:
    path = output / SOURCES_PATH
    if not (output / INFO_PATH).is_file() or not path.is_file():
        return None
    return json.loads(path.read_text())


def _check_compatible(reference: DatasetInfo, info: DatasetInfo, name: str) -> None:
    if info.fps != reference.fps:
        raise ValueError(f"source {name!r}: fps {info.fps} differs from {reference.fps}")
    # Shapes are lists in info.json: tuples, so the pairs can be compared as sets below.
    ref = {k: (f.dtype, tuple(f.shape)) for k, f in reference.features.items()}
    got = {k: (f.dtype, tuple(f.shape)) for k, f in info.features.items()}
    if ref != got:
        diff = sorted(set(ref.items()) ^ set(got.items()))
        raise ValueError(f"source {name!r}: features differ from the first source: {diff}")


def merge_datasets(
    sources: Sequence[tuple[str, Path]],
    output: Path,
    *,
    progress: Progress | None = None,
    force: bool = False,
) -> MergeResult:
    """Merge `sources` ((name, root) pairs, in order) into `output` (see module docstring).

    `force` rebuilds even when the output already holds exactly these sources. Concurrent merges
    into the same output wait for each other (a lock file beside it).
    """
    # Absolute once, here: the sources' and output's paths are joined and compared from now on.
    output = absolute_root(output)
    sources = [(name, absolute_root(root)) for name, root in sources]
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output.parent / f".{output.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # A merge killed while swapping its rebuild in is finished before the output is looked at;
        # then any rebuild directory left is a killed merge's scratch (merges of this output hold
        # the lock), never part of the dataset.
        recover_replace(output)
        for stale in output.parent.glob(f"{glob.escape(_rebuild_prefix(output))}*"):
            shutil.rmtree(stale)
        # An append killed mid-commit is rolled forward before its provenance is read: read first,
        # the old sources list would have the rolled-forward source appended a second time.
        if output.is_dir():
            recover(output)
        return _merge_locked(sources, output, progress, force)


def _rebuild_prefix(output: Path) -> str:
    return f".{output.name}.rebuild-"


def _merge_locked(
    sources: Sequence[tuple[str, Path]], output: Path, progress: Progress | None, force: bool
) -> MergeResult:
    if not sources:
        raise ValueError("no datasets to merge")
    names = [n for n, _ in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate source names: {sorted(n for n in names if names.count(n) > 1)}")
    say = progress or (lambda msg: logger.info(msg))
    fingerprints = [dataset_fingerprint(root) for _, root in sources]
    wanted = [{"name": n, "fingerprint": fp} for n, fp in zip(names, fingerprints)]
    infos = [DatasetInfo.load(root) for _, root in sources]
    for (name, root), info in zip(sources, infos):
        _check_compatible(infos[0], info, name)
        check_templates(info, root, writing=False)  # sources are read through their own templates

    recorded = None if force else _read_sources(output)
    if recorded is not None and not _totals_agree(output, recorded):
        logger.warning("%s: totals differ from its recorded sources; rebuilding", output)
        recorded = None
    if recorded is not None:
        done = [{"name": r["name"], "fingerprint": r["fingerprint"]} for r in recorded]
        if done == wanted:
            info = DatasetInfo.load(output)
            if not _stats_cover(output, info):
                # Killed after the last append's commit, before its final stats: finish that.
                _Output.open(output).write_final_stats()
            return MergeResult("unchanged", info.total_episodes, info.total_frames, names)
        if wanted[: len(done)] == done:
            out = _Output.open(output)
            _check_compatible(out.info, infos[0], names[0])
            added = []
            for (name, root), fp in list(zip(sources, fingerprints))[len(done):]:
                say(f"appending {name}")
                out.append_dataset(name, Path(root), fp)
                added.append(name)
            out.write_final_stats()
            return MergeResult("append", out.info.total_episodes, out.info.total_frames, names, added)

    # Rebuild beside the output, then swap: the old dataset stays intact until the new one is whole.
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(output.parent, _rebuild_prefix(output))
    try:
        out = _Output.create(tmp, infos[0])
        for (name, root), fp in zip(sources, fingerprints):
            say(f"merging {name}")
            out.append_dataset(name, Path(root), fp)
        out.write_final_stats()
        replace_dir(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return MergeResult("rebuild", out.info.total_episodes, out.info.total_frames, names, names)


def _stats_cover(output: Path, info: DatasetInfo) -> bool:
    """Whether meta/stats.json counts every frame (its `index` count is total_frames): the final
    stats are written in their own commit after the appends, so a kill between leaves them behind."""
    count = read_stats(output).get("index", {}).get("count")
    return int(np.asarray(count).ravel()[0]) == info.total_frames if count is not None else info.total_frames == 0


def _totals_agree(output: Path, recorded: list[dict[str, Any]]) -> bool:
    """The output still holds what its provenance says (guards against a hand-edited output)."""
    try:
        info = DatasetInfo.load(output)
    except (FileNotFoundError, ValueError):
        return False
    return (info.total_episodes, info.total_frames) == (
        sum(r.get("episodes", 0) for r in recorded),
        sum(r.get("frames", 0) for r in recorded),
    )


class _Output:
    """The merged dataset being appended to, with its current write positions."""

    def __init__(self, root: Path, info: DatasetInfo, sources: list[dict[str, Any]]) -> None:
        self.root = root
        self.info = info
        self.sources = sources
        self.tasks = read_tasks(root)
        pos = WritePositions.load(root, info)
        self.data_loc: tuple[int, int] | None = pos.data
        # The merge measures each file's duration itself, so only the file's location is kept.
        self.video_loc: dict[str, tuple[int, int] | None] = {k: v[0] if v else None for k, v in pos.videos.items()}
        self.ep_loc: tuple[int, int] | None = pos.episodes
        self.ep_rows, self.hist_rows = pos.episode_rows, pos.hist_rows

    @classmethod
    def create(cls, root: Path, like: DatasetInfo) -> "_Output":
        info = like.model_copy(deep=True)
        info.total_episodes = info.total_frames = info.total_tasks = 0
        info.splits = {}
        # A new dataset in our layout, whatever the first source's templates were.
        info.data_path = DATA_PATH
        info.video_path = VIDEO_PATH if info.video_keys else None
        info.save(root)
        return cls(root, info, [])

    @classmethod
    def open(cls, root: Path) -> "_Output":
        info = DatasetInfo.load(root)
        check_templates(info, root, writing=True)
        return cls(root, info, _read_sources(root) or [])

    # -- one source dataset -------------------------------------------------------------
    def append_dataset(self, name: str, src_root: Path, fingerprint: str) -> None:
        src = DatasetMeta(src_root)
        if src.num_episodes == 0:
            self.sources.append({"name": name, "fingerprint": fingerprint, "episodes": 0, "frames": 0})
            self._commit_sources_only()
            return
        new_tasks = [t for t in src.tasks if t not in self.tasks]
        all_tasks = self.tasks + new_tasks
        task_map = np.array([all_tasks.index(t) for t in src.tasks], dtype=np.int64)
        ep_offset, frame_offset = self.info.total_episodes, self.info.total_frames
        src_rows = src.episodes.to_pylist()
        src_hists = read_image_histograms(src_root, src.info.camera_keys)
        commit = Commit(self.root)
        try:
            rows = {r["episode_index"]: self._base_row(r, ep_offset, frame_offset) for r in src_rows}
            self._stage_videos(commit, src, src_rows, rows)
            index_stats = self._stage_data(commit, src, src_rows, rows, task_map, ep_offset, frame_offset)
            for r in src_rows:
                row = rows[r["episode_index"]]
                row.update({k: v for k, v in r.items() if k.startswith("stats/")})
                row.update(flatten_stats(index_stats[r["episode_index"]]))
            self._stage_episode_rows(commit, [rows[r["episode_index"]] for r in src_rows], src_hists, ep_offset)
            if new_tasks:
                commit.stage_parquet(self.root / TASKS_PATH, tasks_table(all_tasks))
            self.info.total_episodes += src.num_episodes
            self.info.total_frames += src.info.total_frames
            self.info.total_tasks = len(all_tasks)
            self.info.splits = {"train": f"0:{self.info.total_episodes}"}
            for key in self.info.video_keys:
                if self.info.features[key].info is None:
                    self.info.features[key].info = src.info.features[key].info
            self.sources.append(
                {"name": name, "fingerprint": fingerprint, "episodes": src.num_episodes, "frames": src.info.total_frames}
            )
            commit.stage_json(self.root / SOURCES_PATH, self.sources)
            commit.stage_json(self.root / INFO_PATH, self.info.dump())
            commit.publish()
        except BaseException:
            commit.abort()
            raise
        self.tasks = all_tasks

    def _commit_sources_only(self) -> None:
        commit = Commit(self.root)
        commit.stage_json(self.root / SOURCES_PATH, self.sources)
        commit.publish()

    @staticmethod
    def _base_row(r: dict[str, Any], ep_offset: int, frame_offset: int) -> dict[str, Any]:
        return {
            "episode_index": r["episode_index"] + ep_offset,
            "tasks": r["tasks"],
            "length": r["length"],
            "dataset_from_index": r["dataset_from_index"] + frame_offset,
            "dataset_to_index": r["dataset_to_index"] + frame_offset,
        }

    def _stage_videos(self, commit: Commit, src: DatasetMeta, src_rows: list[dict], rows: dict[int, dict]) -> None:
        limit = self.info.video_files_size_in_mb * MB
        src_root = Path(src.root)
        for key in self.info.video_keys:
            files: dict[tuple[int, int], list[dict]] = {}
            for r in src_rows:
                files.setdefault((r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]), []).append(r)
            for (c, f), eps in files.items():
                src_file = src_root / video_rel(src.info, key, c, f)  # sources are local roots
                loc = self.video_loc[key]
                offset = 0.0
                if loc is not None:
                    current = commit.latest(self.root / video_rel(self.info, key, *loc))
                    if current.stat().st_size + src_file.stat().st_size >= limit:
                        loc = next_chunk_file(*loc, self.info.chunks_size)
                    else:
                        offset = video_duration_s(current)
                else:
                    loc = (0, 0)
                final = self.root / video_rel(self.info, key, *loc)
                previous = commit.latest(final)
                tmp = commit.stage(final, ".mp4")
                if offset == 0.0:
                    shutil.copyfile(src_file, tmp)
                else:
                    concatenate_videos([previous, src_file], tmp, check=True)
                for r in eps:
                    row = rows[r["episode_index"]]
                    row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"] = loc
                    row[f"videos/{key}/from_timestamp"] = r[f"videos/{key}/from_timestamp"] + offset
                    row[f"videos/{key}/to_timestamp"] = r[f"videos/{key}/to_timestamp"] + offset
                self.video_loc[key] = loc

    def _stage_data(
        self,
        commit: Commit,
        src: DatasetMeta,
        src_rows: list[dict],
        rows: dict[int, dict],
        task_map: np.ndarray,
        ep_offset: int,
        frame_offset: int,
    ) -> dict[int, dict[str, dict[str, np.ndarray]]]:
        schema = data_schema(self.info.features)
        limit = self.info.data_files_size_in_mb * MB
        src_root = Path(src.root)
        index_stats: dict[int, dict[str, dict[str, np.ndarray]]] = {}
        files: dict[tuple[int, int], list[dict]] = {}
        for r in src_rows:
            files.setdefault((r["data/chunk_index"], r["data/file_index"]), []).append(r)
        for (c, f), eps in files.items():
            table = pq.read_table(src_root / data_rel(src.info, c, f)).select(schema.names)
            tables = []
            for r in eps:
                part = table.filter(pc.equal(table["episode_index"], r["episode_index"]))
                part = _renumber(part, ep_offset, frame_offset, task_map).cast(schema)
                index_stats[r["episode_index"]] = {
                    k: numeric_stats(column_to_numpy(part.column(k))) for k in INDEX_FEATURES
                }
                tables.append(part)
            size = (src_root / data_rel(src.info, c, f)).stat().st_size  # sources are local roots
            loc, existing = self.data_loc, []
            if loc is not None:
                current = commit.latest(self.root / data_rel(self.info, *loc))
                if current.stat().st_size + size >= limit:
                    loc = next_chunk_file(*loc, self.info.chunks_size)
                else:
                    pf = pq.ParquetFile(current)
                    existing = [pf.read_row_group(i).cast(schema) for i in range(pf.num_row_groups)]
            else:
                loc = (0, 0)
            commit.stage_parquet(self.root / data_rel(self.info, *loc), existing + tables)
            for r in eps:
                rows[r["episode_index"]]["data/chunk_index"], rows[r["episode_index"]]["data/file_index"] = loc
            self.data_loc = loc
        return index_stats

    def _stage_episode_rows(
        self, commit: Commit, new_rows: list[dict], src_hists: dict[str, dict[int, np.ndarray]], ep_offset: int
    ) -> None:
        schema = episodes_schema(self.info.features)
        limit = self.info.data_files_size_in_mb * MB
        loc, rows, hist_rows = self.ep_loc, self.ep_rows, self.hist_rows
        if loc is None:
            loc = (0, 0)
        elif (self.root / episodes_path(*loc)).stat().st_size >= limit:
            loc, rows, hist_rows = next_chunk_file(*loc, self.info.chunks_size), [], []
        cams = self.info.camera_keys
        for row in new_rows:
            row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = loc
            rows.append({n: row.get(n) for n in schema.names})
            src_ep = row["episode_index"] - ep_offset
            hists = {k: src_hists[k][src_ep].reshape(-1).tolist() for k in cams if src_ep in src_hists.get(k, {})}
            if hists:
                hist_rows.append({"episode_index": row["episode_index"], **hists})
        commit.stage_parquet(self.root / episodes_path(*loc), pa.Table.from_pylist(rows, schema=schema))
        if hist_rows:
            hschema = pa.schema([pa.field("episode_index", pa.int64())] + [pa.field(k, pa.list_(pa.int64())) for k in cams])
            commit.stage_parquet(
                self.root / image_hist_path(*loc),
                pa.Table.from_pylist([{c: r.get(c) for c in hschema.names} for r in hist_rows], schema=hschema),
            )
        self.ep_loc, self.ep_rows, self.hist_rows = loc, rows, hist_rows

    def write_final_stats(self) -> None:
        commit = Commit(self.root)
        commit.stage_json(self.root / STATS_PATH, stats_to_json(compute_dataset_stats(self.root)))
        commit.publish()


def _renumber(part: pa.Table, ep_offset: int, frame_offset: int, task_map: np.ndarray) -> pa.Table:
    def set_col(t: pa.Table, name: str, values: np.ndarray) -> pa.Table:
        return t.set_column(t.schema.get_field_index(name), name, pa.array(values, pa.int64()))

    part = set_col(part, "episode_index", part["episode_index"].to_numpy() + ep_offset)
    part = set_col(part, "index", part["index"].to_numpy() + frame_offset)
    return set_col(part, "task_index", task_map[part["task_index"].to_numpy()])
