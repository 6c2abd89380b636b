"""`image` features (PNG bytes in the data parquet, LeRobot's image mode) become `video` features,
into a new root; the input is never written.

Each episode of each camera is encoded on its own (so its first frame is a keyframe), then the
episodes are stream-copied into `videos/<key>/chunk-XXX/file-XXX.mp4`, rolled over at the input's
`video_files_size_in_mb`, with exact cumulative from/to timestamps (`convert_v21.pack_episode_videos`).
The data files keep their chunk/file layout and one row group per episode, minus the image columns;
`episode_index`, `index`, `task_index` and every other column (undeclared ones included) are
unchanged. Unlike LeRobot's `convert_image_to_video`, which writes episode rows without `tasks`,
stats or `meta/episodes/*`, every episode row is complete: tasks, data and video locations,
numeric stats recomputed over the episode's frames, and image stats from 256-level histograms of
the frames that were encoded (as the writer computes them), with our histogram sidecar, so
`stats.json` is exact.
"""

import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lerobot_assets.format.atomic import write_json_atomic, write_parquet
from lerobot_assets.format.features import data_schema
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import STAGING_DIR, STATS_PATH, TASKS_PATH, VIDEO_PATH
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.format.stats_json import Stats, flatten_stats, stats_to_json
from lerobot_assets.recording.paths import check_templates, data_rel, video_rel
from lerobot_assets.stats.dataset import column_to_numpy, compute_dataset_stats, numeric_feature_keys, read_image_histograms
from lerobot_assets.stats.image import ImageStatsAccumulator
from lerobot_assets.stats.numeric import numeric_stats
from lerobot_assets.tools.convert_v21 import pack_episode_videos, png_frames, write_episode_rows, write_histograms
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
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.encode import encode_frames
from lerobot_assets.video.probe import video_info_block


class NoImageFeaturesError(ValueError):
    """The dataset has no `image` feature to convert."""


def convert_image_to_video(
    root: Path | str,
    out: Path | str,
    encoder: VideoEncoderConfig | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
) -> EditResult:
    """Encode every `image` feature of the dataset at `root` as a `video` feature, into `out`.

    `encoder` defaults to LeRobot's (libsvtav1, g=2, crf=30). `workers`: episodes x cameras
    encoded at once (default: the CPU count, at most 8). Raises NoImageFeaturesError naming the
    dtypes found, and OutputExistsError / OutputIsInputError, before anything is written.
    """
    watch = Stopwatch()
    encoder = encoder or VideoEncoderConfig()
    say = progress or no_progress
    with local_input(root) as src:
        meta = DatasetMeta(src)
        info = meta.info
        check_templates(info, src, writing=False)
        if not info.image_keys:
            by_dtype: dict[str, list[str]] = {}
            for key, f in info.features.items():
                by_dtype.setdefault(f.dtype, []).append(key)
            found = "; ".join(f"{d}: {', '.join(ks)}" for d, ks in by_dtype.items())
            raise NoImageFeaturesError(f"{src}: no image features to convert to video (features by dtype: {found})")
        not_rgb = [k for k in info.image_keys if info.features[k].shape[-1] != 3]
        if not_rgb:
            shapes = ", ".join(f"{k} {info.features[k].shape}" for k in not_rgb)
            raise ValueError(f"{src}: only RGB images (H, W, 3) are encoded to video; {shapes}")
        if meta.num_episodes == 0:
            raise ValueError(f"{src}: the dataset has no episodes to convert")
        n_workers = workers or min(8, os.cpu_count() or 1)
        with new_dataset(out, [root], overwrite=overwrite, operation="image-to-video") as tmp:
            _convert(src, meta, encoder, tmp, say, n_workers)
    final = resolve_output(out)
    return EditResult(
        "image-to-video", final, meta.num_episodes, info.total_frames, tree_bytes(final), watch.seconds,
        notes=[f"encoded {', '.join(info.image_keys)} with {encoder.vcodec}"],
    )


def _video_info(info: DatasetInfo) -> DatasetInfo:
    new = info.model_copy(deep=True)
    for key in info.image_keys:
        new.features[key].dtype = "video"
    if new.video_path is None:
        new.video_path = VIDEO_PATH
    return new


def _convert(
    src: Path, meta: DatasetMeta, encoder: VideoEncoderConfig, tmp: Path, say: Callable[[str, int, int], None], workers: int
) -> None:
    info = meta.info
    keys = info.image_keys
    new_info = _video_info(info)
    check_templates(new_info, tmp, writing=True)
    rows = meta.episodes.to_pylist()
    scratch = tmp / STAGING_DIR / "image-to-video"
    scratch.mkdir(parents=True)
    segments: dict[str, list[Path]] = {k: [] for k in keys}
    hists: dict[int, dict[str, np.ndarray]] = {}
    new_schema = _data_schema(src, info, new_info, rows)

    files: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in rows:
        files.setdefault((r["data/chunk_index"], r["data/file_index"]), []).append(r)
    done = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image-to-video") as pool:
        for (c, f), eps in files.items():
            table = pq.read_table(src / data_rel(info, c, f))
            parts = []
            jobs = []
            for r in eps:
                part = table.filter(pc.equal(table["episode_index"], r["episode_index"]))
                if part.num_rows != r["length"]:
                    raise ValueError(
                        f"{src / data_rel(info, c, f)}: episode {r['episode_index']} has {part.num_rows} rows, "
                        f"its episode row says {r['length']}"
                    )
                _complete_row(r, part, meta, info)
                for key in keys:
                    path = scratch / key / f"episode-{r['episode_index']:09d}.mp4"
                    segments[key].append(path)
                    cells = part.column(key).to_pylist()
                    jobs.append((r, key, pool.submit(_encode, cells, path, info.fps, encoder)))
                parts.append(part.drop_columns(keys).cast(new_schema))
            target = tmp / data_rel(new_info, c, f)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_parquet(target, parts)
            for r, key, job in jobs:
                stats, hist = job.result()
                r.update(flatten_stats({key: stats}))
                hists.setdefault(r["episode_index"], {})[key] = hist
                done += 1
                say("encode", done, len(rows) * len(keys))

    for key in keys:
        say(f"concatenate {key}", 0, 1)
        for r, (c, f, t0, t1) in zip(rows, pack_episode_videos(segments[key], tmp, new_info, key, info.video_files_size_in_mb)):
            r.update({
                f"videos/{key}/chunk_index": c, f"videos/{key}/file_index": f,
                f"videos/{key}/from_timestamp": t0, f"videos/{key}/to_timestamp": t1,
            })
        new_info.features[key].info = video_info_block(tmp / video_rel(new_info, key, 0, 0), encoder)
    shutil.rmtree(tmp / STAGING_DIR)
    _copy_videos(src, info, new_info, rows, tmp)
    _write_meta(src, info, new_info, rows, hists, tmp)
    say("stats", 0, 1)
    write_json_atomic(tmp / STATS_PATH, stats_to_json(compute_dataset_stats(tmp)))
    say("stats", 1, 1)


def _data_schema(src: Path, info: DatasetInfo, new_info: DatasetInfo, rows: list[dict[str, Any]]) -> pa.Schema:
    """The input's data schema without the image columns (undeclared columns kept), with the
    `huggingface` metadata of the new features."""
    first = rows[0] if rows else None
    if first is None:
        return data_schema(new_info.features)
    schema = pq.read_schema(src / data_rel(info, first["data/chunk_index"], first["data/file_index"]))
    for key in info.image_keys:
        schema = schema.remove(schema.get_field_index(key))
    meta = dict(schema.metadata or {})
    meta[b"huggingface"] = (data_schema(new_info.features).metadata or {})[b"huggingface"]
    return schema.with_metadata(meta)


def _complete_row(row: dict[str, Any], part: pa.Table, meta: DatasetMeta, info: DatasetInfo) -> None:
    """Fill what an episode row may lack (LeRobot's own image->video output has no tasks or
    stats) and recompute every numeric stat over the episode's frames (exact quantiles)."""
    if not row.get("tasks"):
        ids = part.column("task_index").to_numpy()
        row["tasks"] = [meta.tasks[int(i)] for i in dict.fromkeys(ids.tolist())]
    stats: Stats = {
        k: numeric_stats(column_to_numpy(part.column(k)))
        for k in numeric_feature_keys(info.features)
        if k in part.column_names
    }
    row.update(flatten_stats(stats))


def _encode(cells: list[Any], path: Path, fps: int, encoder: VideoEncoderConfig) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Encode one episode's PNG cells into `path`; returns the stats and histogram of those frames."""
    acc = ImageStatsAccumulator()

    def frames() -> Iterator[np.ndarray]:
        for frame in png_frames(cells):
            acc.update(frame)
            yield frame

    path.parent.mkdir(parents=True, exist_ok=True)
    encode_frames(frames(), path, fps, encoder, threads=1)
    stats = acc.stats()
    assert stats is not None and acc.hist is not None  # encode_frames raised on zero frames
    return stats, acc.hist


def _copy_videos(src: Path, info: DatasetInfo, new_info: DatasetInfo, rows: list[dict[str, Any]], tmp: Path) -> None:
    """The input's existing video files, unchanged (a dataset may mix image and video cameras)."""
    for key in info.video_keys:
        for c, f in dict.fromkeys((r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]) for r in rows):
            target = tmp / video_rel(new_info, key, c, f)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / video_rel(info, key, c, f), target)


def _write_meta(
    src: Path,
    info: DatasetInfo,
    new_info: DatasetInfo,
    rows: list[dict[str, Any]],
    hists: dict[int, dict[str, np.ndarray]],
    tmp: Path,
) -> None:
    """tasks (copied), episode rows and histograms in the input's meta/episodes shards, info.json."""
    (tmp / TASKS_PATH).parent.mkdir(parents=True, exist_ok=True)
    if (src / TASKS_PATH).is_file():
        shutil.copyfile(src / TASKS_PATH, tmp / TASKS_PATH)
    old_hists = read_image_histograms(src, info.video_keys)
    shards: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in rows:
        shards.setdefault((r.get("meta/episodes/chunk_index") or 0, r.get("meta/episodes/file_index") or 0), []).append(r)
    cams = new_info.camera_keys
    for loc, shard in shards.items():
        write_episode_rows(tmp, shard, new_info.features, loc)
        hist_rows = []
        for r in shard:
            ep = r["episode_index"]
            h = {k: v.reshape(-1).tolist() for k, v in hists.get(ep, {}).items()}
            h |= {k: old_hists[k][ep].reshape(-1).tolist() for k in info.video_keys if ep in old_hists.get(k, {})}
            if h:
                hist_rows.append({"episode_index": ep, **h})
        write_histograms(tmp, hist_rows, cams, loc)
    new_info.save(tmp)
