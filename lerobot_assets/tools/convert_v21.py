"""A LeRobot v2.1 dataset (one parquet and one MP4 per episode, jsonl metadata) rewritten as v3.0
into a new root. The v2.1 input is never written: LeRobot's converter builds `<root>_v30` and then
moves the input to `<root>_old`; here the output is built beside `out` and swapped in
(`tools.output.new_dataset`).

What becomes what:
- `data/chunk-*/episode_*.parquet` -> `data/chunk-XXX/file-XXX.parquet`, concatenated with one row
  group per episode; a new file starts when the next episode's v2.1 file would bring the current
  one to `data_files_size_in_mb` (LeRobot's rule). `episode_index`, `index` and `task_index` are
  renumbered (contiguous from 0, in episode order; tasks in tasks.jsonl order), which is the
  identity for a well-formed v2.1 dataset.
- `videos/chunk-*/<key>/episode_*.mp4` -> `videos/<key>/chunk-XXX/file-XXX.mp4` by stream copy
  (no pixel changes), rolled over at `video_files_size_in_mb`; an episode's `from_timestamp` is the
  exact sum, in stream ticks, of the durations before it in its file (what the concatenation
  offsets it by).
- `meta/episodes.jsonl` + `meta/episodes_stats.jsonl` -> `meta/episodes/chunk-000/file-000.parquet`
  with every v3 column. Numeric stats are recomputed from the data (exact quantiles; v2.1 had
  none). Image/video stats are carried from episodes_stats.jsonl when it holds every statistic
  (quantiles included); otherwise (always for LeRobot-written v2.1) they are computed from the
  episode's frames (decoded MP4 or PNG) with 256-level histograms, written to our histogram
  sidecar so the dataset quantiles are exact. (A camera whose stats were carried has no
  histograms; stats.json then gets `compute_dataset_stats`'s conservative quantile envelope for it.)
- `meta/tasks.jsonl` -> `meta/tasks.parquet`; `meta/info.json` in v3 form (v3 templates, file size
  limits, no `total_chunks`/`total_videos`, video info blocks read from the converted files).
- `meta/stats.json` computed exactly over the converted dataset.
"""

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from lerobot_assets.format.atomic import write_json_atomic, write_parquet, write_parquet_atomic
from lerobot_assets.format.episodes import episodes_schema
from lerobot_assets.format.features import Feature, data_schema
from lerobot_assets.format.files import flat
from lerobot_assets.format.info import DatasetInfo, InfoSchemaError, schema_problem
from lerobot_assets.format.layout import (
    DATA_PATH,
    DEFAULT_DATA_FILE_SIZE_IN_MB,
    DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    episodes_path,
    image_hist_path,
    next_chunk_file,
)
from lerobot_assets.format.stats_json import STAT_KEYS, Stats, flatten_stats, stats_to_json
from lerobot_assets.format.tasks import tasks_table
from lerobot_assets.recording.paths import data_rel, video_rel
from lerobot_assets.stats.dataset import column_to_numpy, compute_dataset_stats, numeric_feature_keys
from lerobot_assets.stats.image import ImageStatsAccumulator
from lerobot_assets.stats.numeric import numeric_stats
from lerobot_assets.tools.output import (
    EditResult,
    Progress,
    Stopwatch,
    local_input,
    new_dataset,
    no_progress,
    resolve_output,
    tree_bytes,
)
from lerobot_assets.video.concat import concatenate_videos
from lerobot_assets.video.probe import video_duration_ticks, video_frame_count, video_stream_info

V21 = "v2.1"
LEGACY_EPISODES_PATH = "meta/episodes.jsonl"
LEGACY_TASKS_PATH = "meta/tasks.jsonl"
LEGACY_EPISODES_STATS_PATH = "meta/episodes_stats.jsonl"
# Keys of a v2.1 info.json that v3.0 dropped (LeRobot's converter deletes them).
_V21_ONLY_INFO_KEYS = ("total_chunks", "total_videos")
MB = 1024 * 1024


class NotAV21DatasetError(ValueError):
    """The input's meta/info.json does not say codebase_version v2.1."""


@dataclass
class LegacyEpisode:
    """One episode of the v2.1 input: its metadata and its files."""

    episode_index: int  # as the v2.1 dataset numbers it
    tasks: list[str]
    length: int
    data: Path
    videos: dict[str, Path] = field(default_factory=dict)
    stats: Stats = field(default_factory=dict)  # from episodes_stats.jsonl; {} when absent


@dataclass
class LegacyDataset:
    """A v2.1 dataset read and checked: every file it names exists."""

    root: Path
    info: dict[str, Any]  # meta/info.json as written
    features: dict[str, Feature]
    tasks: list[str]  # v3 task order: tasks.jsonl by task_index
    task_remap: dict[int, int]  # v2.1 task_index -> v3 task_index
    episodes: list[LegacyEpisode]

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def frames(self) -> int:
        return sum(e.length for e in self.episodes)


# ----------------------------------------------------------------------------- reading v2.1
def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (a v2.1 dataset has {path.name} in meta/)")
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{line_no}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{line_no}: not a JSON object")
        rows.append(row)
    return rows


def _field(row: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = row.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"{where}: {key!r} is {value!r}, expected {kind.__name__}")
    return value


def _legacy_path(template: Any, name: str, root: Path, **values: Any) -> Path:
    if not isinstance(template, str):
        raise ValueError(f"{root / INFO_PATH}: {name} is {template!r}, expected a path template")
    try:
        return root / template.format(**values)
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(f"{root / INFO_PATH}: {name} {template!r} is not a v2.1 template ({flat(e)})") from None


def read_v21_info(root: Path) -> dict[str, Any]:
    """meta/info.json of a v2.1 dataset; NotAV21DatasetError naming the file and the version found."""
    path = Path(root) / INFO_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (not a LeRobot dataset root)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a JSON object")
    version = raw.get("codebase_version")
    if version != V21:
        raise NotAV21DatasetError(f"{path}: codebase_version is {version!r}, not {V21!r} (only v2.1 datasets convert)")
    return raw


def is_v21_root(root: Path | str) -> bool:
    """Whether `root` is a local dataset root whose info.json says v2.1 (no error for anything else)."""
    try:
        read_v21_info(Path(root))
    except (OSError, ValueError):
        return False
    return True


def v21_fingerprint(root: Path | str) -> str:
    """Content hash of a v2.1 dataset: its metadata files' bytes and the sizes of its data and video
    files (as `tools.merge.dataset_fingerprint` does for v3), to tell when a conversion is stale."""
    root = Path(root)
    h = hashlib.sha256()
    for path in sorted((root / "meta").glob("*.json*")):
        if path.is_file():
            h.update(f"{path.name}\0".encode())
            h.update(path.read_bytes())
    for top in ("data", "videos"):
        for path in sorted((root / top).rglob("*")):
            if path.is_file():
                h.update(f"{path.relative_to(root)}:{path.stat().st_size}\0".encode())
    return h.hexdigest()[:32]


def read_v21(root: Path) -> LegacyDataset:
    """Read and check a v2.1 dataset: the version, the jsonl metadata and that every episode's
    parquet and MP4 exist. Every error names the file (and line) at fault."""
    root = Path(root)
    info = read_v21_info(root)
    features: dict[str, Feature] = {}
    for key, spec in _field(info, "features", dict, str(root / INFO_PATH)).items():
        try:
            features[key] = Feature.model_validate(spec)
        except ValidationError as e:
            raise InfoSchemaError(root / INFO_PATH, f"feature {key!r}: {schema_problem(e)}") from None
    fps = info.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or fps <= 0 or int(fps) != fps:
        raise ValueError(f"{root / INFO_PATH}: fps is {fps!r}, expected a positive integer")
    chunks_size = info.get("chunks_size", 1000)
    if not isinstance(chunks_size, int) or chunks_size < 1:
        raise ValueError(f"{root / INFO_PATH}: chunks_size is {chunks_size!r}, expected a positive integer")

    task_rows = _read_jsonl(root / LEGACY_TASKS_PATH)
    tasks_path = root / LEGACY_TASKS_PATH
    by_index: dict[int, str] = {}
    for n, row in enumerate(task_rows, 1):
        where = f"{tasks_path}:{n}"
        idx, task = _field(row, "task_index", int, where), _field(row, "task", str, where)
        if idx in by_index:
            raise ValueError(f"{where}: task_index {idx} appears twice")
        by_index[idx] = task
    order = sorted(by_index)
    tasks = [by_index[i] for i in order]
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"{tasks_path}: a task string appears under two task indices")
    task_remap = {old: new for new, old in enumerate(order)}

    stats_by_ep: dict[int, Stats] = {}
    stats_path = root / LEGACY_EPISODES_STATS_PATH
    if stats_path.is_file():
        for n, row in enumerate(_read_jsonl(stats_path), 1):
            where = f"{stats_path}:{n}"
            stats_by_ep[_field(row, "episode_index", int, where)] = _parse_stats(_field(row, "stats", dict, where), where)

    episodes_file = root / LEGACY_EPISODES_PATH
    episodes: list[LegacyEpisode] = []
    seen: set[int] = set()
    for n, row in enumerate(_read_jsonl(episodes_file), 1):
        where = f"{episodes_file}:{n}"
        idx = _field(row, "episode_index", int, where)
        ep_tasks = _field(row, "tasks", list, where)
        length = _field(row, "length", int, where)
        if idx in seen:
            raise ValueError(f"{where}: episode_index {idx} appears twice")
        if length < 1 or not all(isinstance(t, str) for t in ep_tasks):
            raise ValueError(f"{where}: length must be positive and tasks a list of strings")
        unknown = [t for t in ep_tasks if t not in by_index.values()]
        if unknown:
            raise ValueError(f"{where}: task {unknown[0]!r} is not in {tasks_path}")
        seen.add(idx)
        chunk = idx // chunks_size
        ep = LegacyEpisode(
            episode_index=idx,
            tasks=list(ep_tasks),
            length=length,
            data=_legacy_path(info.get("data_path"), "data_path", root, episode_chunk=chunk, episode_index=idx),
            stats=stats_by_ep.get(idx, {}),
        )
        for key, f in features.items():
            if f.dtype == "video":
                ep.videos[key] = _legacy_path(
                    info.get("video_path"), "video_path", root, episode_chunk=chunk, video_key=key, episode_index=idx
                )
        episodes.append(ep)
    if not episodes:
        raise ValueError(f"{episodes_file}: no episodes")
    episodes.sort(key=lambda e: e.episode_index)
    for ep in episodes:
        for path in [ep.data, *ep.videos.values()]:
            if not path.is_file():
                kind = "parquet" if path == ep.data else "video"
                raise FileNotFoundError(f"{path}: missing (the {kind} file of episode {ep.episode_index})")
    return LegacyDataset(root, info, features, tasks, task_remap, episodes)


def _parse_stats(raw: dict[str, Any], where: str) -> Stats:
    out: Stats = {}
    for key, s in raw.items():
        if not isinstance(s, dict):
            raise ValueError(f"{where}: stats of {key!r} are not an object")
        try:
            out[key] = {k: np.asarray(v, dtype=np.int64 if k == "count" else np.float64) for k, v in s.items()}
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: stats of {key!r} are not numeric ({flat(e)})") from None
    return out


# ----------------------------------------------------------------------------- shared with image_to_video
def pack_episode_videos(
    segments: Sequence[Path], root: Path, info: DatasetInfo, key: str, limit_mb: float
) -> list[tuple[int, int, float, float]]:
    """Stream-copy per-episode MP4s (in order) into camera `key`'s v3 files under `root`.

    A new file starts when the next segment would bring the current one to `limit_mb` (LeRobot's
    rule). Returns (chunk_index, file_index, from_timestamp, to_timestamp) per segment: sums of
    the segments' durations in integer stream ticks (exactly what `concatenate_videos` offsets
    each segment by), converted to seconds once.
    """
    out: list[tuple[int, int, float, float]] = []
    loc, size, ticks = (0, 0), 0, 0
    group: list[str | os.PathLike[str]] = []  # concatenate_videos takes any path

    def flush() -> None:
        target = root / video_rel(info, key, *loc)
        target.parent.mkdir(parents=True, exist_ok=True)
        concatenate_videos(group, target, check=True)

    for path in segments:
        seg_ticks, time_base = video_duration_ticks(path)
        seg_size = path.stat().st_size
        if group and size + seg_size >= limit_mb * MB:
            flush()
            loc, group, size, ticks = next_chunk_file(*loc, info.chunks_size), [], 0, 0
        out.append((loc[0], loc[1], float(ticks * time_base), float((ticks + seg_ticks) * time_base)))
        group.append(path)
        size += seg_size
        ticks += seg_ticks
    if group:
        flush()
    return out


def decoded_frames(path: Path) -> Iterator[np.ndarray]:
    """Every frame of an MP4's first video stream, HWC uint8 RGB, in presentation order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def png_frames(cells: Sequence[Any]) -> Iterator[np.ndarray]:
    """Decoded frames of an `image` column's {bytes, path} cells (PNG bytes embedded)."""
    from PIL import Image  # only image features need it

    for cell in cells:
        data = cell.get("bytes") if isinstance(cell, dict) else None
        if not data:
            raise ValueError("an image cell holds no embedded bytes (images stored as paths are not supported)")
        with Image.open(BytesIO(data)) as img:
            yield np.asarray(img.convert("RGB"))


def frames_stats(frames: Iterator[np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(stats, (C,256) histogram) of frames, accumulated as the writer does."""
    acc = ImageStatsAccumulator()
    for frame in frames:
        acc.update(frame)
    stats = acc.stats()
    if stats is None or acc.hist is None:
        raise ValueError("no frames")
    return stats, acc.hist


def write_histograms(root: Path, rows: list[dict[str, Any]], camera_keys: list[str], loc: tuple[int, int] = (0, 0)) -> None:
    """Our per-episode image histogram sidecar (format.layout.IMAGE_HIST_PATH) for `rows`."""
    if not rows:
        return
    schema = pa.schema([pa.field("episode_index", pa.int64())] + [pa.field(k, pa.list_(pa.int64())) for k in camera_keys])
    table = pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)
    path = root / image_hist_path(*loc)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(path, table)


def write_episode_rows(root: Path, rows: list[dict[str, Any]], features: dict[str, Feature], loc: tuple[int, int] = (0, 0)) -> None:
    schema = episodes_schema(features)
    for row in rows:
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = loc
    path = root / episodes_path(*loc)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(path, pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema))


# ----------------------------------------------------------------------------- converting
def convert_v21(
    root: Path | str,
    out: Path | str,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    data_files_size_in_mb: float = DEFAULT_DATA_FILE_SIZE_IN_MB,
    video_files_size_in_mb: float = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
) -> EditResult:
    """Convert the v2.1 dataset at `root` (local path or fsspec URL) into a v3.0 dataset at `out`.

    Raises NotAV21DatasetError (naming info.json and the version found), FileNotFoundError naming
    a missing episode parquet or MP4, ValueError naming the file and line of bad metadata, and
    OutputExistsError / OutputIsInputError (tools.output) — all before anything is written.
    """
    watch = Stopwatch()
    say = progress or no_progress
    with local_input(root) as src:
        legacy = read_v21(src)
        with new_dataset(out, [root], overwrite=overwrite, operation="convert-v21") as tmp:
            computed = _write_v3(legacy, tmp, say, data_files_size_in_mb, video_files_size_in_mb)
    final = resolve_output(out)
    cameras = sum(f.is_visual for f in legacy.features.values()) * len(legacy.episodes)
    notes = [f"image stats computed from the frames for {computed} of {cameras} episode cameras"] if cameras else []
    return EditResult(
        "convert-v21", final, len(legacy.episodes), legacy.frames, tree_bytes(final), watch.seconds, notes
    )


def _v3_info(legacy: LegacyDataset, data_mb: float, video_mb: float) -> DatasetInfo:
    raw = {k: v for k, v in legacy.info.items() if k not in _V21_ONLY_INFO_KEYS}
    features: dict[str, Any] = {}
    for key, f in legacy.features.items():
        spec = f.dump()
        if f.dtype == "video":
            spec.pop("info", None)  # rebuilt from the converted files
        else:
            spec["fps"] = legacy.fps  # LeRobot's converter gives every non-video feature the fps
        features[key] = spec
    has_video = any(f.dtype == "video" for f in legacy.features.values())
    raw.update(
        codebase_version="v3.0",
        fps=legacy.fps,
        features=features,
        total_episodes=len(legacy.episodes),
        total_frames=legacy.frames,
        total_tasks=len(legacy.tasks),
        data_files_size_in_mb=data_mb,
        video_files_size_in_mb=video_mb,
        data_path=DATA_PATH,
        video_path=VIDEO_PATH if has_video else None,
        splits={"train": f"0:{len(legacy.episodes)}"},
    )
    try:
        return DatasetInfo.model_validate(raw)
    except ValidationError as e:
        raise InfoSchemaError(legacy.root / INFO_PATH, f"cannot become a v3 info.json: {schema_problem(e)}") from None


def _complete(stats: dict[str, np.ndarray] | None) -> bool:
    return stats is not None and all(k in stats for k in STAT_KEYS)


def _write_v3(
    legacy: LegacyDataset, tmp: Path, say: Callable[[str, int, int], None], data_mb: float, video_mb: float
) -> int:
    """Write the v3 dataset into `tmp`; returns how many episode cameras had their image stats
    computed from frames (the rest were carried from episodes_stats.jsonl)."""
    info = _v3_info(legacy, data_mb, video_mb)
    rows: list[dict[str, Any]] = []
    start = 0
    for pos, ep in enumerate(legacy.episodes):
        rows.append({
            "episode_index": pos,
            "tasks": ep.tasks,
            "length": ep.length,
            "dataset_from_index": start,
            "dataset_to_index": start + ep.length,
        })
        start += ep.length
    hists: dict[int, dict[str, list[int]]] = {}

    _convert_data(legacy, info, tmp, rows, hists, say)
    for key in info.video_keys:
        segments = [ep.videos[key] for ep in legacy.episodes]
        for ep, path in zip(legacy.episodes, segments):
            frames = video_frame_count(path)
            if frames != ep.length:
                raise ValueError(f"{path}: {frames} frames, but episode {ep.episode_index} has {ep.length} rows")
        for pos, (c, f, t0, t1) in enumerate(pack_episode_videos(segments, tmp, info, key, video_mb)):
            rows[pos].update({
                f"videos/{key}/chunk_index": c, f"videos/{key}/file_index": f,
                f"videos/{key}/from_timestamp": t0, f"videos/{key}/to_timestamp": t1,
            })
        info.features[key].info = _video_block(tmp / video_rel(info, key, 0, 0), legacy.features[key])
        # Decoding dominates the conversion; PyAV and numpy release the GIL, so threads scale.
        todo = [pos for pos, ep in enumerate(legacy.episodes) if not _complete(ep.stats.get(key))]
        for pos, ep in enumerate(legacy.episodes):
            if pos not in todo:
                rows[pos].update(flatten_stats({key: ep.stats[key]}))
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            jobs = pool.map(frames_stats, [decoded_frames(legacy.episodes[pos].videos[key]) for pos in todo])
            for done, (pos, (stats, hist)) in enumerate(zip(todo, jobs)):
                rows[pos].update(flatten_stats({key: stats}))
                hists.setdefault(pos, {})[key] = hist.reshape(-1).tolist()
                say(f"stats {key}", done + 1, len(todo))

    write_parquet_atomic(tmp / TASKS_PATH, tasks_table(legacy.tasks))
    write_episode_rows(tmp, rows, info.features)
    write_histograms(tmp, [{"episode_index": pos, **h} for pos, h in sorted(hists.items())], info.camera_keys)
    info.save(tmp)
    say("stats", 0, 1)
    write_json_atomic(tmp / STATS_PATH, stats_to_json(compute_dataset_stats(tmp)))
    say("stats", 1, 1)
    return sum(len(h) for h in hists.values())


def _video_block(path: Path, legacy: Feature) -> dict[str, Any]:
    """v3's video info block: the stream facts of the converted file. v2.1 recorded no encoder
    settings (g, crf, preset), so none are claimed; `video.is_depth_map` becomes `is_depth_map`."""
    block = video_stream_info(path)
    old = legacy.info or {}
    block["is_depth_map"] = bool(old.get("video.is_depth_map", old.get("is_depth_map", False)))
    return block


def _convert_data(
    legacy: LegacyDataset,
    info: DatasetInfo,
    tmp: Path,
    rows: list[dict[str, Any]],
    hists: dict[int, dict[str, list[int]]],
    say: Callable[[str, int, int], None],
) -> None:
    schema = data_schema(info.features)
    numeric = numeric_feature_keys(info.features)
    remap = np.full(max(legacy.task_remap) + 1, -1, dtype=np.int64) if legacy.task_remap else np.zeros(0, np.int64)
    for old, new in legacy.task_remap.items():
        remap[old] = new
    loc, size = (0, 0), 0
    parts: list[pa.Table] = []

    def flush() -> None:
        path = tmp / data_rel(info, *loc)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet(path, parts)

    n = len(legacy.episodes)
    for pos, ep in enumerate(legacy.episodes):
        say("data", pos, n)
        row = rows[pos]
        table = _episode_table(ep, schema, row, remap)
        stats: Stats = {k: numeric_stats(column_to_numpy(table.column(k))) for k in numeric}
        for key in info.image_keys:
            carried = ep.stats.get(key)
            if _complete(carried):
                assert carried is not None
                stats[key] = carried
                continue
            try:
                stats[key], hist = frames_stats(png_frames(table.column(key).to_pylist()))
            except (ValueError, OSError) as e:
                raise ValueError(f"{ep.data}: column {key!r}: {flat(e)}") from None
            hists.setdefault(pos, {})[key] = hist.reshape(-1).tolist()
        row.update(flatten_stats(stats))
        ep_size = ep.data.stat().st_size
        if parts and size + ep_size >= info.data_files_size_in_mb * MB:
            flush()
            loc, parts, size = next_chunk_file(*loc, info.chunks_size), [], 0
        row["data/chunk_index"], row["data/file_index"] = loc
        parts.append(table)
        size += ep_size
    flush()
    say("data", n, n)


def _episode_table(ep: LegacyEpisode, schema: pa.Schema, row: dict[str, Any], remap: np.ndarray) -> pa.Table:
    """One v2.1 episode parquet as v3 rows: the declared columns in schema order, cast to their v3
    types, indices renumbered. ValueError naming the file for anything that does not fit."""
    try:
        table = pq.read_table(ep.data)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{ep.data}: unreadable parquet ({flat(e)})") from None
    if table.num_rows != ep.length:
        raise ValueError(f"{ep.data}: {table.num_rows} rows, but meta/episodes.jsonl says episode {ep.episode_index} has {ep.length}")
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise ValueError(f"{ep.data}: no column {missing[0]!r} (declared in meta/info.json)")
    try:
        table = table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
        raise ValueError(f"{ep.data}: columns do not match meta/info.json's features ({flat(e)})") from None
    old_tasks = table.column("task_index").to_numpy()
    if old_tasks.size and (old_tasks.min() < 0 or old_tasks.max() >= remap.size or (remap[old_tasks] < 0).any()):
        bad = sorted({int(t) for t in old_tasks if t < 0 or t >= remap.size or remap[t] < 0})
        raise ValueError(f"{ep.data}: task_index {bad[0]} is not in {LEGACY_TASKS_PATH}")
    n = table.num_rows
    start = row["dataset_from_index"]
    replaced = {
        "episode_index": np.full(n, row["episode_index"], dtype=np.int64),
        "index": np.arange(start, start + n, dtype=np.int64),
        "task_index": remap[old_tasks] if n else old_tasks,
    }
    for name, values in replaced.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, schema.field(name), pa.array(values, pa.int64()))
    return table
