"""StreamingDataset: LeRobot v3.0 roots as a torch IterableDataset for training at scale.

What each consumer (rank x DataLoader worker) does, per epoch:
1. takes its share of the selected episodes (`split.py`: exact partition, grouped by video file,
   balanced by frames; ranks first, then workers);
2. admits them in a seeded random order into a pool of `episode_pool_size` episodes and emits
   frames drawn uniformly from the pool (`order.py`); only an emitted frame is decoded;
3. reads an episode's tabular rows by row group (`rows.py`): local roots when its first frame
   is emitted (with every other admitted episode of the same data file, in one read), remote
   roots ahead of time; drops them when the episode leaves the pool;
4. decodes video through the map-style reader's sources (whole files, or the byte index for
   remote roots), each group of `decode_group_size` samples in one call per file and camera.
   The order is known ahead (it needs only episode lengths), so remote rows and video segments
   are prefetched in the order they will first be used, within `prefetch_bytes`.

Items are what `LeRobotV3Dataset[i]` returns for the same frame (windows included), plus
`dataset_index` (the root's position in `roots`).

Epochs: `set_epoch(e)` reshuffles deterministically (shared with DataLoader workers, persistent
ones included); without it every pass repeats the same order, as with DistributedSampler.
Resume: `state_dict()` / `load_state_dict()` here cover iteration in this process (a DataLoader
with num_workers=0, or plain `for item in ds`); with workers use `StreamingDataLoader`
(`loader.py`), which tracks every worker's position from the batches it yields.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lerobot_assets.byteindex.reader import EpisodeReader
from lerobot_assets.loading.columns import column_to_numpy, language_values, torch_dtype_for
from lerobot_assets.loading.dataset import DEFAULT_EPISODE_CACHE_BYTES, LeRobotV3Dataset
from lerobot_assets.loading.streaming.order import consumer_stream, largest_remainder
from lerobot_assets.loading.streaming.retry import RetryingFetcher, RetryPolicy, with_retry
from lerobot_assets.loading.streaming.rows import EpisodeRowsReader
from lerobot_assets.loading.streaming.split import EpisodeRef, assign, balance, fingerprint, resolve_distributed
from lerobot_assets.loading.video_source import VideoSource
from lerobot_assets.video.cache import cache_size_from_env
from lerobot_assets.video.decode import unit_float

logger = logging.getLogger(__name__)

Item = dict[str, Any]
STATE_VERSION = 1
MAX_POOL_DECODERS = 512  # decoders kept open by default for a pool (2 cameras x 256 episodes)
MAX_LOOKAHEAD = 1 << 16  # events of the order read ahead for prefetching (a few MB at most)
MAX_COUNTER_ROWS = 257  # this process + up to 256 DataLoader workers
COUNTERS = (
    "samples", "episodes_admitted", "episodes_left", "decode_s", "fetch_s",
    "video_bytes_fetched", "data_bytes_fetched", "retries",
)


@dataclass
class _Root:
    """One root as the streaming reader uses it: the map-style reader (metadata, video sources,
    windows' frame offsets) and a row reader for its data files."""

    reader: LeRobotV3Dataset
    rows: EpisodeRowsReader
    to_output: dict[str, str]  # the root's feature key -> the key items carry

    @property
    def renamed(self) -> bool:
        return any(k != v for k, v in self.to_output.items())


class StreamingDataset(IterableDataset):
    """One or more LeRobot v3.0 roots streamed episode-pool-shuffled, split exactly over ranks
    and DataLoader workers (see the module docstring).

    `roots`: a path / fsspec URL (a published prefix reads the version its pointer names when the
    dataset is created), or a list of them (mixed with `weights`, each sample carrying
    `dataset_index`). `episodes`: for one root a list of episode indices; for several, one list
    (or None for all) per root. `rename`: per root, {its key: the key items carry}, so roots
    whose features differ only by name can be mixed. `weights`: per root sampling weights; each
    epoch then emits `samples_per_epoch` samples (default: the selected frames of every root),
    root i drawn with probability w_i / sum(w), each root cycling through its own episodes.
    Without weights an epoch emits every selected frame exactly once.

    `rank` / `world_size`: the arguments, else torch.distributed when initialised, else the
    RANK / WORLD_SIZE environment variables, else a single process.

    Remote roots: `storage_options` go to fsspec; video comes through the byte index when the
    root has a usable one (else whole files, with a warning naming the command that builds it);
    `prefetch_bytes` bounds the video bytes fetched ahead of use (episodes in order of first use);
    `episode_cache_bytes` bounds the bytes the byte-index reader keeps per process (keep it at
    least the pool's bytes, or episodes still in the pool are fetched again: see stats());
    reads are retried `retry_attempts` times with exponential backoff from `retry_backoff_s`.
    `decoder_cache_size`: decoders kept open per process (default: the usual cache size, raised
    to two per pool episode up to 512, since through the byte index each (camera, episode) has
    its own decoder and the pool's episodes are all in use at once).
    `decode_group_size`: samples whose video is decoded together (one call per file and camera,
    in file order, as the map-style reader decodes a batch); the order is the same for any value.
    """

    def __init__(
        self,
        roots: Path | str | Sequence[Path | str],
        *,
        episodes: Sequence[int] | Sequence[Sequence[int] | None] | None = None,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        episode_pool_size: int = 1024,
        seed: int = 0,
        shuffle: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        return_uint8: bool = False,
        storage_options: dict[str, Any] | None = None,
        weights: Sequence[float] | None = None,
        samples_per_epoch: int | None = None,
        rename: Sequence[Mapping[str, str] | None] | None = None,
        tolerance_s: float = 1e-4,
        video_backend: str | None = None,
        video_source: VideoSource = "auto",
        decoder_cache_size: int | None = None,
        episode_cache_bytes: int = DEFAULT_EPISODE_CACHE_BYTES,
        prefetch_bytes: int = 128 << 20,
        prefetch_workers: int = 4,
        decode_group_size: int = 32,
        retry_attempts: int = 4,
        retry_backoff_s: float = 0.2,
    ) -> None:
        super().__init__()
        root_list = [roots] if isinstance(roots, (str, Path)) else list(roots)
        if not root_list:
            raise ValueError("roots is empty")
        if episode_pool_size < 1:
            raise ValueError(f"episode_pool_size must be >= 1; got {episode_pool_size}")
        self.rank, self.world_size = resolve_distributed(rank, world_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.episode_pool_size = int(episode_pool_size)
        self.return_uint8 = bool(return_uint8)
        self.prefetch_bytes = int(prefetch_bytes)
        self.prefetch_workers = int(prefetch_workers)
        if decode_group_size < 1:
            raise ValueError(f"decode_group_size must be >= 1; got {decode_group_size}")
        self.decode_group_size = int(decode_group_size)
        self.retry = RetryPolicy(int(retry_attempts), float(retry_backoff_s))
        per_root_episodes = self._episodes_per_root(episodes, len(root_list))
        renames = list(rename) if rename is not None else [None] * len(root_list)
        if len(renames) != len(root_list):
            raise ValueError(f"rename has {len(renames)} entries for {len(root_list)} roots")
        self.storage_options = dict(storage_options) if storage_options else None
        if decoder_cache_size is None:
            # Through the byte index a decoder is open per (camera, episode): the pool's episodes
            # are all in use at once, so the cache holds them (capped: each open decoder keeps
            # its codec state); whole-file decoders (one per file) stay at the usual default.
            default = cache_size_from_env()
            if default is not None:
                decoder_cache_size = max(default, min(2 * self.episode_pool_size, MAX_POOL_DECODERS))
        self.roots: list[_Root] = []
        for i, root in enumerate(root_list):
            mapping = dict(renames[i] or {})
            to_root = {v: k for k, v in mapping.items()}
            deltas = None
            if delta_timestamps:
                deltas = {to_root.get(k, k): list(v) for k, v in delta_timestamps.items()}
            try:
                reader = LeRobotV3Dataset(
                    root, episodes=per_root_episodes[i], delta_timestamps=deltas, tolerance_s=tolerance_s,
                    return_uint8=return_uint8, video_backend=video_backend,
                    decoder_cache_size=decoder_cache_size, storage_options=self.storage_options,
                    video_source=video_source, episode_cache_bytes=episode_cache_bytes,
                    prefetch_workers=prefetch_workers,
                )
            except ValueError as e:
                if len(root_list) > 1 and str(root) not in str(e):
                    raise type(e)(f"roots[{i}] {root}: {e}") from e
                raise
            unknown = sorted(set(mapping) - set(reader.features))
            if unknown:
                raise ValueError(f"rename[{i}] names {unknown}, which are not features of {reader.root}")
            out = {k: mapping.get(k, k) for k in reader.features}
            self.roots.append(_Root(reader, self._rows_reader(reader), out))
        self._check_compatible()
        first = self.roots[0].reader
        self.fps = first.fps
        self.features = {self.roots[0].to_output[k]: f for k, f in first.features.items()}
        self.delta_timestamps = dict(delta_timestamps) if delta_timestamps else None

        # Every selected episode, in natural order (roots as given, then episode order).
        self.episodes: list[EpisodeRef] = []
        for r, entry in enumerate(self.roots):
            reader = entry.reader
            for pos in range(reader.num_episodes):
                files = tuple(reader._video_rel[k][pos] for k in reader.video_keys) or (reader._data_files[pos],)
                self.episodes.append(EpisodeRef(r, pos, int(reader._lengths[pos]), files))
        self.num_frames = sum(e.length for e in self.episodes)
        if weights is not None:
            w = [float(x) for x in weights]
            if len(w) != len(self.roots):
                raise ValueError(f"weights has {len(w)} entries for {len(self.roots)} roots")
            if any(x < 0 or not np.isfinite(x) for x in w) or sum(w) <= 0:
                raise ValueError(f"weights must be finite, >= 0 and not all 0; got {w}")
            self.weights: list[float] | None = w
            self.samples_per_epoch = self.num_frames if samples_per_epoch is None else int(samples_per_epoch)
        else:
            if samples_per_epoch is not None:
                raise ValueError("samples_per_epoch needs weights (without them an epoch is every frame once)")
            self.weights = None
            self.samples_per_epoch = self.num_frames
        self.fingerprint = fingerprint(self.episodes)

        # Shared with DataLoader workers (fork or spawn, persistent or not): the epoch, and one
        # row of counters per process (row 0: this one; row 1 + w: worker w).
        self._epoch_cell = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._counters = torch.zeros((MAX_COUNTER_ROWS, len(COUNTERS)), dtype=torch.float64).share_memory_()
        # Resume: positions (samples already emitted) per logical consumer, and which physical
        # worker plays which logical consumer. Applied to the next pass only.
        self._resume: list[int] | None = None
        self._rotation = 0
        self._tag_positions = False  # StreamingDataLoader: items carry "_stream"
        self._position = 0  # samples emitted by this process's current pass
        self._pass_epoch = 0
        self._assignments: dict[int, list[list[EpisodeRef]]] = {}
        self._idle_warned = False

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _episodes_per_root(episodes: Any, n: int) -> list[list[int] | None]:
        if episodes is None:
            return [None] * n
        items = list(episodes)
        if all(isinstance(e, (int, np.integer)) for e in items):
            if n > 1:
                raise ValueError("with several roots pass episodes as one list (or None) per root")
            return [[int(e) for e in items]]
        if len(items) != n:
            raise ValueError(f"episodes has {len(items)} entries for {n} roots")
        return [None if e is None else [int(x) for x in e] for e in items]

    def _rows_reader(self, reader: LeRobotV3Dataset) -> EpisodeRowsReader:
        columns = list(reader._data_keys)
        if not reader.remote:
            return EpisodeRowsReader(reader.root, columns)
        files = reader._files
        policy = self.retry
        counters = self._count_retry

        def size(rel: str) -> int:
            fs = files.filesystem()
            return with_retry(lambda: int(fs.info(f"{files.fs_root}/{rel}")["size"]), f"{files.root}/{rel}", policy,
                              on_retry=counters)

        def read(rel: str, start: int, end: int) -> bytes:
            fs = files.filesystem()
            return with_retry(lambda: fs.cat_file(f"{files.fs_root}/{rel}", start=start, end=end),
                              f"{files.root}/{rel} bytes [{start}, {end})", policy, on_retry=counters)

        return EpisodeRowsReader(reader.root, columns, remote_size=size, remote_read=read)

    def _count_retry(self, error: BaseException) -> None:
        logger.info("retrying a read after: %s", error)
        self._add("retries", 1)

    def _check_compatible(self) -> None:
        """Every root must carry the same features (after rename) at the same fps."""
        ref = self.roots[0]
        ref_feats = {ref.to_output[k]: f for k, f in ref.reader.features.items()}
        for other in self.roots[1:]:
            a, b = ref.reader.root, other.reader.root
            if other.reader.fps != ref.reader.fps:
                raise ValueError(f"incompatible roots: {a} has fps {ref.reader.fps}, {b} has fps {other.reader.fps}")
            feats = {other.to_output[k]: f for k, f in other.reader.features.items()}
            missing, extra = sorted(set(ref_feats) - set(feats)), sorted(set(feats) - set(ref_feats))
            if missing or extra:
                raise ValueError(
                    f"incompatible roots: features only in {a}: {missing}; only in {b}: {extra} "
                    "(pass rename= to map keys)"
                )
            for key, fa in ref_feats.items():
                fb = feats[key]
                if fa.dtype != fb.dtype or list(fa.shape) != list(fb.shape):
                    raise ValueError(
                        f"incompatible roots: feature {key!r} is {fa.dtype} {list(fa.shape)} in {a} "
                        f"but {fb.dtype} {list(fb.shape)} in {b}"
                    )

    # ------------------------------------------------------------------ public API
    @property
    def epoch(self) -> int:
        return int(self._epoch_cell[0])

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for this epoch (deterministic in seed and epoch); clears a pending resume."""
        self._epoch_cell[0] = int(epoch)
        self._resume = None
        self._rotation = 0

    def assignment(self, num_workers: int) -> list[list[EpisodeRef]]:
        """This rank's episodes, one list per worker (num_workers 0 and 1 both mean one consumer)."""
        n = max(1, int(num_workers))
        if n not in self._assignments:
            self._assignments[n] = assign(self.episodes, self.world_size, self.rank, n)
        return self._assignments[n]

    def _quotas(self, num_workers: int) -> list[int]:
        """Weighted mode: samples per consumer of this rank (the epoch's samples split over every
        consumer of every rank by its frames, exactly)."""
        n = max(1, int(num_workers))
        frames = []
        for part in balance(self.episodes, self.world_size):
            frames += [sum(e.length for e in w) for w in balance(part, n)]
        quotas = largest_remainder(self.samples_per_epoch, frames)
        return quotas[self.rank * n:(self.rank + 1) * n]

    def __len__(self) -> int:
        """Samples this rank emits per epoch (every DataLoader worker of it together)."""
        if self.weights is not None:
            return sum(self._quotas(1))
        return sum(e.length for e in self.assignment(1)[0])

    def stats(self) -> dict[str, float]:
        """Counters summed over this process and its DataLoader workers: samples, episodes
        admitted / left, decode and fetch seconds, video and data bytes fetched, retries."""
        totals = self._counters.sum(dim=0).tolist()
        return {name: (float(v) if name.endswith("_s") else int(v)) for name, v in zip(COUNTERS, totals)}

    def reset_stats(self) -> None:
        self._counters.zero_()

    def state_dict(self) -> dict[str, Any]:
        """Where this process's iteration stands (num_workers=0 or plain iteration), at any item
        boundary; with DataLoader workers use StreamingDataLoader.state_dict()."""
        return self._state(self._pass_epoch, [self._position], 0, 1)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume where `state` was taken: the next pass yields exactly what the interrupted one
        would have yielded next. A state from another world size, number of workers, seed or
        episode selection is refused by name: the partition, and so the order, depend on them."""
        positions, next_consumer = self._check_state(state, num_workers=len(state.get("positions", [])))
        self._epoch_cell[0] = int(state["epoch"])
        self._resume = positions
        self._rotation = next_consumer

    def _state(self, epoch: int, positions: list[int], next_consumer: int, consumers: int) -> dict[str, Any]:
        return {
            "version": STATE_VERSION, "epoch": int(epoch), "positions": [int(p) for p in positions],
            "next_consumer": int(next_consumer), "num_consumers": int(consumers), "rank": self.rank,
            "world_size": self.world_size, "seed": self.seed, "shuffle": self.shuffle,
            "episode_pool_size": self.episode_pool_size, "weights": self.weights,
            "samples_per_epoch": self.samples_per_epoch, "episodes": self.fingerprint,
        }

    def _check_state(self, state: Mapping[str, Any], num_workers: int) -> tuple[list[int], int]:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"stream state version {state.get('version')!r} is not {STATE_VERSION}")
        ours = self._state(0, [], 0, 0)
        for key in ("episodes", "world_size", "rank", "seed", "shuffle", "episode_pool_size", "weights",
                    "samples_per_epoch"):
            if state.get(key) != ours[key]:
                what = "the selected episodes" if key == "episodes" else key
                raise ValueError(
                    f"stream state was saved with {key}={state.get(key)!r} but this dataset has {key}={ours[key]!r}: "
                    f"the split over ranks and workers depends on {what}, so the stream cannot resume exactly "
                    "(resume with the same settings, or start an epoch over with set_epoch)"
                )
        positions = [int(p) for p in state["positions"]]
        if len(positions) != max(1, num_workers):
            raise ValueError(
                f"stream state was saved with {len(positions)} consumer(s) per rank (num_workers) but this run "
                f"has {max(1, num_workers)}: resume with the same num_workers"
            )
        return positions, int(state.get("next_consumer", 0))

    # ------------------------------------------------------------------ per-process state
    def _row(self) -> int:
        info = get_worker_info()
        return 0 if info is None else min(1 + info.id, MAX_COUNTER_ROWS - 1)

    def _add(self, name: str, value: float) -> None:
        self._counters[self._row(), COUNTERS.index(name)] += value

    def _episode_reader(self, r: int) -> EpisodeReader | None:
        """Root r's byte-index reader in this process, its fetcher retrying transient errors."""
        reader = self.roots[r].reader.episode_reader
        if reader is not None and not isinstance(reader.fetcher, RetryingFetcher):
            old = reader.fetcher
            reader.fetcher = RetryingFetcher(old.fs, old.base, self.retry, self._count_retry)
        return reader

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[Item]:
        info = get_worker_info()
        num_workers = 1 if info is None else info.num_workers
        worker = 0 if info is None else info.id
        consumer = (worker + self._rotation) % num_workers
        epoch = self.epoch
        start = 0
        if self._resume is not None:
            if len(self._resume) != num_workers:
                raise ValueError(
                    f"stream state holds {len(self._resume)} consumer position(s) but this DataLoader has "
                    f"{num_workers} worker(s): resume with the same num_workers"
                )
            start = self._resume[consumer]
        # The resume applies to this pass only (in a persistent worker too: its copy is cleared).
        self._resume, self._rotation = None, 0
        mine = self.assignment(num_workers)[consumer]
        if not mine and not self._idle_warned:
            self._idle_warned = True
            logger.warning(
                "rank %d worker %d of %d: no episodes to read (%d episodes for %d consumers); it yields nothing "
                "this epoch (no episode is duplicated to fill it)",
                self.rank, consumer, num_workers, len(self.episodes), self.world_size * num_workers,
            )
        quota = self._quotas(num_workers)[consumer] if self.weights is not None else None
        events = consumer_stream(
            mine, pool_size=self.episode_pool_size, shuffle=self.shuffle, seed=self.seed, epoch=epoch,
            rank=self.rank, worker=consumer, weights=self.weights, quota=quota,
        )
        if info is None:
            self._pass_epoch, self._position = epoch, start
        return self._run(events, consumer, epoch, start, in_process=info is None)

    def _run(self, events: Iterator[tuple], consumer: int, epoch: int, start: int, in_process: bool) -> Iterator[Item]:
        pool: dict[tuple[int, int], EpisodeRef] = {}
        # Fast-forward (resume): replay the order without reading anything.
        position = 0
        while position < start:
            event = next(events, None)
            if event is None:
                break
            kind, ep = event[0], event[1]
            if kind == "sample":
                position += 1
            elif kind == "admit":
                pool[(ep.root, ep.position)] = ep
            else:
                pool.pop((ep.root, ep.position), None)
        stream = _EpisodeCache(self)
        group: list[tuple[EpisodeRef, int]] = []
        leaving: list[EpisodeRef] = []
        try:
            for ep in pool.values():
                stream.admit(ep)
            ahead: collections.deque[tuple] = collections.deque()
            to_plan: dict[tuple[int, int], EpisodeRef] = {}  # first-use order, not planned yet
            exhausted = False
            while True:
                # Look ahead in the order (it is known): plan the episodes about to be sampled
                # for the first time, in that order, while their bytes fit in prefetch_bytes.
                while True:
                    while to_plan and stream.fits(next(iter(to_plan.values()))):
                        stream.plan(to_plan.pop(next(iter(to_plan))))
                    if to_plan or exhausted or len(ahead) >= MAX_LOOKAHEAD:
                        break
                    upcoming = next(events, None)
                    if upcoming is None:
                        exhausted = True
                        break
                    ahead.append(upcoming)
                    if upcoming[0] == "sample" and stream.wants(upcoming[1]):
                        to_plan.setdefault((upcoming[1].root, upcoming[1].position), upcoming[1])
                event = ahead.popleft() if ahead else None
                if event is not None and event[0] == "sample":
                    to_plan.pop((event[1].root, event[1].position), None)  # needed now: read on demand
                if event is not None and event[0] == "admit":
                    stream.admit(event[1])
                    self._add("episodes_admitted", 1)
                elif event is not None and event[0] == "leave":
                    leaving.append(event[1])  # after its frames in the group are built
                elif event is not None:
                    stream.used(event[1])
                    group.append((event[1], event[2]))
                if group and (event is None or len(group) >= self.decode_group_size):
                    for item in self._items(stream, group):
                        position += 1
                        if in_process:
                            self._position = position
                        if self._tag_positions:
                            item["_stream"] = torch.tensor([consumer, position, epoch], dtype=torch.int64)
                        self._add("samples", 1)
                        yield item
                    group = []
                if leaving and not group:
                    for ep in leaving:
                        stream.leave(ep)
                        self._add("episodes_left", 1)
                    leaving = []
                if event is None:
                    break
        finally:
            stream.close()

    # ------------------------------------------------------------------ items
    def _items(self, stream: _EpisodeCache, group: list[tuple[EpisodeRef, int]]) -> list[Item]:
        """The items of these (episode, frame) samples, in order; each camera's frames decoded in
        one call per video file (or per episode through the byte index), as the map-style
        reader's __getitems__ does, so a decoder visits them in file order."""
        items: list[Item] = []
        windows: list[dict[str, tuple[np.ndarray, np.ndarray]]] = []
        columns = []
        for ep, frame in group:
            cols = stream.columns(ep)
            item, win = self._plain_item(ep, frame, cols)
            items.append(item)
            windows.append(win)
            columns.append(cols)
        t0 = time.perf_counter()
        fetch_s = 0.0
        for r, root in enumerate(self.roots):
            reader = root.reader
            members = [i for i, (ep, _) in enumerate(group) if ep.root == r]
            if not members or not reader.video_keys:
                continue
            index_reader = self._episode_reader(r) if reader.video_source == "byte_index" else None
            for key in reader.video_keys:
                # Decode target -> (item slots with their number of timestamps, flat timestamps).
                targets: dict[Any, tuple[list[tuple[int, int]], list[float]]] = {}
                for i in members:
                    ep, frame = group[i]
                    picks = windows[i][key][0].tolist() if key in reader._delta_indices else [frame]
                    ts = columns[i]["_timestamp_list"]
                    if index_reader is not None:
                        target: Any = ep.position
                        queries = [ts[q] for q in picks]
                    else:
                        target = reader._video_paths[key][ep.position]
                        base = reader._video_from[key][ep.position]
                        queries = [base + ts[q] for q in picks]
                    slots, flat = targets.setdefault(target, ([], []))
                    slots.append((i, len(queries)))
                    flat.extend(queries)
                for target, (slots, flat) in targets.items():
                    if index_reader is not None:
                        episode = int(reader.episode_indices[target])
                        if not index_reader.has_open_decoder(key, episode):
                            f0 = time.perf_counter()
                            index_reader.fetch(key, episode)  # the bytes, timed apart from decoding
                            fetch_s += time.perf_counter() - f0
                        assert reader._index_frames is not None
                        frames = reader._index_frames.decode_episode(key, target, flat, tolerance_s=reader.tolerance_s)
                    else:
                        frames = reader._file_frames.decode(
                            target, flat, tolerance_s=reader.tolerance_s, backend=reader.video_backend
                        )
                    # uint8 from the decoder; floats made per item: one conversion of a whole
                    # group (~100 MB at 480x640) costs fresh pages each time, per item it reuses them.
                    offset = 0
                    for i, count in slots:
                        part = frames[offset:offset + count]
                        if not self.return_uint8:
                            part = unit_float(part)
                        if key in reader._delta_indices:
                            items[i][key] = part
                            items[i][f"{key}_is_pad"] = torch.from_numpy(windows[i][key][1])
                        else:
                            items[i][key] = part[0]
                        offset += count
        if any(root.reader.video_keys for root in self.roots):
            self._add("decode_s", time.perf_counter() - t0 - fetch_s)
            self._add("fetch_s", fetch_s)
        stream.sync_bytes()
        out = []
        for (ep, _), item in zip(group, items):
            item["dataset_index"] = torch.tensor(ep.root, dtype=torch.int64)
            root = self.roots[ep.root]
            out.append({self._out_key(root, k): v for k, v in item.items()} if root.renamed else item)
        return out

    def _plain_item(
        self, ep: EpisodeRef, frame: int, cols: dict[str, Any]
    ) -> tuple[Item, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Everything but video of one sample, and its windows (clamped frames, padding) per key."""
        reader = self.roots[ep.root].reader
        n = ep.length
        item: Item = {}
        windows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key, offsets in reader._delta_indices.items():
            query = frame + offsets
            windows[key] = (np.clip(query, 0, n - 1), (query < 0) | (query >= n))
        for key, kind in reader._plan:
            values = cols[key]
            if kind == "tensor":
                # clone(): a view would pin (and, across processes, ship) the episode's storage.
                item[key] = values[frame].clone()
            elif kind == "string":
                item[key] = values[frame]
            elif kind == "image":
                item[key] = reader._decode_image(values[frame])
            else:
                query, pad = windows[key]
                if kind == "image+window":
                    item[key] = torch.stack([reader._decode_image(values[q]) for q in query.tolist()])
                else:
                    item[key] = values[torch.from_numpy(query)]
                item[f"{key}_is_pad"] = torch.from_numpy(pad)
        item["task"] = reader.tasks[cols["_task_index_list"][frame]]
        return item, windows

    @staticmethod
    def _out_key(root: _Root, key: str) -> str:
        if key in root.to_output:
            return root.to_output[key]
        if key.endswith("_is_pad") and key[: -len("_is_pad")] in root.to_output:
            return root.to_output[key[: -len("_is_pad")]] + "_is_pad"
        return key

    def episode_columns(self, ep: EpisodeRef) -> dict[str, Any]:
        """The tabular columns of one episode as items index them (read from its row groups)."""
        root = self.roots[ep.root]
        reader = root.reader
        rel = self._data_rel(ep)
        episode = int(reader.episode_indices[ep.position])
        return columns_of(root.rows.read(rel, episode, ep.length), reader)

    def _data_rel(self, ep: EpisodeRef) -> str:
        reader = self.roots[ep.root].reader
        chunk, file = reader._data_files[ep.position]
        return reader.info.data_path.format(chunk_index=chunk, file_index=file)

    def file_columns(
        self, ep: EpisodeRef, unread: dict[tuple[int, int], EpisodeRef]
    ) -> dict[tuple[int, int], dict[str, Any]]:
        """Columns of `ep` and of every other episode in `unread` stored in the same data file,
        read together (they are removed from `unread`)."""
        rel = self._data_rel(ep)
        batch = [e for e in unread.values() if e.root == ep.root and self._data_rel(e) == rel]
        if ep not in batch:
            batch.append(ep)
        reader = self.roots[ep.root].reader
        tables = self.roots[ep.root].rows.read_many(
            rel, [(int(reader.episode_indices[e.position]), e.length) for e in batch]
        )
        out = {}
        for e in batch:
            unread.pop((e.root, e.position), None)
            out[(e.root, e.position)] = columns_of(tables[int(reader.episode_indices[e.position])], reader)
        return out

    def __repr__(self) -> str:
        roots = [str(r.reader.root) for r in self.roots]
        return (f"StreamingDataset(roots={roots}, episodes={len(self.episodes)}, frames={self.num_frames}, "
                f"rank={self.rank}/{self.world_size}, pool={self.episode_pool_size}, shuffle={self.shuffle})")


def columns_of(table: pa.Table, reader: LeRobotV3Dataset) -> dict[str, Any]:
    """An episode's rows -> the per-key arrays items index (as the map-style reader builds them)."""
    out: dict[str, Any] = {}
    for key in reader._data_keys:
        feature = reader.features[key]
        column = table.column(key)
        if feature.dtype == "image":
            out[key] = column.combine_chunks().field("bytes").to_pylist()
        elif feature.dtype == "string":
            out[key] = np.asarray(column.to_pylist(), dtype=object)
        elif feature.dtype == "language":
            out[key] = language_values(column)
        else:
            values = column_to_numpy(column, feature.shape)
            out[key] = torch.from_numpy(np.array(values, dtype=torch_dtype_for(values.dtype), order="C"))
    out["_timestamp_list"] = out["timestamp"].tolist()
    out["_task_index_list"] = out["task_index"].tolist()
    return out


class _EpisodeCache:
    """Rows of the pool's episodes in one pass, and prefetch in order of first use.

    The order is known ahead (it needs only episode lengths), so `_run` looks ahead in it and
    calls `plan(ep)` for each episode about to be sampled for the first time: for remote roots
    (and any root decoded through the byte index) its rows are read on a thread pool and its
    video segments fetched by the byte-index reader, in the order they will be needed, while the
    segment bytes planned but not yet used stay within `prefetch_bytes`. Local roots read rows
    when first needed, every admitted episode of the same data file in one read.
    """

    def __init__(self, ds: StreamingDataset) -> None:
        self.ds = ds
        self.rows: dict[tuple[int, int], dict[str, Any]] = {}
        self.futures: dict[tuple[int, int], Future] = {}
        self.unread: dict[tuple[int, int], EpisodeRef] = {}  # admitted (local root), rows not read
        self.planned: dict[tuple[int, int], int] = {}  # prefetch started, not yet used: bytes
        self.started: set[tuple[int, int]] = set()  # prefetch started (until the episode leaves)
        self.ahead_bytes = 0
        self._pool: ThreadPoolExecutor | None = None
        # Bytes counters: totals of this process's readers when last counted. Only the iterating
        # thread counts (differences of running totals), so prefetch threads are counted once.
        self._seen = self._byte_totals()

    def _byte_totals(self) -> tuple[int, int]:
        video = sum(r.bytes_requested for r in self.index_readers()) if self._uses_index() else 0
        return video, sum(root.rows.bytes_read for root in self.ds.roots)

    def _uses_index(self) -> bool:
        return any(root.reader.video_source == "byte_index" for root in self.ds.roots)

    def sync_bytes(self) -> None:
        video, data = self._byte_totals()
        self.ds._add("video_bytes_fetched", video - self._seen[0])
        self.ds._add("data_bytes_fetched", data - self._seen[1])
        self._seen = (video, data)

    def prefetches(self, ep: EpisodeRef) -> bool:
        reader = self.ds.roots[ep.root].reader
        return reader.remote or reader.video_source == "byte_index"

    def _bytes(self, ep: EpisodeRef) -> int:
        reader = self.ds.roots[ep.root].reader
        if reader.video_source != "byte_index" or reader._index_frames is None:
            return 0
        index = reader._index_frames.byte_index()
        episode = int(reader.episode_indices[ep.position])
        return sum(index.segment(k, episode).payload_bytes for k in reader.video_keys)

    def index_readers(self) -> list[EpisodeReader]:
        out = []
        for r, root in enumerate(self.ds.roots):
            if root.reader.video_source == "byte_index":
                reader = self.ds._episode_reader(r)
                if reader is not None:
                    out.append(reader)
        return out

    def admit(self, ep: EpisodeRef) -> None:
        if not self.prefetches(ep):
            self.unread[(ep.root, ep.position)] = ep

    def wants(self, ep: EpisodeRef) -> bool:
        """Whether this episode is to be prefetched and was not yet."""
        return self.prefetches(ep) and (ep.root, ep.position) not in self.started

    def fits(self, ep: EpisodeRef) -> bool:
        """Whether its bytes fit beside those planned and not used yet (one episode always fits),
        and fewer than a pool of episodes is planned ahead (rows are held from planning on)."""
        if not self.planned:
            return True
        return (len(self.planned) < self.ds.episode_pool_size
                and self.ahead_bytes + self._bytes(ep) <= self.ds.prefetch_bytes)

    def plan(self, ep: EpisodeRef) -> None:
        """Start fetching an episode about to be sampled for the first time (rows and video)."""
        key = (ep.root, ep.position)
        if key in self.started or not self.prefetches(ep):
            return
        self.started.add(key)
        size = self._bytes(ep)
        self.planned[key] = size
        self.ahead_bytes += size
        reader = self.ds.roots[ep.root].reader
        if reader.remote:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max(1, self.ds.prefetch_workers), thread_name_prefix="stream-rows")
            self.futures[key] = self._pool.submit(self.ds.episode_columns, ep)
        if reader.video_source == "byte_index":
            self.ds._episode_reader(ep.root)
            reader.prefetch([ep.position])

    def used(self, ep: EpisodeRef) -> None:
        """A sample of this episode is being built: its planned bytes no longer count as ahead
        (one never planned is read on demand, and not planned again while in the pool)."""
        if self.prefetches(ep):
            self.started.add((ep.root, ep.position))
        size = self.planned.pop((ep.root, ep.position), None)
        if size is not None:
            self.ahead_bytes -= size

    def columns(self, ep: EpisodeRef) -> dict[str, Any]:
        key = (ep.root, ep.position)
        cols = self.rows.get(key)
        if cols is not None:
            return cols
        t0 = time.perf_counter()
        if key in self.unread:
            # Local root: every admitted episode of this data file not read yet, in one read
            # (one call per file is far cheaper than one per episode; they are in the pool).
            self.rows.update(self.ds.file_columns(ep, self.unread))
        else:
            future = self.futures.pop(key, None)
            self.rows[key] = future.result() if future is not None else self.ds.episode_columns(ep)
        self.ds._add("fetch_s", time.perf_counter() - t0)
        return self.rows[key]

    def leave(self, ep: EpisodeRef) -> None:
        key = (ep.root, ep.position)
        self.rows.pop(key, None)
        self.unread.pop(key, None)
        size = self.planned.pop(key, None)
        if size is not None:
            self.ahead_bytes -= size
        self.started.discard(key)
        future = self.futures.pop(key, None)
        if future is not None:
            future.cancel()

    def close(self) -> None:
        self.sync_bytes()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.rows.clear()
        self.futures.clear()
