"""The rewrite engine every subsetting or column edit runs on: a source root, the source episodes
to keep (in output order) and a `Transform` in; a complete v3 dataset out, in a directory the
caller owns (the temp directory of `output.new_dataset`). The source is only read.

What the output holds, and why it is exact:

- Data: one row group per episode, files rolled over at the input's `data_files_size_in_mb` and
  `chunks_size` (copied into the output's info.json), numbered from (0, 0) without gaps.
  `episode_index` is 0..n-1 in kept order, `index` contiguous from 0, `frame_index`/`timestamp`
  unchanged, `task_index` numbered by first appearance in the output (LeRobot uses `set()` order,
  which changes between runs). Columns info.json does not declare (`language_persistent`,
  `language_events` of annotated datasets) are carried through with their own types.
- Videos: copied, never re-encoded. A source file whose episodes are all kept, consecutively, is
  copied byte for byte; otherwise each kept episode's segment is copied packet by packet
  (`video.cut`, whose docstring says what happens where a segment does not start on a keyframe),
  files rolled over at `video_files_size_in_mb`; from/to timestamps are the frames' exact pts.
- Episodes metadata: every LeRobot column (`format.episodes.episodes_schema`). Per-episode stats of
  numeric features are recomputed from the kept frames, so `index`, `episode_index` and
  `task_index` stats hold the new values (LeRobot leaves them stale); image stats and our
  histogram sidecar rows are copied from the source (renumbered). Inputs without histograms
  (LeRobot-written) get them decoded from the output's video (`tools.image_stats`).
- `meta/stats.json`: `stats.dataset.compute_dataset_stats` over the output (exact quantiles;
  LeRobot averages per-episode quantiles). `tasks.parquet` holds the tasks in use only; info.json
  keeps `robot_type`, the video info blocks and every extra key (LeRobot's `create` drops `tools`).
"""

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.format.atomic import write_parquet_atomic
from lerobot_assets.format.episodes import episodes_schema
from lerobot_assets.format.features import Feature, arrow_type, data_schema
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import DATA_PATH, VIDEO_PATH, episodes_path, image_hist_path, next_chunk_file
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.format.stats_json import flatten_stats, write_stats
from lerobot_assets.format.tasks import tasks_table
from lerobot_assets.recording.paths import check_templates, data_rel, video_rel
from lerobot_assets.stats.dataset import column_to_numpy, compute_dataset_stats, numeric_feature_keys, read_image_histograms
from lerobot_assets.stats.numeric import numeric_stats
from lerobot_assets.tools.image_stats import ensure_image_histograms
from lerobot_assets.tools.output import Progress, no_progress
from lerobot_assets.video.cut import PacketIndex, Span, find_span, index_packets, write_spans

MB = 1024 * 1024
# Episode values of an added feature: (source episode index, that episode's source rows) -> one
# value per row, anything `pa.array` takes (or a numpy array).
EpisodeValues = Callable[[int, pa.Table], Any]


@dataclass(frozen=True)
class AddedFeature:
    feature: Feature
    values: EpisodeValues


@dataclass
class Transform:
    """What changes besides the episode selection.

    `drop`: declared features to remove (cameras lose their videos, stats and histograms).
    `add`: new features, appended after the existing ones (as LeRobot's `add_features` does).
    `episode_tasks`: source episode index -> the one task all its frames get.
    """

    drop: Sequence[str] = ()
    add: Mapping[str, AddedFeature] = field(default_factory=dict)
    episode_tasks: Mapping[int, str] = field(default_factory=dict)


@dataclass
class RewriteSummary:
    episodes: int
    frames: int
    notes: list[str] = field(default_factory=list)


def rewrite_dataset(
    src: Path,
    dst: Path,
    keep: Sequence[int],
    transform: Transform | None = None,
    progress: Progress | None = None,
    meta: DatasetMeta | None = None,
) -> RewriteSummary:
    """Write the dataset at local root `src`, restricted to source episodes `keep` (in that output
    order) and changed by `transform`, into the existing empty directory `dst`. `meta`: the
    source's metadata when the caller has read it already."""
    transform = transform or Transform()
    progress = progress or no_progress
    src, dst = Path(src), Path(dst)
    meta = meta or DatasetMeta(src)
    check_templates(meta.info, src, writing=False)
    rows = {int(r["episode_index"]): r for r in meta.episodes.to_pylist()}
    keep = [int(e) for e in keep]
    if not keep:
        raise ValueError("no episodes to write")
    if len(set(keep)) != len(keep):
        raise ValueError("an episode is kept twice")
    for e in keep:
        if e not in rows:
            raise ValueError(f"unknown episode {e} of {len(rows)} in {src}")
    info = _output_info(meta.info, transform)
    notes: list[str] = []

    data = _DataWriter(meta, info, transform, dst)
    out_rows: list[dict[str, Any]] = []
    for i, ep in enumerate(keep):
        out_rows.append(data.write_episode(ep, rows[ep], i))
        progress("data", i + 1, len(keep))
    data.close()

    for key in info.video_keys:
        notes.extend(_write_videos(meta, info, key, keep, rows, out_rows, dst, progress))

    hists = read_image_histograms(src, info.camera_keys)
    for ep, row in zip(keep, out_rows):
        for key in info.camera_keys:
            row.update({c: v for c, v in rows[ep].items() if c.startswith(f"stats/{key}/")})
    _write_episodes(info, out_rows, [{k: h[ep] for k, h in hists.items() if ep in h} for ep in keep], meta, dst)
    write_parquet_atomic(dst / "meta/tasks.parquet", tasks_table(data.tasks))
    info.total_episodes, info.total_frames, info.total_tasks = len(keep), data.frames, len(data.tasks)
    info.splits = {"train": f"0:{len(keep)}"}
    info.save(dst)

    if info.camera_keys:
        ensure_image_histograms(dst, progress)
    write_stats(dst, compute_dataset_stats(dst))
    return RewriteSummary(len(keep), data.frames, notes)


def _output_info(src: DatasetInfo, transform: Transform) -> DatasetInfo:
    info = src.model_copy(deep=True)
    features = {k: f for k, f in src.features.items() if k not in set(transform.drop)}
    for key, added in transform.add.items():
        if key in features:
            raise ValueError(f"feature {key!r} exists already")
        features[key] = added.feature
    info.features = features
    # Our layout, whatever the input's templates were (they are read through its own templates).
    info.data_path = DATA_PATH
    info.video_path = VIDEO_PATH if info.video_keys else None
    return info


class _DataWriter:
    """Writes the data parquet episode by episode (one row group each), rolling files over."""

    def __init__(self, meta: DatasetMeta, info: DatasetInfo, transform: Transform, dst: Path) -> None:
        self.meta, self.info, self.transform, self.dst = meta, info, transform, dst
        self.src_root = Path(meta.root)
        declared = set(meta.info.features)
        src_files = sorted({(r["data/chunk_index"], r["data/file_index"]) for r in meta.episodes.to_pylist()})
        # Undeclared columns (annotations) keep their own types, unified over the source files.
        extras: dict[str, list[pa.Field]] = {}
        for c, f in src_files:
            for fld in pq.read_schema(self.src_root / data_rel(meta.info, c, f)):
                if fld.name not in declared:
                    extras.setdefault(fld.name, []).append(fld)
        for key in transform.add:
            if key in extras:
                raise ValueError(f"feature {key!r} exists already as an undeclared data column")
        base = data_schema(info.features)
        fields = list(base) + [pa.unify_schemas([pa.schema([f]) for f in fs], promote_options="permissive").field(0) for fs in extras.values()]
        self.schema = pa.schema(fields, metadata=base.metadata)
        self.numeric = numeric_feature_keys(info.features)
        self.limit = info.data_files_size_in_mb * MB
        self.tasks: list[str] = []
        self._task_ids: dict[str, int] = {}
        self.frames = 0
        self.loc: tuple[int, int] | None = None
        self._writer: pq.ParquetWriter | None = None
        self._bytes = 0.0
        self._cache: tuple[tuple[int, int], pa.Table, dict[int, np.ndarray], float] | None = None

    def _source(self, c: int, f: int) -> tuple[pa.Table, dict[int, np.ndarray], float]:
        """The source data file (the last one read stays cached: kept episodes come in file order)
        with its rows per episode."""
        if self._cache is None or self._cache[0] != (c, f):
            path = self.src_root / data_rel(self.meta.info, c, f)
            table = pq.read_table(path)
            per_row = path.stat().st_size / max(1, table.num_rows)
            eps = column_to_numpy(table.column("episode_index")).astype(np.int64)
            order = np.argsort(eps, kind="stable")
            values, starts = np.unique(eps[order], return_index=True)
            bounds = [*starts.tolist(), len(order)]
            rows = {int(v): order[bounds[i] : bounds[i + 1]] for i, v in enumerate(values.tolist())}
            self._cache = ((c, f), table, rows, per_row)
        return self._cache[1], self._cache[2], self._cache[3]

    def write_episode(self, ep: int, src_row: dict[str, Any], new_index: int) -> dict[str, Any]:
        table, by_episode, per_row = self._source(src_row["data/chunk_index"], src_row["data/file_index"])
        part = table.take(pa.array(by_episode.get(ep, np.zeros(0, np.int64))))
        n = part.num_rows
        if n != src_row["length"]:
            raise ValueError(f"{self.src_root}: episode {ep} has {n} data rows but its metadata says length {src_row['length']}")
        tasks = self._frame_tasks(ep, part)
        for t in tasks:
            if t not in self._task_ids:
                self._task_ids[t] = len(self.tasks)
                self.tasks.append(t)
        new = {
            "episode_index": pa.array(np.full(n, new_index, dtype=np.int64)),
            "index": pa.array(np.arange(self.frames, self.frames + n, dtype=np.int64)),
            "task_index": pa.array(np.array([self._task_ids[t] for t in tasks], dtype=np.int64)),
        }
        for key, added in self.transform.add.items():
            new[key] = _added_column(key, added, ep, part)
        columns = []
        for fld in self.schema:
            col = new[fld.name] if fld.name in new else part.column(fld.name)
            try:
                columns.append(col.cast(fld.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                raise ValueError(f"episode {ep}: column {fld.name!r} does not convert to {fld.type}: {e}") from None
        out = pa.Table.from_arrays(columns, schema=self.schema)

        est = per_row * n
        if self.loc is None or (self._bytes > 0 and self._bytes + est >= self.limit):
            self._open_next()
        assert self._writer is not None and self.loc is not None
        self._writer.write_table(out, row_group_size=max(1, n))
        self._bytes += est
        stats = {k: numeric_stats(column_to_numpy(out.column(k))) for k in self.numeric}
        row: dict[str, Any] = {
            "episode_index": new_index,
            "tasks": list(dict.fromkeys(tasks)),
            "length": n,
            "data/chunk_index": self.loc[0],
            "data/file_index": self.loc[1],
            "dataset_from_index": self.frames,
            "dataset_to_index": self.frames + n,
            **flatten_stats(stats),
        }
        self.frames += n
        return row

    def _frame_tasks(self, ep: int, part: pa.Table) -> list[str]:
        n = part.num_rows
        if ep in self.transform.episode_tasks:
            return [self.transform.episode_tasks[ep]] * n
        idx = column_to_numpy(part.column("task_index")).astype(np.int64)
        bad = idx[(idx < 0) | (idx >= len(self.meta.tasks))]
        if bad.size:
            raise ValueError(f"{self.src_root}: episode {ep} has task_index {int(bad[0])}, not in meta/tasks.parquet")
        return [self.meta.tasks[i] for i in idx]

    def _open_next(self) -> None:
        self.close()
        self.loc = (0, 0) if self.loc is None else next_chunk_file(*self.loc, self.info.chunks_size)
        path = self.dst / data_rel(self.info, *self.loc)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(path, self.schema, compression="snappy", use_dictionary=True)
        self._bytes = 0.0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _added_column(key: str, added: AddedFeature, ep: int, part: pa.Table) -> pa.Array:
    values = added.values(ep, part)
    feature = added.feature
    typ = arrow_type(feature, key)
    n = part.num_rows
    if isinstance(values, pa.Array):
        # Built by the caller in the column's type (language columns: lists of structs).
        arr = values.cast(typ)
    elif feature.dtype == "string":
        arr = pa.array(list(values), pa.string())
    else:
        data = np.asarray(values)
        want = (n,) if feature.shape == [1] else (n, *feature.shape)
        if data.shape == (n, 1) and feature.shape == [1]:
            data = data.reshape(n)
        if data.shape != want:
            raise ValueError(f"feature {key!r}: episode {ep} got values of shape {data.shape}, expected {want}")
        base = typ.value_type if pa.types.is_fixed_size_list(typ) else typ
        flat = pa.array(data.reshape(-1), type=base, from_pandas=False)
        arr = flat if feature.shape == [1] else pa.FixedSizeListArray.from_arrays(flat, feature.shape[0])
    if len(arr) != n:
        raise ValueError(f"feature {key!r}: episode {ep} got {len(arr)} values for {n} frames")
    return arr


def _write_videos(
    meta: DatasetMeta,
    info: DatasetInfo,
    key: str,
    keep: list[int],
    rows: dict[int, dict[str, Any]],
    out_rows: list[dict[str, Any]],
    dst: Path,
    progress: Progress,
) -> list[str]:
    """Copy camera `key`'s kept segments; fill the out rows' videos/<key>/* columns."""
    src_info = meta.info
    src_root = Path(meta.root)
    fps = float(src_info.fps)

    def file_of(ep: int) -> tuple[int, int]:
        r = rows[ep]
        return (r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"])

    in_file: dict[tuple[int, int], list[int]] = {}
    for ep in sorted(rows, key=lambda e: (file_of(e), rows[e][f"videos/{key}/from_timestamp"])):
        in_file.setdefault(file_of(ep), []).append(ep)

    # Items in output order: a whole source file (all its episodes, in order) or one episode.
    items: list[tuple[str, tuple[int, int], list[int]]] = []
    i = 0
    while i < len(keep):
        loc = file_of(keep[i])
        whole = in_file[loc]
        if keep[i : i + len(whole)] == whole:
            items.append(("copy", loc, whole))
            i += len(whole)
        else:
            items.append(("span", loc, [keep[i]]))
            i += 1

    indexes: dict[tuple[int, int], PacketIndex] = {}
    groups: list[tuple[str, list[tuple[int, Any]]]] = []  # ("copy", [(ep, path)...]) or ("spans", [(ep, Span)])
    current: list[tuple[int, Span]] = []
    size = 0
    limit = info.video_files_size_in_mb * MB
    for kind, loc, eps in items:
        path = src_root / video_rel(src_info, key, *loc)
        if kind == "copy":
            if current:
                groups.append(("spans", current))
                current, size = [], 0
            groups.append(("copy", [(ep, path) for ep in eps]))
            continue
        if loc not in indexes:
            indexes[loc] = index_packets(path)
        ep = eps[0]
        r = rows[ep]
        span = find_span(indexes[loc], r[f"videos/{key}/from_timestamp"], r[f"videos/{key}/to_timestamp"], fps)
        if span.frames != r["length"]:
            raise ValueError(
                f"{path}: episode {ep} has {r['length']} frames but its video segment "
                f"[{r[f'videos/{key}/from_timestamp']:.6f}, {r[f'videos/{key}/to_timestamp']:.6f}) s holds {span.frames}"
            )
        if current and (size + span.bytes >= limit or span.key != current[0][1].key):
            groups.append(("spans", current))
            current, size = [], 0
        current.append((ep, span))
        size += span.bytes
    if current:
        groups.append(("spans", current))

    out_of = {ep: out_rows[i] for i, ep in enumerate(keep)}
    loc_out: tuple[int, int] | None = None
    copied = cut = leading = 0
    for done, (kind, members) in enumerate(groups, 1):
        loc_out = (0, 0) if loc_out is None else next_chunk_file(*loc_out, info.chunks_size)
        target = dst / video_rel(info, key, *loc_out)
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "copy":
            shutil.copyfile(members[0][1], target)
            placed = [(rows[ep][f"videos/{key}/from_timestamp"], rows[ep][f"videos/{key}/to_timestamp"]) for ep, _ in members]
            copied += 1
        else:
            placed = write_spans([s for _, s in members], target)
            cut += 1
            leading += sum(1 for _, s in members if s.start < s.frame_start or s.end > s.frame_end)
        for (ep, _), (start, stop) in zip(members, placed):
            out_of[ep].update({
                f"videos/{key}/chunk_index": loc_out[0],
                f"videos/{key}/file_index": loc_out[1],
                f"videos/{key}/from_timestamp": float(start),
                f"videos/{key}/to_timestamp": float(stop),
            })
        progress(f"video {key}", done, len(groups))
    notes = [f"{key}: {copied} files copied whole, {cut} cut by packet copy (no re-encode)"]
    if leading:
        notes.append(f"{key}: {leading} segments not starting on a keyframe, copied from the keyframe before")
    return notes


def _write_episodes(
    info: DatasetInfo,
    out_rows: list[dict[str, Any]],
    hists: list[dict[str, np.ndarray]],
    meta: DatasetMeta,
    dst: Path,
) -> None:
    """Episode rows (and histogram sidecar rows) in files rolled over like LeRobot's."""
    schema = episodes_schema(info.features)
    src_files = sorted(Path(meta.root).glob("meta/episodes/chunk-*/file-*.parquet"))
    per_row = sum(p.stat().st_size for p in src_files) / max(1, meta.num_episodes)
    per_file = max(1, int(info.data_files_size_in_mb * MB // max(per_row, 1.0)))
    cams = info.camera_keys
    hschema = pa.schema([pa.field("episode_index", pa.int64())] + [pa.field(k, pa.list_(pa.int64())) for k in cams])
    loc = (0, 0)
    for start in range(0, len(out_rows), per_file):
        batch = out_rows[start : start + per_file]
        for row in batch:
            row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = loc
        write_parquet_atomic(
            dst / episodes_path(*loc), pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in batch], schema=schema)
        )
        hist_rows = [
            {"episode_index": row["episode_index"], **{k: h[k].reshape(-1).tolist() for k in cams if k in h}}
            for row, h in zip(batch, hists[start : start + per_file])
            if any(k in h for k in cams)
        ]
        if hist_rows:
            write_parquet_atomic(
                dst / image_hist_path(*loc),
                pa.Table.from_pylist([{c: r.get(c) for c in hschema.names} for r in hist_rows], schema=hschema),
            )
        loc = next_chunk_file(*loc, info.chunks_size)
