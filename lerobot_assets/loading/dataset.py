"""Map-style reader of a LeRobot v3.0 dataset: `ds[i]` returns what LeRobot's `LeRobotDataset[i]` returns.

Design (why it is fast):
- The episodes metadata is read once (only the columns the reader needs, never the stats columns).
- Every non-video column of the data parquet files is read once per process, on first access, into
  one contiguous array per feature ordered like the dataset's frames. `ds[i]` is then a handful of
  tensor index operations; no parquet access happens per item.
- Video frames come from `lerobot_assets.video.decode.decode_frames` with a decoder cache that is
  created lazily in the process that decodes (each DataLoader worker gets its own; decoders and file
  handles are never pickled nor shared across a fork).
- `__getitems__` (used by torch's DataLoader for a whole batch) decodes all frames a batch needs
  from one video file in a single call, so the decoder visits them in file order.
"""

import gc
import operator
import os
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from lerobot_assets.format.episodes import read_episodes
from lerobot_assets.format.features import Feature
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.tasks import read_tasks
from lerobot_assets.video.cache import VideoDecoderCache
from lerobot_assets.video.decode import decode_frames, unit_float

Item = dict[str, torch.Tensor | str]

# Decoders held per process; a few cameras x a few files in flight is the common case.
DEFAULT_DECODER_CACHE_SIZE = 64


# Fork safety. A decoder whose threads ran in the parent (dav1d, frame-threaded FFmpeg decoders) must
# never be freed in a forked child: its destructor waits on condition variables of threads that do
# not exist there, and the DataLoader worker hangs forever (seen with PyAV's libdav1d in
# pthread_cond_destroy). Two measures:
# - caches inherited through fork are kept referenced here, never freed (workers leave through
#   os._exit, so they are not finalized either);
# - garbage still waiting for the cycle collector (e.g. a closed PyAV container) is collected in
#   the parent just before a fork, once this process has decoded video through a reader.
_INHERITED_CACHES: list[Any] = []
_decoded_in_this_process = False


def _collect_before_fork() -> None:
    if _decoded_in_this_process:
        gc.collect()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_collect_before_fork)




class DatasetLayoutError(ValueError):
    """The dataset's data files do not match its episodes metadata (run `lerobot-assets validate`)."""


def _torch_dtype_for(np_dtype: np.dtype) -> np.dtype:
    """The numpy dtype whose torch tensor matches what LeRobot returns for values of this dtype.

    LeRobot builds items with `torch.tensor(python_value)`, so floats become float32, integers
    int64 and booleans bool regardless of the stored width.
    """
    if np.issubdtype(np_dtype, np.floating):
        return np.dtype(np.float32)
    if np.issubdtype(np_dtype, np.bool_):
        return np.dtype(np.bool_)
    if np.issubdtype(np_dtype, np.integer):
        return np.dtype(np.int64)
    return np_dtype


def _column_to_numpy(col: pa.ChunkedArray | pa.Array, shape: list[int]) -> np.ndarray:
    """Arrow column of scalars or (nested, fixed or variable) lists -> numpy (n, *value_shape)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) and n:
        lengths = pc.list_value_length(arr)
        lo, hi = pc.min_max(lengths).values()
        if lo != hi:
            raise DatasetLayoutError(f"list column has rows of unequal length ({lo.as_py()}..{hi.as_py()})")
    depth = 0
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        # flatten() honours slicing offsets for every list flavour.
        arr = arr.flatten()
        depth += 1
    values = arr.to_numpy(zero_copy_only=False)
    if depth == 0:
        return values
    per_row = values.size // n if n else int(np.prod(shape))
    value_shape = list(shape) if int(np.prod(shape)) == per_row else [per_row]
    if n * per_row != values.size:
        raise DatasetLayoutError(f"list column has rows of unequal length (expected {value_shape} per row)")
    return values.reshape(n, *value_shape)


class LeRobotV3Dataset(Dataset):
    """A LeRobot v3.0 dataset root as a torch map-style Dataset.

    `ds[i]` is a dict with one tensor per feature (vectors (D,), scalars 0-d, images CHW float32 in
    [0, 1] or uint8 with `return_uint8=True`) and `task` (str). With `delta_timestamps={key: [dt, ...]}`
    the value of `key` is stacked over the offsets (T, ...) and `<key>_is_pad` (T,) marks offsets that
    fall outside the frame's episode (their value is the episode's first/last frame, as in LeRobot).
    """

    def __init__(
        self,
        root: Path | str,
        episodes: list[int] | None = None,
        delta_timestamps: dict[str, list[float]] | None = None,
        tolerance_s: float = 1e-4,
        return_uint8: bool = False,
        video_backend: str | None = None,
        decoder_cache_size: int = DEFAULT_DECODER_CACHE_SIZE,
    ) -> None:
        self.root = Path(root)
        self.info = DatasetInfo.load(self.root)
        self.tasks: list[str] = read_tasks(self.root)
        self.fps: int = self.info.fps
        self.features: dict[str, Feature] = dict(self.info.features)
        self.video_keys: list[str] = self.info.video_keys
        self.image_keys: list[str] = self.info.image_keys
        self.tolerance_s = float(tolerance_s)
        self.return_uint8 = bool(return_uint8)
        self.video_backend = video_backend
        self.decoder_cache_size = int(decoder_cache_size)
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
            kind = dtype if dtype in ("image", "string") else "tensor"
            self._plan.append((key, kind + ("+window" if key in self._delta_indices else "")))

        # Filled lazily per process (see _load / _decoder_cache); dropped when pickled.
        self._columns: dict[str, Any] | None = None
        self._cache: VideoDecoderCache | None = None
        self._cache_pid: int | None = None

    # ------------------------------------------------------------------ metadata
    def _select_episodes(self, episodes: list[int] | None) -> None:
        cols = ["episode_index", "length", "data/chunk_index", "data/file_index",
                "dataset_from_index", "dataset_to_index"]
        for key in self.video_keys:
            cols += [f"videos/{key}/chunk_index", f"videos/{key}/file_index", f"videos/{key}/from_timestamp"]
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
        self._video_paths: dict[str, list[str]] = {}
        for key in self.video_keys:
            self._video_from[key] = col(f"videos/{key}/from_timestamp").astype(np.float64)
            interned: dict[tuple[int, int], str] = {}
            paths = []
            for c, f in zip(col(f"videos/{key}/chunk_index").tolist(), col(f"videos/{key}/file_index").tolist()):
                if (c, f) not in interned:
                    # info.json's own template, as LeRobot formats it.
                    interned[(c, f)] = str(self.root / self.info.video_path.format(
                        video_key=key, chunk_index=c, file_index=f))
                paths.append(interned[(c, f)])
            self._video_paths[key] = paths

    def _check_delta_timestamps(self, delta_timestamps: dict[str, list[float]] | None) -> dict[str, np.ndarray]:
        """Offsets in seconds -> offsets in frames; each must sit on the 1/fps grid (as LeRobot checks)."""
        if not delta_timestamps:
            return {}
        out: dict[str, np.ndarray] = {}
        for key, deltas in delta_timestamps.items():
            if key not in self.features:
                raise ValueError(f"delta_timestamps key {key!r} is not a feature of {self.root}")
            if self.features[key].dtype == "string":
                raise ValueError(f"delta_timestamps key {key!r} is a string feature; it cannot be stacked")
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
        # Workers started with spawn/forkserver reload the columns themselves (cheap) rather than
        # receiving them through a pipe; decoders and their file handles never cross processes.
        state = self.__dict__.copy()
        state["_columns"] = None
        state["_cache"] = None
        state["_cache_pid"] = None
        return state

    def _decoder_cache(self) -> VideoDecoderCache:
        global _decoded_in_this_process
        pid = os.getpid()
        if self._cache is None or self._cache_pid != pid:
            if self._cache is not None:
                # Inherited through fork: shares file offsets with the parent, so never used here,
                # and never freed here either (see _INHERITED_CACHES).
                _INHERITED_CACHES.append(self._cache)
            self._cache = VideoDecoderCache(max_size=self.decoder_cache_size)
            self._cache_pid = pid
            _decoded_in_this_process = True
        return self._cache

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
            path = self.root / self.info.data_path.format(chunk_index=chunk, file_index=file)
            try:
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
                else:
                    parts[key].append((dst, _column_to_numpy(column, feature.shape)[src]))
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
            dtype = object if feature.dtype == "string" else _torch_dtype_for(first.dtype)
            full = np.empty((n, *first.shape[1:]), dtype=dtype)
            for dst, values in parts[key]:
                full[dst] = values
            out[key] = full if feature.dtype == "string" else torch.from_numpy(full)
        # Plain python lists for the per-item hot path (indexing a list is cheaper than a tensor).
        out["_timestamp_list"] = out["timestamp"].tolist()
        out["_task_index_list"] = out["task_index"].tolist()
        return out

    def _rows_of(self, path: Path, table: pa.Table, positions: list[int]) -> tuple[np.ndarray, np.ndarray]:
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

    def _decode(self, path: str, timestamps: list[float]) -> torch.Tensor:
        frames = decode_frames(
            path,
            timestamps,
            tolerance_s=self.tolerance_s,
            backend=self.video_backend,
            return_uint8=True,
            cache=self._decoder_cache(),
        )
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
        for key in self.video_keys:
            ep = self._frame_ep[idx]
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
        for key in self.video_keys:
            # (path) -> list of (item position, number of timestamps) and the flat timestamp list.
            groups: dict[str, tuple[list[tuple[int, int]], list[float]]] = {}
            for pos, i in enumerate(idxs):
                path = self._video_paths[key][self._frame_ep[i]]
                ts = self._video_queries(i, key, timestamps)
                slots, flat = groups.setdefault(path, ([], []))
                slots.append((pos, len(ts)))
                flat.extend(ts)
            for path, (slots, flat) in groups.items():
                frames = self._decode(path, flat)
                offset = 0
                for pos, count in slots:
                    if key in self._delta_indices:
                        items[pos][key] = frames[offset:offset + count]
                        items[pos][f"{key}_is_pad"] = torch.from_numpy(self._window(idxs[pos], key)[1])
                    else:
                        items[pos][key] = frames[offset]
                    offset += count
        return items
