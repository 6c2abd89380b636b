"""Merge v3 datasets into one by stream copy (no re-encode), appending when only new sources came.

The output records which sources it holds (name + content fingerprint, in order) in
`meta/lerobot_assets_sources.json`. When the new source list starts with exactly those, only the
remaining sources are appended, each in one journaled commit. Otherwise the output is rebuilt in a
temp directory and swapped in, so a failed merge never damages the existing dataset.

Episode indices, global frame indices and task indices are renumbered; video segments move with
their files (concatenated by stream copy, timestamps shifted by the output file's duration).

Inputs must agree on fps, robot_type and every feature's dtype, shape and names; the first
difference is one ValueError naming both datasets, raised before anything is written. A camera
whose files cannot be joined by stream copy (codec, pix_fmt or codec parameters differ) starts a
new output file instead, and its info.json block then says what holds for every file: a field
that differs between the merged files becomes null (`video.extra_options` becomes {}), as in
LeRobot's `aggregate_datasets`. With `reencode`, a source camera not already in the target
encoding is re-encoded (into scratch space beside the output, never in the input), one segment
per episode, so every episode starts on a keyframe and every file holds one encoding.

`merge_to_new` is the edit tools' form (`lerobot-assets edit merge`): a new output root, built
beside its final path and swapped in (`tools.output.new_dataset`).
"""

import fcntl
import glob
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from av.video.frame import PictureType

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
from lerobot_assets.format.meta import DatasetMeta, is_remote_root
from lerobot_assets.format.stats_json import flatten_stats, read_stats, stats_to_json
from lerobot_assets.format.tasks import read_tasks, tasks_table
from lerobot_assets.format.templates import dataset_files
from lerobot_assets.recording.commit import Commit, recover
from lerobot_assets.recording.paths import check_templates, data_rel, video_rel
from lerobot_assets.recording.positions import WritePositions
from lerobot_assets.recording.writer import absolute_root
from lerobot_assets.stats.dataset import column_to_numpy, compute_dataset_stats, read_image_histograms
from lerobot_assets.stats.numeric import numeric_stats
from lerobot_assets.tools.output import EditResult, Stopwatch, local_input, new_dataset, tree_bytes
from lerobot_assets.tools.output import Progress as EditProgress
from lerobot_assets.video.concat import check_compatible, concatenate_videos
from lerobot_assets.video.config import STREAM_CODEC_ENCODERS, VideoEncoderConfig
from lerobot_assets.video.encode import Mp4FrameWriter
from lerobot_assets.video.probe import video_duration_s, video_info_block, video_stream_info

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
    notes: list[str] = field(default_factory=list)  # e.g. cameras whose encodings differ


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


def source_label(name: str, root: Path | str) -> str:
    """How errors name a source: `'name' (/its/root)`."""
    return f"{name!r} ({root})"


def incompatibility(reference: DatasetInfo, info: DatasetInfo) -> tuple[str, str] | None:
    """The first way `info` differs from `reference`, as the text before and after the reference's
    name in the error (see `check_compatible_sources`), or None when they can be merged.

    Compared in this order: fps, robot_type, the features in the reference's order (missing,
    dtype, shape, names), then features only `info` has. Video encoding is not compared: cameras
    whose encodings differ go to separate files (LeRobot refuses codec or pix_fmt differences)."""
    if info.fps != reference.fps:
        return f"fps {info.fps} differs from {reference.fps} in", ""
    if info.robot_type != reference.robot_type:
        return f"robot_type {info.robot_type!r} differs from {reference.robot_type!r} in", ""
    for key, ref in reference.features.items():
        got = info.features.get(key)
        if got is None:
            return f"lacks feature {key!r} that", " has"
        if got.dtype != ref.dtype:
            return f"feature {key!r} dtype {got.dtype} differs from {ref.dtype} in", ""
        if list(got.shape) != list(ref.shape):
            return f"feature {key!r} shape {list(got.shape)} differs from {list(ref.shape)} in", ""
        if got.names != ref.names:
            return f"feature {key!r} names {got.names} differ from {ref.names} in", ""
    for key in info.features:
        if key not in reference.features:
            return f"has feature {key!r} that", " lacks"
    return None


def check_compatible_sources(reference: DatasetInfo, reference_label: str, info: DatasetInfo, label: str) -> None:
    """One ValueError naming the first difference and both datasets, e.g. `source 'b' (/b):
    feature 'action' shape [7] differs from [6] in 'a' (/a)`."""
    found = incompatibility(reference, info)
    if found is not None:
        before, after = found
        raise ValueError(f"source {label}: {before} {reference_label}{after}")


def merge_datasets(
    sources: Sequence[tuple[str, Path]],
    output: Path,
    *,
    progress: Progress | None = None,
    force: bool = False,
    reencode: VideoEncoderConfig | None = None,
) -> MergeResult:
    """Merge `sources` ((name, root) pairs, in order) into `output` (see module docstring).

    `force` rebuilds even when the output already holds exactly these sources. `reencode` puts
    every camera in that encoding (an existing output in another encoding is rebuilt). Concurrent
    merges into the same output wait for each other (a lock file beside it).
    """
    # Absolute once, here: the sources' and output's paths are joined and compared from now on.
    output = absolute_root(output)
    sources = [(name, absolute_root(root)) for name, root in sources]
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output.parent / f".{output.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # A merge killed while swapping its rebuild in is finished before the output is looked at;
        # then any rebuild directory left is a killed merge's scratch (merges of this output hold
        # the lock), never part of the dataset. Re-encoding scratch carries the same prefix.
        recover_replace(output)
        for stale in output.parent.glob(f"{glob.escape(_rebuild_prefix(output))}*"):
            shutil.rmtree(stale)
        # An append killed mid-commit is rolled forward before its provenance is read: read first,
        # the old sources list would have the rolled-forward source appended a second time.
        if output.is_dir():
            recover(output)
        return _merge_locked(sources, output, progress, force, reencode)


def _rebuild_prefix(output: Path) -> str:
    return f".{output.name}.rebuild-"


def _check_sources(sources: Sequence[tuple[str, Path]]) -> list[DatasetInfo]:
    """The sources' infos, after checking names, compatibility and templates (nothing written)."""
    if not sources:
        raise ValueError("no datasets to merge")
    names = [n for n, _ in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate source names: {sorted(n for n in names if names.count(n) > 1)}")
    infos = [DatasetInfo.load(root) for _, root in sources]
    first = source_label(*sources[0])
    for (name, root), info in zip(sources, infos):
        check_compatible_sources(infos[0], first, info, source_label(name, root))
        check_templates(info, root, writing=False)  # sources are read through their own templates
    return infos


def _merge_locked(
    sources: Sequence[tuple[str, Path]],
    output: Path,
    progress: Progress | None,
    force: bool,
    reencode: VideoEncoderConfig | None,
) -> MergeResult:
    infos = _check_sources(sources)
    names = [n for n, _ in sources]
    say = progress or (lambda msg: logger.info(msg))
    fingerprints = [dataset_fingerprint(root) for _, root in sources]
    wanted = [{"name": n, "fingerprint": fp} for n, fp in zip(names, fingerprints)]
    scratch = (output.parent, f"{_rebuild_prefix(output)}reencode-")

    recorded = None if force else _read_sources(output)
    if recorded is not None and not _totals_agree(output, recorded):
        logger.warning("%s: totals differ from its recorded sources; rebuilding", output)
        recorded = None
    if recorded is not None and reencode is not None and not _info_encoded_as(DatasetInfo.load(output), reencode):
        say(f"{output}: not all in the requested encoding; rebuilding")
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
            out = _Output.open(output, reencode, scratch)
            check_compatible_sources(out.info, f"the output ({output})", infos[0], source_label(*sources[0]))
            added = []
            for (name, root), fp in list(zip(sources, fingerprints))[len(done):]:
                say(f"appending {name}")
                out.append_dataset(name, Path(root), fp)
                added.append(name)
            out.write_final_stats()
            return MergeResult("append", out.info.total_episodes, out.info.total_frames, names, added, out.notes)

    # Rebuild beside the output, then swap: the old dataset stays intact until the new one is whole.
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(output.parent, _rebuild_prefix(output))
    try:
        out = _build(tmp, sources, fingerprints, infos, reencode, scratch, lambda i, name: say(f"merging {name}"))
        replace_dir(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return MergeResult("rebuild", out.info.total_episodes, out.info.total_frames, names, names, out.notes)


def _build(
    root: Path,
    sources: Sequence[tuple[str, Path]],
    fingerprints: Sequence[str],
    infos: Sequence[DatasetInfo],
    reencode: VideoEncoderConfig | None,
    scratch: tuple[Path, str],
    before_source: Callable[[int, str], None],
) -> "_Output":
    """Merge every source into the empty directory `root`; returns the finished output."""
    out = _Output.create(root, infos[0], reencode, scratch)
    for i, ((name, src), fp) in enumerate(zip(sources, fingerprints)):
        before_source(i, name)
        out.append_dataset(name, Path(src), fp)
    out.write_final_stats()
    return out


def merge_to_new(
    roots: Sequence[Path | str],
    out: Path | str,
    *,
    overwrite: bool = False,
    reencode: VideoEncoderConfig | None = None,
    progress: EditProgress | None = None,
) -> EditResult:
    """Merge dataset roots (local paths or fsspec URLs, in order) into a new root `out`.

    Sources are named by their directory names (a repeated name gets `-2`, `-3`...); the output
    keeps `meta/lerobot_assets_sources.json` as provenance. Raises ValueError for incompatible
    inputs, OutputExistsError / OutputIsInputError (tools.output) for a bad `out`, before
    anything is written; the inputs are only read.
    """
    watch = Stopwatch()
    report = progress or (lambda label, done, total: None)
    with ExitStack() as stack:
        local = [stack.enter_context(local_input(root)) for root in roots]
        sources = list(zip(source_names(roots), local))
        infos = _check_sources(sources)
        fingerprints = [dataset_fingerprint(root) for _, root in sources]
        with new_dataset(out, roots, overwrite=overwrite, operation="merge") as tmp:
            built = _build(
                tmp, sources, fingerprints, infos, reencode, (tmp.parent, f"{tmp.name}-reencode-"),
                lambda i, name: report(f"merge {name}", i, len(sources)),
            )
        report("merge", len(sources), len(sources))
    final = absolute_root(out)
    return EditResult(
        "merge", final, built.info.total_episodes, built.info.total_frames, tree_bytes(final), watch.seconds, built.notes
    )


def source_names(roots: Sequence[Path | str]) -> list[str]:
    """Each root's directory name (an URL's last part); a repeated name gets `-2`, `-3`..."""
    names: list[str] = []
    for root in roots:
        text = str(root).rstrip("/")
        base = text.rsplit("/", 1)[-1] if is_remote_root(root) else absolute_root(text).name
        base = base or "dataset"
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.append(name)
    return names


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

    def __init__(
        self,
        root: Path,
        info: DatasetInfo,
        sources: list[dict[str, Any]],
        reencode: VideoEncoderConfig | None = None,
        scratch: tuple[Path, str] | None = None,
    ) -> None:
        self.root = root
        self.info = info
        self.sources = sources
        self.reencode = reencode
        # Where re-encoded source files are made: (parent, name prefix) of a temp directory.
        self.scratch = scratch or (root.parent, f".{root.name}.reencode-")
        self.notes: list[str] = []
        self.reencoded_files = 0
        self.tasks = read_tasks(root)
        pos = WritePositions.load(root, info)
        self.data_loc: tuple[int, int] | None = pos.data
        # The merge measures each file's duration itself, so only the file's location is kept.
        self.video_loc: dict[str, tuple[int, int] | None] = {k: v[0] if v else None for k, v in pos.videos.items()}
        self.ep_loc: tuple[int, int] | None = pos.episodes
        self.ep_rows, self.hist_rows = pos.episode_rows, pos.hist_rows

    @classmethod
    def create(
        cls,
        root: Path,
        like: DatasetInfo,
        reencode: VideoEncoderConfig | None = None,
        scratch: tuple[Path, str] | None = None,
    ) -> "_Output":
        info = like.model_copy(deep=True)
        info.total_episodes = info.total_frames = info.total_tasks = 0
        info.splits = {}
        # A new dataset in our layout, whatever the first source's templates were.
        info.data_path = DATA_PATH
        info.video_path = VIDEO_PATH if info.video_keys else None
        # The video blocks describe the files merged in; none yet (append_dataset fills them).
        for key in info.video_keys:
            info.features[key].info = None
        info.save(root)
        return cls(root, info, [], reencode, scratch)

    @classmethod
    def open(
        cls, root: Path, reencode: VideoEncoderConfig | None = None, scratch: tuple[Path, str] | None = None
    ) -> "_Output":
        info = DatasetInfo.load(root)
        check_templates(info, root, writing=True)
        return cls(root, info, _read_sources(root) or [], reencode, scratch)

    @contextmanager
    def _scratch_dir(self) -> Iterator[Path | None]:
        if self.reencode is None:
            yield None
            return
        parent, prefix = self.scratch
        with tempfile.TemporaryDirectory(dir=parent, prefix=prefix) as tmp:
            yield Path(tmp)

    # -- one source dataset -------------------------------------------------------------
    def append_dataset(self, name: str, src_root: Path, fingerprint: str) -> None:
        src = DatasetMeta(src_root)
        if src.num_episodes == 0:
            for key in self.info.video_keys:
                if self.info.features[key].info is None:  # no file yet to contradict its block
                    self.info.features[key].info = src.info.features[key].info
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
            with self._scratch_dir() as scratch:
                rows = {r["episode_index"]: self._base_row(r, ep_offset, frame_offset) for r in src_rows}
                blocks = self._stage_videos(commit, src, src_rows, rows, scratch)
                index_stats = self._stage_data(commit, src, src_rows, rows, task_map, ep_offset, frame_offset)
                for r in src_rows:
                    row = rows[r["episode_index"]]
                    row.update({k: v for k, v in r.items() if k.startswith("stats/")})
                    row.update(flatten_stats(index_stats[r["episode_index"]]))
                self._stage_episode_rows(commit, [rows[r["episode_index"]] for r in src_rows], src_hists, ep_offset)
                if new_tasks:
                    commit.stage_parquet(self.root / TASKS_PATH, tasks_table(all_tasks))
                for key, block in blocks.items():
                    self._record_block(key, block, first=ep_offset == 0)
                self.info.total_episodes += src.num_episodes
                self.info.total_frames += src.info.total_frames
                self.info.total_tasks = len(all_tasks)
                self.info.splits = {"train": f"0:{self.info.total_episodes}"}
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

    def _record_block(self, key: str, block: dict[str, Any], first: bool) -> None:
        """Fold the video block of the files just merged into the camera's info.json block."""
        feature = self.info.features[key]
        if first or feature.info is None:
            feature.info = block
            return
        merged, differing = combine_video_blocks(feature.info, block)
        feature.info = merged
        note = f"{key}: {', '.join(differing)} differ between the merged files (info.json records null)"
        if differing and note not in self.notes:
            self.notes.append(note)

    def write_final_stats(self) -> None:
        if self.reencoded_files and self.reencode is not None:
            self.notes.append(f"re-encoded {self.reencoded_files} source video files with {self.reencode.encoder_name}")
        commit = Commit(self.root)
        commit.stage_json(self.root / STATS_PATH, stats_to_json(compute_dataset_stats(self.root)))
        commit.publish()

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

    def _stage_videos(
        self, commit: Commit, src: DatasetMeta, src_rows: list[dict], rows: dict[int, dict], scratch: Path | None
    ) -> dict[str, dict[str, Any]]:
        """Stage the source's video files (joined onto the output's current file where a stream
        copy can join them, else a new file); returns each camera's video block for them."""
        limit = self.info.video_files_size_in_mb * MB
        src_root = Path(src.root)
        blocks: dict[str, dict[str, Any]] = {}
        for key in self.info.video_keys:
            src_block = src.info.features[key].info or {}
            files: dict[tuple[int, int], list[dict]] = {}
            for r in src_rows:
                files.setdefault((r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]), []).append(r)
            for (c, f), eps in files.items():
                src_file = src_root / video_rel(src.info, key, c, f)  # sources are local roots
                spans = {r["episode_index"]: (r[f"videos/{key}/from_timestamp"], r[f"videos/{key}/to_timestamp"]) for r in eps}
                stream = video_stream_info(src_file)
                if self.reencode is not None and not encoded_as(self.reencode, src_block, stream):
                    assert scratch is not None
                    src_file, spans = reencode_episodes(src_file, eps, key, self.info.fps, self.reencode, scratch)
                    self.reencoded_files += 1
                    block = video_info_block(src_file, self.reencode)
                    block.update({k: v for k, v in src_block.items() if k not in block})  # depth-map keys
                else:
                    block = file_video_block(stream, src_block)
                blocks[key] = combine_video_blocks(blocks[key], block)[0] if key in blocks else block
                loc = self.video_loc[key]
                offset = 0.0
                if loc is not None:
                    current = commit.latest(self.root / video_rel(self.info, key, *loc))
                    if current.stat().st_size + src_file.stat().st_size >= limit or not _joinable(current, src_file):
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
                    concatenate_videos([previous, src_file], tmp, check=False)  # _joinable checked it
                for r in eps:
                    row = rows[r["episode_index"]]
                    start, stop = spans[r["episode_index"]]
                    row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"] = loc
                    row[f"videos/{key}/from_timestamp"] = start + offset
                    row[f"videos/{key}/to_timestamp"] = stop + offset
                self.video_loc[key] = loc
        return blocks

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



def _renumber(part: pa.Table, ep_offset: int, frame_offset: int, task_map: np.ndarray) -> pa.Table:
    def set_col(t: pa.Table, name: str, values: np.ndarray) -> pa.Table:
        return t.set_column(t.schema.get_field_index(name), name, pa.array(values, pa.int64()))

    part = set_col(part, "episode_index", part["episode_index"].to_numpy() + ep_offset)
    part = set_col(part, "index", part["index"].to_numpy() + frame_offset)
    return set_col(part, "task_index", task_map[part["task_index"].to_numpy()])


# -- video encodings ------------------------------------------------------------------------
# The stream facts of a video block (read from the file), in LeRobot's key order.
STREAM_KEYS = ("video.height", "video.width", "video.codec", "video.pix_fmt", "video.fps", "video.channels", "has_audio")
_ENCODER_FIELD_KEYS = ("video.g", "video.crf", "video.preset", "video.fast_decode", "video.extra_options")
_MISSING = object()


def combine_video_blocks(a: dict[str, Any], b: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The block that holds for files described by `a` and by `b`, and the keys that differ.

    As LeRobot's aggregate: a differing key becomes null, `video.extra_options` {} and
    `video.video_backend` "pyav"; a key only one block has is unknown for the other's files (null).
    """
    out: dict[str, Any] = {}
    differing = []
    for key in [*a, *(k for k in b if k not in a)]:
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va == vb and type(va) is type(vb):
            out[key] = va
            continue
        differing.append(key)
        out[key] = {} if key == "video.extra_options" else "pyav" if key == "video.video_backend" else None
    return out, differing


def file_video_block(stream: dict[str, Any], src_block: dict[str, Any]) -> dict[str, Any]:
    """A source file's video block: stream facts from the file itself (`video_stream_info`), the
    encoder's fields from the source's info.json (only its info knows them)."""
    block = dict(stream)
    block.update({k: v for k, v in src_block.items() if k not in STREAM_KEYS})
    return block


def stream_codec(encoder: VideoEncoderConfig) -> str:
    """The stream codec (`video.codec`) the encoder writes: "libx264" -> "h264"."""
    name = encoder.encoder_name
    for codec, enc in STREAM_CODEC_ENCODERS.items():
        if enc == name:
            return codec
    return av.codec.Codec(name, "w").canonical_name or name


def encoded_as(target: VideoEncoderConfig, block: dict[str, Any], stream: dict[str, Any] | None = None) -> bool:
    """Whether a camera's files (`stream`: one file's stream facts; default: the block's) with
    this info block are already what `target` writes: same codec and pix_fmt in the file, same
    encoder settings in the block (LeRobot's re-encode skips such cameras too)."""
    facts = stream if stream is not None else block
    if facts.get("video.codec") != stream_codec(target) or facts.get("video.pix_fmt") != target.pix_fmt:
        return False
    try:
        have = VideoEncoderConfig.from_info_block({**block, "video.codec": facts["video.codec"]})
    except ValueError:  # nulls of a mixed dataset, or settings no encoder here accepts
        return False
    want = target.info_fields()
    return have.encoder_name == target.encoder_name and all(
        have.info_fields()[k] == want[k] for k in _ENCODER_FIELD_KEYS
    )


def _info_encoded_as(info: DatasetInfo, target: VideoEncoderConfig) -> bool:
    return all(encoded_as(target, info.features[k].info or {}) for k in info.video_keys)


def _joinable(current: Path, src_file: Path) -> bool:
    """Whether `src_file` can be appended to `current` by stream copy (codec, size, pix_fmt, fps,
    time base and codec parameters agree, and it starts on a keyframe)."""
    try:
        check_compatible([current, src_file])
    except ValueError as e:
        logger.info("new video file: %s", e)
        return False
    return True


def reencode_episodes(
    src_file: Path, eps: list[dict], key: str, fps: int, encoder: VideoEncoderConfig, scratch: Path
) -> tuple[Path, dict[int, tuple[float, float]]]:
    """Re-encode the episodes' frames of `src_file` into one file in `scratch`, one segment per
    episode joined by stream copy, so each episode's first frame is a keyframe whatever the
    encoder's GOP; frames between episodes are not kept. Returns the file and each episode's new
    (from, to) timestamps in it."""
    order = sorted(eps, key=lambda r: r[f"videos/{key}/from_timestamp"])
    starts = [float(r[f"videos/{key}/from_timestamp"]) for r in order]
    stops = [float(r[f"videos/{key}/to_timestamp"]) for r in order]
    half = 0.5 / fps
    out_dir = Path(tempfile.mkdtemp(dir=scratch))
    segments = [out_dir / f"episode-{k:06d}.mp4" for k in range(len(order))]
    counts = [0] * len(order)
    current, writer = -1, None
    try:
        with av.open(str(src_file)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                t = frame.time
                if t is None:
                    raise ValueError(f"{src_file}: a decoded frame has no timestamp; cannot tell its episode")
                while current + 1 < len(order) and t >= starts[current + 1] - half:
                    if writer is not None:
                        writer.close()
                    current += 1
                    writer = Mp4FrameWriter(segments[current], fps, encoder)
                if writer is None or t >= stops[current] - half:
                    continue  # before the first episode or between episodes
                frame.pts = None
                # A decoded frame keeps its picture type, and libx264 forces an I frame where it
                # says I: cleared, the target's GOP decides (the segment's first frame is one anyway).
                frame.pict_type = PictureType.NONE
                writer.write_av_frame(frame)
                counts[current] += 1
        if writer is not None:
            writer.close()
            writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    for r, n in zip(order, counts):
        if n != r["length"]:
            raise ValueError(
                f"{src_file}: episode {r['episode_index']} has {r['length']} frames but {n} decode in its "
                f"[{r[f'videos/{key}/from_timestamp']:.6f}, {r[f'videos/{key}/to_timestamp']:.6f}) s; cannot re-encode it"
            )
    spans: dict[int, tuple[float, float]] = {}
    frames = 0
    for r in order:
        spans[r["episode_index"]] = (frames / fps, (frames + r["length"]) / fps)
        frames += r["length"]
    if len(segments) == 1:
        return segments[0], spans
    joined = out_dir / "joined.mp4"
    concatenate_videos([str(p) for p in segments], joined, check=True)
    return joined, spans
