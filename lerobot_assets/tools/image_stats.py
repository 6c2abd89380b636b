"""Per-episode image statistics of a finished dataset, recomputed from its frames.

Our writer keeps a 256-level pixel histogram per (episode, camera) in a sidecar
(`meta/image_histograms/...`, aligned with the episodes files), so image quantiles aggregate
exactly. A LeRobot-written dataset, or one whose videos were re-encoded, lacks them (or holds
stale ones); `ensure_image_histograms` decodes the frames and fills them in with the writer's own
accumulator, so a recomputed histogram is what a recording of the decoded frames would hold.

Video files are decoded once each, front to back (one PyAV pass, frames sliced into episodes by
their `from/to_timestamp`), never one seek per episode; `image` features are read from the data
parquet (lossless PNG, so the values equal the recorded frames').
"""

import io
import os
import threading
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.format.atomic import write_parquet_atomic
from lerobot_assets.format.episodes import episode_files, read_episodes, read_episodes_file
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import image_hist_path
from lerobot_assets.format.stats_json import STAT_KEYS, flatten_stats
from lerobot_assets.format.templates import format_path
from lerobot_assets.stats.dataset import read_image_histograms
from lerobot_assets.stats.image import ImageStatsAccumulator, image_stats_from_histogram
from lerobot_assets.tools.output import Progress, no_progress

# Threads decoding parts of the videos at once (each part a run of episodes of one file).
_PARTS = max(1, min(4, os.cpu_count() or 1))
# A frame belongs to the episode whose [from, to) holds its pts, shifted back half a frame so that
# float rounding of the timestamps never moves a frame across a boundary.
_HALF_FRAME = 0.5


class EpisodeSpan:
    """One episode's frames inside one video file."""

    def __init__(self, episode: int, start: float, end: float, length: int) -> None:
        self.episode, self.start, self.end, self.length = episode, start, end, length
        self.acc = ImageStatsAccumulator()


def decode_file_histograms(path: Path, spans: list[EpisodeSpan], fps: int, progress: Any = None) -> None:
    """Decode `path` front to back once and feed each frame to the accumulator of the span holding
    it. Spans are sorted by start; decoding starts at the keyframe before the first span and stops
    after the last. ValueError naming the file and episode when a span's frame count is wrong."""
    spans = sorted(spans, key=lambda s: s.start)
    shift = _HALF_FRAME / fps
    bounds = np.array([s.start - shift for s in spans])
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = Fraction(stream.time_base) if stream.time_base is not None else Fraction(1, fps)
        first, last = spans[0].start - shift, spans[-1].end - shift
        if first > 0:
            container.seek(max(int(first / time_base), 0), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * time_base)
            if t < first:
                continue
            if t >= last:
                break
            i = int(np.searchsorted(bounds, t, side="right")) - 1
            span = spans[i]
            if t >= span.end - shift:
                continue  # between episodes (a frame no episode names)
            span.acc.update(frame.to_ndarray(format="rgb24"))
            if progress is not None:
                progress(1)
    for s in spans:
        if s.acc.frames != s.length:
            raise ValueError(
                f"{path}: episode {s.episode} has {s.length} frames but the video holds {s.acc.frames} "
                f"in [{s.start:.6f}, {s.end:.6f}) s"
            )


def _image_histograms(root: Path, info: DatasetInfo, key: str, rows: list[dict], progress: Any) -> dict[int, ImageStatsAccumulator]:
    """`image` feature `key` (PNG in the data parquet) of the episodes in `rows`."""
    from PIL import Image  # only image features need it

    wanted = {int(r["episode_index"]) for r in rows}
    out = {ep: ImageStatsAccumulator() for ep in wanted}
    files = sorted({(int(r["data/chunk_index"]), int(r["data/file_index"])) for r in rows})
    for c, f in files:
        path = root / format_path(info.data_path, "data", c, f)
        table = pq.read_table(path, columns=["episode_index", key])
        for ep, cell in zip(table.column("episode_index").to_pylist(), table.column(key).to_pylist()):
            if ep not in out:
                continue
            data = cell.get("bytes") if isinstance(cell, dict) else cell
            if data is None:
                raise ValueError(f"{path}: episode {ep}: image {key!r} has no embedded bytes")
            out[ep].update(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
            progress(1)
    return out


def _hist_schema(keys: list[str]) -> pa.Schema:
    return pa.schema([pa.field("episode_index", pa.int64())] + [pa.field(k, pa.list_(pa.int64())) for k in keys])


def replace_stats_columns(
    table: pa.Table, new_rows: dict[int, dict[str, Any]], keys: list[str], visual: Iterable[str] = ()
) -> pa.Table:
    """`table` (one episodes file) with the `stats/<key>/*` cells of the episodes in `new_rows`
    ({episode: flatten_stats(...)}) replaced; other rows, columns and column order kept. A stats
    column the file lacks is added before the trailing `meta/episodes/*` columns (where LeRobot's
    schema has them), features in `keys` order, stats in LeRobot's order. `visual` names the
    image/video features (their cells are (C,1,1) nested lists)."""
    visual = set(visual)
    eps = table.column("episode_index").to_pylist()
    order = {s: i for i, s in enumerate(STAT_KEYS)}
    names = sorted(
        {n for r in new_rows.values() for n in r},
        key=lambda n: (keys.index(n[len("stats/"):].rsplit("/", 1)[0]), order.get(n.rsplit("/", 1)[1], len(order))),
    )
    for name in names:
        feature, stat = name[len("stats/"):].rsplit("/", 1)
        if stat == "count":
            typ = pa.list_(pa.int64())
        elif feature in visual:
            typ = pa.list_(pa.list_(pa.list_(pa.float64())))
        else:
            typ = pa.list_(pa.float64())
        present = name in table.column_names
        old = table.column(name).to_pylist() if present else [None] * len(eps)
        col = pa.array([new_rows[e][name] if e in new_rows else v for e, v in zip(eps, old)], type=typ)
        if present:
            table = table.set_column(table.column_names.index(name), name, col)
        else:
            at = next((i for i, n in enumerate(table.column_names) if n.startswith("meta/episodes/")), table.num_columns)
            table = table.add_column(at, name, col)
    return table


def _split(spans: list[EpisodeSpan], parts: int) -> list[list[EpisodeSpan]]:
    """`spans` (by start) cut into up to `parts` runs of consecutive episodes, of similar frame counts."""
    spans = sorted(spans, key=lambda s: s.start)
    total = sum(s.length for s in spans)
    out: list[list[EpisodeSpan]] = [[]]
    done = 0
    for s in spans:
        if out[-1] and done >= total * len(out) / parts:
            out.append([])
        out[-1].append(s)
        done += s.length
    return out


def is_depth_camera(info: DatasetInfo, key: str) -> bool:
    """Depth video (LeRobot's quantised gray12le): its stats are not 8-bit image stats."""
    block = info.features[key].info or {}
    return bool(block.get("is_depth_map") or block.get("video.is_depth_map"))


def video_spans(info: DatasetInfo, key: str, rows: Iterable[dict]) -> dict[tuple[int, int], list[EpisodeSpan]]:
    """{(chunk, file): spans} of camera `key` over episode rows (episodes without its video skipped)."""
    by_file: dict[tuple[int, int], list[EpisodeSpan]] = defaultdict(list)
    for r in rows:
        c, f = r.get(f"videos/{key}/chunk_index"), r.get(f"videos/{key}/file_index")
        if c is None or f is None:
            continue  # this episode has no video of this camera
        span = EpisodeSpan(int(r["episode_index"]), float(r[f"videos/{key}/from_timestamp"]),
                           float(r[f"videos/{key}/to_timestamp"]), int(r["length"]))
        by_file[(int(c), int(f))].append(span)
    return dict(by_file)


def ensure_image_histograms(root: Path, progress: Progress | None = None, force: bool = False) -> int:
    """Fill in the per-episode image histograms (sidecar) and `stats/<camera>/*` episode columns of
    every (episode, camera) that lacks a histogram (every one with `force`), by decoding the frames.

    `root` is a finished local dataset. Values are the writer's (`ImageStatsAccumulator` over the
    decoded frames). Depth cameras are skipped (their stats are not 8-bit image stats). Every
    rewritten file is written atomically. Returns the number of (episode, camera) pairs computed.
    """
    root = Path(root)
    report = progress or no_progress
    info = DatasetInfo.load(root)
    keys = [k for k in info.camera_keys if not is_depth_camera(info, k)]
    if not keys:
        return 0
    have = {} if force else read_image_histograms(root, keys)
    if not force:
        # The common case after an edit of our own datasets: every histogram is there. Episode
        # indices only, before reading whole rows (their stats columns are most of the metadata).
        indices = read_episodes(root, ["episode_index"]).column("episode_index").to_pylist()
        if all(int(e) in have.get(k, {}) for k in keys for e in indices):
            return 0
    rows = [r for p in episode_files(root) for r in read_episodes_file(p).to_pylist()]
    todo = {k: [r for r in rows if force or int(r["episode_index"]) not in have.get(k, {})] for k in keys}
    if not any(todo.values()):
        return 0
    total = sum(int(r["length"]) for k in keys for r in todo[k])
    done = 0

    lock = threading.Lock()

    def tick(n: int) -> None:
        nonlocal done
        with lock:
            done += n
            if done % 64 == 0 or done == total:
                report("image stats", done, total)

    computed: dict[str, dict[int, ImageStatsAccumulator]] = {}
    units: list[tuple[Path, list[EpisodeSpan]]] = []
    for key in keys:
        if not todo[key]:
            continue
        if info.features[key].dtype == "image":
            computed[key] = _image_histograms(root, info, key, todo[key], tick)
            continue
        if info.video_path is None:
            raise ValueError(f"{root}: video feature {key!r} but info.json video_path is null")
        computed[key] = {}
        for (c, f), spans in sorted(video_spans(info, key, todo[key]).items()):
            path = root / format_path(info.video_path, "video", c, f, key)
            units += [(path, part) for part in _split(spans, _PARTS)]
            computed[key].update({s.episode: s.acc for s in spans})
    # Each unit decodes its episodes front to back from the keyframe before the first; units run
    # on threads (PyAV decodes without the GIL), a file's parts side by side.
    with ThreadPoolExecutor(max_workers=_PARTS) as pool:
        for _ in pool.map(lambda u: decode_file_histograms(u[0], u[1], info.fps, tick), units):
            pass
    write_image_histograms(root, computed)
    return sum(len(v) for v in computed.values())


def write_image_histograms(root: Path, computed: dict[str, dict[int, ImageStatsAccumulator]]) -> None:
    """Store `computed` ({camera: {episode: accumulator}}): each episodes file holding one of those
    episodes gets its `stats/<camera>/*` cells replaced, and its sidecar rewritten (histograms not
    in `computed` kept from the old sidecar). Each file written atomically (sidecar first)."""
    root = Path(root)
    info = DatasetInfo.load(root)
    keys = [k for k in info.camera_keys if not is_depth_camera(info, k) or k in computed]
    have = read_image_histograms(root, keys)
    shards = [(Path(p), read_episodes_file(p)) for p in episode_files(root)]
    _write(root, keys, shards, computed, have)


def _write(
    root: Path,
    keys: list[str],
    shards: Iterable[tuple[Path, pa.Table]],
    computed: dict[str, dict[int, ImageStatsAccumulator]],
    have: dict[str, dict[int, np.ndarray]],
) -> None:
    """Rewrite each episodes file whose episodes got new histograms, and its sidecar."""
    for path, table in shards:
        eps = [int(e) for e in table.column("episode_index").to_pylist()]
        new_rows: dict[int, dict[str, Any]] = {}
        for key, accs in computed.items():
            for ep in eps:
                acc = accs.get(ep)
                if acc is None or acc.hist is None:
                    continue
                stats = image_stats_from_histogram(acc.hist, acc.frames)
                new_rows.setdefault(ep, {}).update(flatten_stats({key: stats}))
        if not new_rows:
            continue
        chunk, file = _shard_location(path)
        hist_rows = []
        for ep in eps:
            row: dict[str, Any] = {"episode_index": ep}
            for key in keys:
                acc = computed.get(key, {}).get(ep)
                if acc is not None and acc.hist is not None:
                    row[key] = acc.hist.reshape(-1).tolist()
                elif ep in have.get(key, {}):
                    row[key] = have[key][ep].reshape(-1).tolist()
                else:
                    row[key] = None
            hist_rows.append(row)
        write_parquet_atomic(root / image_hist_path(chunk, file), pa.Table.from_pylist(hist_rows, schema=_hist_schema(keys)))
        write_parquet_atomic(path, replace_stats_columns(table, new_rows, keys, keys))


def _shard_location(path: Path) -> tuple[int, int]:
    """(chunk, file) of `meta/episodes/chunk-XXX/file-YYY.parquet`."""
    return int(path.parent.name.split("-", 1)[1]), int(path.stem.split("-", 1)[1])
