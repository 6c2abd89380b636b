"""Map-style reader of a LeRobot v3.0 dataset: `ds[i]` returns what LeRobot's `LeRobotDataset[i]` returns.

Design (why it is fast):
- The episodes metadata is read once (only the columns the reader needs, never the stats columns).
- Every non-video column of the data parquet files is read once per process, on first access, into
  one contiguous array per feature ordered like the dataset's frames. `ds[i]` is then a handful of
  tensor index operations; no parquet access happens per item.
- Video frames come from decoders created lazily in the process that decodes (each DataLoader
  worker gets its own; decoders and file handles are never pickled nor shared across a fork).
- `__getitems__` (used by torch's DataLoader for a whole batch) decodes all frames a batch needs
  from one video file in a single call, so the decoder visits them in file order.

Remote roots (any fsspec URL: s3://, hf://, memory://...): metadata and data parquet are read
through fsspec with the same format readers (`files.py`). Video comes from whole files ("file") or
through the per-episode byte index ("byte_index", fetching only the sampled episodes' bytes); both
return bit-identical frames. How each works and how the choice is made: `video_source.py`.
"""

import operator
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from lerobot_assets.byteindex.reader import EpisodeReader
from lerobot_assets.format.episodes import read_episodes
from lerobot_assets.format.features import Feature
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.loading.columns import DatasetLayoutError, column_to_numpy, language_values, torch_dtype_for
from lerobot_assets.loading.files import DatasetFiles
from lerobot_assets.loading.video_source import (
    VIDEO_SOURCES,
    FileFrames,
    IndexFrames,
    VideoSource,
    choose_video_source,
)
from lerobot_assets.video.cache import cache_size_from_env
from lerobot_assets.video.decode import unit_float

Item = dict[str, torch.Tensor | str]

# Episode bytes (headers + segments) held per process by the byte-index source: at ~1-5 MB per
# camera-episode this keeps a few dozen episodes, enough for a batch's and the prefetched ones.
DEFAULT_EPISODE_CACHE_BYTES = 256 << 20


class LeRobotV3Dataset(Dataset):
    """A LeRobot v3.0 dataset root as a torch map-style Dataset.

    `ds[i]` is a dict with one tensor per feature (vectors (D,), scalars 0-d, images CHW float32 in
    [0, 1] or uint8 with `return_uint8=True`) and `task` (str). With `delta_timestamps={key: [dt, ...]}`
    the value of `key` is stacked over the offsets (T, ...) and `<key>_is_pad` (T,) marks offsets that
    fall outside the frame's episode (their value is the episode's first/last frame, as in LeRobot).

    `root` is a local path or an fsspec URL (`storage_options` go to fsspec), or a dataset's published
    prefix (format.versions): its pointer is followed once, here, and `self.root` is the version read
    from then on, wherever the pointer moves. `video_source`:
    "byte_index" decodes through `meta/byte_index/` (fetching only the sampled episodes' bytes),
    "file" opens whole video files, "auto" uses the byte index for a remote root that has a usable
    one (it covers the selected episodes and the video files still have the indexed sizes), files
    otherwise (local roots: files are as cheap to read sparsely, and decoders stay open per file).
    Both sources return bit-identical frames.
    `decoder_cache_size`: decoders kept open per process; default the environment's
    LEROBOT_ASSETS_VIDEO_DECODER_CACHE_SIZE, else video/cache.py's default (see there).
    Byte-index knobs: `episode_cache_bytes` (per-process LRU of fetched bytes), `prefetch_workers`
    (parallel fetches: a batch's segments are fetched concurrently) and `prefetch_ahead` (when an
    item enters a new episode, start fetching the next N episodes of this reader's order — useful
    for sequential or episode-ordered sampling, wasted bandwidth for uniform random sampling).
    """

    def __init__(
        self,
        root: Path | str,
        episodes: list[int] | None = None,
        delta_timestamps: dict[str, list[float]] | None = None,
        tolerance_s: float = 1e-4,
        return_uint8: bool = False,
        video_backend: str | None = None,
        decoder_cache_size: int | None = None,
        storage_options: dict[str, Any] | None = None,
        video_source: VideoSource = "auto",
        episode_cache_bytes: int = DEFAULT_EPISODE_CACHE_BYTES,
        prefetch_workers: int = 4,
        prefetch_ahead: int = 0,
    ) -> None:
        if video_source not in VIDEO_SOURCES:
            raise ValueError(f"video_source must be one of {VIDEO_SOURCES}; got {video_source!r}")
        self.storage_options: dict[str, Any] | None = dict(storage_options) if storage_options else None
        meta = DatasetMeta(root, storage_options=self.storage_options)
        self._files = DatasetFiles(meta, self.storage_options)
        # Path for a local root; the URL (str) for a remote one, whose reads go through fsspec.
        self.root: Path | str = self._files.root
        self.remote = self._files.remote
        self.info = meta.info
        self.tasks: list[str] = meta.tasks
        self.fps: int = self.info.fps
        self.features: dict[str, Feature] = dict(self.info.features)
        self.video_keys: list[str] = self.info.video_keys
        self.image_keys: list[str] = self.info.image_keys
        self.tolerance_s = float(tolerance_s)
        self.return_uint8 = bool(return_uint8)
        self.video_backend = video_backend
        # None: video/cache.py's one default and one override (its environment variable), the same
        # as every other decoder cache; an explicit argument wins. (A second default here used to
        # make the documented variable a no-op for the reader.)
        self.decoder_cache_size: int | None = (
            cache_size_from_env() if decoder_cache_size is None else int(decoder_cache_size)
        )
        self.episode_cache_bytes = int(episode_cache_bytes)
        self.prefetch_workers = int(prefetch_workers)
        self.prefetch_ahead = int(prefetch_ahead)
        # Columns stored in the data parquet: every feature that is not a video.
        self._data_keys = [k for k, f in self.features.items() if f.dtype != "video"]
        for required in ("timestamp", "task_index"):
            if required not in self._data_keys:
                raise DatasetLayoutError(f"{self.root}: feature {required!r} missing from meta/info.json")

        self._select_episodes(episodes)
        self.delta_timestamps = delta_timestamps
        self._delta_indices = self._check_delta_timestamps(delta_timestamps)
        # Per-item plan, decided once: (key, kind) with kind in tensor/string/image, "+window" when
        # the key has delta_timestamps. Keeps __getitem__ free of per-key feature lookups.
        self._plan: list[tuple[str, str]] = []
        for key in self._data_keys:
            dtype = self.features[key].dtype
            # language columns (lists of message structs) are served like strings: Python values.
            kind = "string" if dtype in ("string", "language") else dtype if dtype == "image" else "tensor"
            self._plan.append((key, kind + ("+window" if key in self._delta_indices else "")))

        # Filled lazily per process (see _load); dropped when pickled.
        self._columns: dict[str, Any] | None = None
        chosen, index = choose_video_source(
            self._files, video_source, video_backend=self.video_backend, episode_indices=self.episode_indices,
            video_rel=self._video_rel, video_from=self._video_from, video_path=self.info.video_path,
        )
        self.video_source: Literal["file", "byte_index"] = chosen
        self._file_frames = FileFrames(self._files, self.decoder_cache_size)
        self._index_frames: IndexFrames | None = None
        if index is not None:
            self._index_frames = IndexFrames(
                self._files, index, video_backend=self.video_backend, episode_indices=self.episode_indices,
                video_keys=self.video_keys, video_paths=self._video_paths,
                cache_bytes=self.episode_cache_bytes, prefetch_workers=self.prefetch_workers,
                prefetch_ahead=self.prefetch_ahead, decoder_cache_size=self.decoder_cache_size,
            )

    # ------------------------------------------------------------------ metadata
    def _select_episodes(self, episodes: list[int] | None) -> None:
        cols = ["episode_index", "length", "data/chunk_index", "data/file_index",
                "dataset_from_index", "dataset_to_index"]
        for key in self.video_keys:
            cols += [f"videos/{key}/chunk_index", f"videos/{key}/file_index", f"videos/{key}/from_timestamp"]
        if self.remote:
            table = read_episodes(self._files.fs_root, columns=cols, fs=self._files.filesystem())  # type: ignore[arg-type]
        else:
            table = read_episodes(self.root, columns=cols)
        ep_index = table.column("episode_index").to_numpy()
        if episodes is not None:
            wanted = np.asarray(sorted(set(int(e) for e in episodes)), dtype=np.int64)
            unknown = np.setdiff1d(wanted, ep_index)
            if unknown.size:
                raise ValueError(f"{self.root}: episodes {unknown.tolist()} are not in the dataset")
            rows = np.flatnonzero(np.isin(ep_index, wanted))
            table = table.take(pa.array(rows))
            ep_index = ep_index[rows]

        def col(name: str) -> np.ndarray:
            return table.column(name).to_numpy()

        self.episode_indices: np.ndarray = ep_index.astype(np.int64)
        lengths = col("length").astype(np.int64)
        if (lengths <= 0).any():
            bad = self.episode_indices[lengths <= 0].tolist()
            raise DatasetLayoutError(f"{self.root}: episodes {bad} have no frames")
        self._lengths = lengths
        self._data_files = list(zip(col("data/chunk_index").tolist(), col("data/file_index").tolist()))
        # Position range of every selected episode in this reader's frame order.
        ends = np.cumsum(lengths)
        self._ep_start = ends - lengths
        self._ep_end = ends
        self._num_frames = int(ends[-1]) if len(ends) else 0
        # Episode position of every frame: one small int array, shared copy-on-write by workers.
        self._frame_ep = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        self._video_from: dict[str, np.ndarray] = {}
        self._video_rel: dict[str, list[str]] = {}  # relative to the root (the byte index's paths)
        self._video_paths: dict[str, list[str]] = {}  # what the "file" source opens: path or URL
        for key in self.video_keys:
            template = self.info.video_path
            if template is None:
                raise DatasetLayoutError(f"{self.root}: info.json has video feature {key!r} but video_path is null")
            self._video_from[key] = col(f"videos/{key}/from_timestamp").astype(np.float64)
            interned: dict[tuple[int, int], tuple[str, str]] = {}
            rels, paths = [], []
            for c, f in zip(col(f"videos/{key}/chunk_index").tolist(), col(f"videos/{key}/file_index").tolist()):
                if (c, f) not in interned:
                    # info.json's own template, as LeRobot formats it.
                    rel = template.format(video_key=key, chunk_index=c, file_index=f)
                    interned[(c, f)] = (rel, self._files.join(rel))
                rels.append(interned[(c, f)][0])
                paths.append(interned[(c, f)][1])
            self._video_rel[key] = rels
            self._video_paths[key] = paths

    def _check_delta_timestamps(self, delta_timestamps: dict[str, list[float]] | None) -> dict[str, np.ndarray]:
        """Offsets in seconds -> offsets in frames; each must sit on the 1/fps grid (as LeRobot checks)."""
        if not delta_timestamps:
            return {}
        out: dict[str, np.ndarray] = {}
        for key, deltas in delta_timestamps.items():
            if key not in self.features:
                raise ValueError(f"delta_timestamps key {key!r} is not a feature of {self.root}")
            if self.features[key].dtype in ("string", "language"):
                raise ValueError(
                    f"delta_timestamps key {key!r} is a {self.features[key].dtype} feature; it cannot be stacked"
                )
            deltas = list(deltas)
            if not deltas:
                raise ValueError(f"delta_timestamps[{key!r}] is empty")
            frames = []
            for d in deltas:
                k = round(d * self.fps)
                if abs(d - k / self.fps) > self.tolerance_s:
                    raise ValueError(
                        f"delta_timestamps[{key!r}] value {d} is not a multiple of 1/fps={1 / self.fps:.6f} "
                        f"within tolerance_s={self.tolerance_s}"
                    )
                frames.append(k)
            out[key] = np.asarray(frames, dtype=np.int64)
        return out

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def num_episodes(self) -> int:
        return len(self.episode_indices)

    def episode_range(self, position: int) -> tuple[int, int]:
        """[start, end) of the episode at this position (in this reader's frame numbering)."""
        return int(self._ep_start[position]), int(self._ep_end[position])

    def __len__(self) -> int:
        return self._num_frames

    def __repr__(self) -> str:
        return (f"LeRobotV3Dataset(root={str(self.root)!r}, episodes={self.num_episodes}, "
                f"frames={self.num_frames}, fps={self.fps}, cameras={self.info.camera_keys})")

    # ------------------------------------------------------------------ pickling / per-process state
    def __getstate__(self) -> dict[str, Any]:
        # Workers started with spawn/forkserver reload the columns themselves rather than receiving
        # them through a pipe; the video sources and the root's files drop their per-process state
        # (decoders, episode readers, filesystem instances) the same way.
        state = self.__dict__.copy()
        state["_columns"] = None
        return state

    # ------------------------------------------------------------------ video sources
    @property
    def episode_reader(self) -> EpisodeReader | None:
        """This process's byte-index reader (its `stats()`, `bytes_requested`); None for video_source="file"."""
        return self._index_frames.episode_reader() if self._index_frames is not None else None

    def prefetch(self, positions: Sequence[int]) -> None:
        """Start fetching these episodes' bytes (positions in this reader's episode order, every
        camera) in this process's reader; a no-op for video_source="file"."""
        if self._index_frames is not None:
            self._index_frames.prefetch(positions)

    def _decode_episode(self, key: str, position: int, timestamps: list[float]) -> torch.Tensor:
        """Frames of `key` at episode-local `timestamps` (the `timestamp` column) via the byte index."""
        assert self._index_frames is not None
        frames = self._index_frames.decode_episode(key, position, timestamps, tolerance_s=self.tolerance_s)
        return frames if self.return_uint8 else unit_float(frames)

    def close(self) -> None:
        """Release this process's decoders and episode reader (they are recreated on next use)."""
        self._file_frames.close()
        if self._index_frames is not None:
            self._index_frames.close()

    # ------------------------------------------------------------------ data columns
    def _load(self) -> dict[str, Any]:
        """Read every needed data file once and gather its rows into frame order."""
        n = self._num_frames
        out: dict[str, Any] = {}
        by_file: dict[tuple[int, int], list[int]] = {}
        for pos, cf in enumerate(self._data_files):
            by_file.setdefault(cf, []).append(pos)
        parts: dict[str, list[tuple[np.ndarray, Any]]] = {k: [] for k in self._data_keys}
        for (chunk, file), positions in by_file.items():
            rel = self.info.data_path.format(chunk_index=chunk, file_index=file)
            path: Path | str = self._files.join(rel) if self.remote else Path(self.root) / rel
            try:
                if self.remote:
                    with self._files.filesystem().open(f"{self._files.fs_root}/{rel}", "rb") as f:
                        table = pq.read_table(f, columns=self._data_keys)
                else:
                    table = pq.read_table(path, columns=self._data_keys, memory_map=True)
            except (OSError, pa.ArrowInvalid) as e:
                raise DatasetLayoutError(f"{path}: cannot read data file: {e}") from e
            src, dst = self._rows_of(path, table, positions)
            for key in self._data_keys:
                feature = self.features[key]
                column = table.column(key)
                if feature.dtype == "image":
                    values: Any = column.combine_chunks().field("bytes").to_pylist()
                    parts[key].append((dst, [values[r] for r in src]))
                elif feature.dtype == "string":
                    parts[key].append((dst, np.asarray(column.to_pylist(), dtype=object)[src]))
                elif feature.dtype == "language":
                    parts[key].append((dst, language_values(column)[src]))
                else:
                    parts[key].append((dst, column_to_numpy(column, feature.shape)[src]))
        for key in self._data_keys:
            feature = self.features[key]
            if feature.dtype == "image":
                merged: list[Any] = [None] * n
                for dst, values in parts[key]:
                    for d, v in zip(dst.tolist(), values):
                        merged[d] = v
                out[key] = merged
                continue
            first = parts[key][0][1]
            python_values = feature.dtype in ("string", "language")
            dtype = object if python_values else torch_dtype_for(first.dtype)
            full = np.empty((n, *first.shape[1:]), dtype=dtype)
            for dst, values in parts[key]:
                full[dst] = values
            out[key] = full if python_values else torch.from_numpy(full)
        # Plain python lists for the per-item hot path (indexing a list is cheaper than a tensor).
        out["_timestamp_list"] = out["timestamp"].tolist()
        out["_task_index_list"] = out["task_index"].tolist()
        return out

    def _rows_of(self, path: Path | str, table: pa.Table, positions: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(source rows in this file, destination frame positions) of the given episodes."""
        ep_col = table.column("episode_index").to_numpy() if "episode_index" in table.column_names else None
        if ep_col is None:
            raise DatasetLayoutError(f"{path}: no episode_index column")
        fi_col = table.column("frame_index").to_numpy() if "frame_index" in table.column_names else None
        # Sort once by (episode, frame) so each episode is one slice: O(rows log rows), not rows x episodes.
        order = np.lexsort((fi_col, ep_col)) if fi_col is not None else np.argsort(ep_col, kind="stable")
        sorted_eps = ep_col[order]
        src_parts, dst_parts = [], []
        for pos in positions:
            ep = self.episode_indices[pos]
            lo, hi = np.searchsorted(sorted_eps, [ep, ep + 1])
            if hi - lo != self._lengths[pos]:
                raise DatasetLayoutError(
                    f"{path}: episode {ep} has {hi - lo} rows but meta/episodes says length {self._lengths[pos]}"
                )
            src_parts.append(order[lo:hi])
            dst_parts.append(np.arange(self._ep_start[pos], self._ep_end[pos]))
        return np.concatenate(src_parts), np.concatenate(dst_parts)

    def _data(self) -> dict[str, Any]:
        if self._columns is None:
            self._columns = self._load()
        return self._columns

    # ------------------------------------------------------------------ items
    def _window(self, idx: int, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Clamped frame positions and padding mask of `key`'s offsets around frame idx."""
        ep = self._frame_ep[idx]
        start, end = self._ep_start[ep], self._ep_end[ep]
        query = idx + self._delta_indices[key]
        pad = (query < start) | (query >= end)
        return np.clip(query, start, end - 1), pad

    def _plain_values(self, idx: int, cols: dict[str, Any], item: Item) -> None:
        for key, kind in self._plan:
            values = cols[key]
            if kind == "tensor":
                # clone(): a view would pin (and, across processes, ship) the whole column's storage.
                item[key] = values[idx].clone()
            elif kind == "string":
                item[key] = values[idx]
            elif kind == "image":
                item[key] = self._decode_image(values[idx])
            else:
                query, pad = self._window(idx, key)
                if kind == "image+window":
                    item[key] = torch.stack([self._decode_image(values[q]) for q in query.tolist()])
                else:
                    item[key] = values[torch.from_numpy(query)]
                item[f"{key}_is_pad"] = torch.from_numpy(pad)
        item["task"] = self.tasks[cols["_task_index_list"][idx]]

    def _decode_image(self, png: bytes) -> torch.Tensor:
        from PIL import Image  # imported lazily: only image-mode datasets need it

        with Image.open(BytesIO(png)) as im:
            arr = np.asarray(im.convert("RGB") if im.mode not in ("RGB", "L") else im)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        t = torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()
        return t if self.return_uint8 else unit_float(t)

    def _video_queries(self, idx: int, key: str, timestamps: list[float]) -> list[float]:
        """Timestamps in the video file of `key` for frame idx (one, or one per delta offset)."""
        ep = self._frame_ep[idx]
        base = self._video_from[key][ep]
        if key in self._delta_indices:
            query, _ = self._window(idx, key)
            return [base + timestamps[q] for q in query.tolist()]
        return [base + timestamps[idx]]

    def _episode_queries(self, idx: int, key: str, timestamps: list[float]) -> list[float]:
        """Episode-local timestamps of `key` for frame idx (the byte index adds from_timestamp)."""
        if key in self._delta_indices:
            query, _ = self._window(idx, key)
            return [timestamps[q] for q in query.tolist()]
        return [timestamps[idx]]

    def _decode(self, path: str, timestamps: list[float]) -> torch.Tensor:
        frames = self._file_frames.decode(path, timestamps, tolerance_s=self.tolerance_s, backend=self.video_backend)
        return frames if self.return_uint8 else unit_float(frames)

    def __getitem__(self, idx: int) -> Item:
        n = self._num_frames
        idx = operator.index(idx)  # numpy / 0-d tensor indices from samplers become a plain int
        if idx < 0:
            idx += n
        if not 0 <= idx < n:
            raise IndexError(f"index {idx} out of range for a dataset of {n} frames")
        cols = self._data()
        item: Item = {}
        self._plain_values(idx, cols, item)
        timestamps = cols["_timestamp_list"]
        by_index = self._index_frames is not None
        if self._index_frames is not None:
            self._index_frames.prefetch_after(int(self._frame_ep[idx]))
        for key in self.video_keys:
            ep = self._frame_ep[idx]
            if by_index:
                frames = self._decode_episode(key, ep, self._episode_queries(idx, key, timestamps))
            else:
                frames = self._decode(self._video_paths[key][ep], self._video_queries(idx, key, timestamps))
            if key in self._delta_indices:
                item[key] = frames
                item[f"{key}_is_pad"] = torch.from_numpy(self._window(idx, key)[1])
            else:
                item[key] = frames[0]
        return item

    def __getitems__(self, indices: Sequence[int]) -> list[Item]:
        """A batch of items; frames from the same video file are decoded in one call."""
        n = self._num_frames
        idxs = [i + n if i < 0 else i for i in map(operator.index, indices)]
        for i in idxs:
            if not 0 <= i < n:
                raise IndexError(f"index {i} out of range for a dataset of {n} frames")
        if not idxs:
            return []
        cols = self._data()
        items: list[Item] = []
        for i in idxs:
            item: Item = {}
            self._plain_values(i, cols, item)
            items.append(item)
        timestamps = cols["_timestamp_list"]
        by_index = self._index_frames is not None
        if self._index_frames is not None:
            episodes = sorted({int(self._frame_ep[i]) for i in idxs})
            if len(episodes) > 1:
                # Fetch the batch's segments concurrently; the decodes below wait for them.
                self.prefetch(episodes)
            self._index_frames.prefetch_after(int(self._frame_ep[idxs[-1]]))
        for key in self.video_keys:
            # File source: (path) -> list of (item position, number of timestamps) and the flat
            # timestamp list. Byte-index source: the same per episode position.
            groups: dict[Any, tuple[list[tuple[int, int]], list[float]]] = {}
            for pos, i in enumerate(idxs):
                if by_index:
                    group: Any = int(self._frame_ep[i])
                    ts = self._episode_queries(i, key, timestamps)
                else:
                    group = self._video_paths[key][self._frame_ep[i]]
                    ts = self._video_queries(i, key, timestamps)
                slots, flat = groups.setdefault(group, ([], []))
                slots.append((pos, len(ts)))
                flat.extend(ts)
            for group, (slots, flat) in groups.items():
                frames = self._decode_episode(key, group, flat) if by_index else self._decode(group, flat)
                offset = 0
                for pos, count in slots:
                    if key in self._delta_indices:
                        items[pos][key] = frames[offset:offset + count]
                        items[pos][f"{key}_is_pad"] = torch.from_numpy(self._window(idxs[pos], key)[1])
                    else:
                        items[pos][key] = frames[offset]
                    offset += count
        return items
