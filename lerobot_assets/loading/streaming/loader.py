"""StreamingDataLoader: a torch DataLoader over a StreamingDataset that can resume exactly.

How the state is taken with DataLoader workers: each item carries its consumer's position
(`_stream` = [consumer, samples emitted so far, epoch]); a batch comes whole from one worker, so
the batch's last row says where that worker stands. The wrapper strips the field, keeps one
position per consumer, and notes which consumer comes next in torch's round robin (batches come
from workers 0, 1, ..., W-1, 0, ..., skipping workers that ran out: in_order=True).

Resuming: each worker fast-forwards its consumer's order to its saved position without reading
anything (the order needs episode lengths only), and physical worker i plays logical consumer
(next + i) mod W, so torch's round robin, which restarts at worker 0, continues the interrupted
cycle. The batches after a resume are exactly those the uninterrupted run would have yielded.

A full pass advances the dataset's epoch (set_epoch(epoch + 1)), so `for epoch in ...: for batch
in loader` and `itertools.cycle`-style loops see a fresh shuffle each epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader

from lerobot_assets.loading.streaming.collate import streaming_collate
from lerobot_assets.loading.streaming.dataset import StreamingDataset


class StreamingDataLoader:
    """`DataLoader(dataset, batch_size, num_workers, collate_fn=streaming_collate, ...)` with
    `state_dict()` / `load_state_dict()` at any batch boundary (see the module docstring).

    `drop_last=True` drops each worker's last partial batch (torch batches per worker), so an
    epoch then misses up to num_workers x (batch_size - 1) samples; the default keeps them.
    """

    def __init__(
        self,
        dataset: StreamingDataset,
        batch_size: int = 1,
        *,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] = streaming_collate,
        **dataloader_kwargs: Any,
    ) -> None:
        if not isinstance(dataset, StreamingDataset):
            raise TypeError(f"StreamingDataLoader needs a StreamingDataset; got {type(dataset).__name__}")
        if dataloader_kwargs.get("in_order") is False:
            raise ValueError("in_order=False makes the batch order depend on timing; it cannot be resumed")
        for bad in ("sampler", "batch_sampler", "shuffle"):
            if dataloader_kwargs.get(bad):
                raise ValueError(f"{bad}= does not apply: the StreamingDataset orders and shuffles itself")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.collate_fn = collate_fn
        self.kwargs = dataloader_kwargs
        self._consumers = max(1, self.num_workers)
        self._positions = [0] * self._consumers
        self._next = 0
        self._loader: DataLoader | None = None

    def _make_loader(self) -> DataLoader:
        return DataLoader(
            self.dataset, batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=self.collate_fn,
            **self.kwargs,
        )

    def __len__(self) -> int:
        """Batches per epoch on this rank (each worker's last batch may be partial)."""
        if self.dataset.weights is not None:
            per_consumer = self.dataset._quotas(self.num_workers)
        else:
            per_consumer = [sum(e.length for e in w) for w in self.dataset.assignment(self.num_workers)]
        if self.kwargs.get("drop_last"):
            return sum(n // self.batch_size for n in per_consumer)
        return sum(-(-n // self.batch_size) for n in per_consumer)

    def __iter__(self) -> Iterator[Any]:
        ds = self.dataset
        if any(self._positions):
            # Resuming (a loaded state, or a pass left early): workers start afresh with the
            # positions, physical worker i playing logical consumer (next + i) mod W.
            ds._resume, ds._rotation = list(self._positions), self._next
            self._loader = None
        else:
            ds._resume, ds._rotation = None, 0
        if self._loader is None or not self.kwargs.get("persistent_workers"):
            self._loader = self._make_loader()
        ds._tag_positions = True  # items carry "_stream" (workers copy this when they start)
        epoch = ds.epoch
        try:
            for batch in self._loader:
                stream = batch.pop("_stream", None) if isinstance(batch, dict) else None
                if isinstance(stream, torch.Tensor) and len(stream):
                    consumer, position, _ = (int(v) for v in stream[-1].tolist())
                    self._positions[consumer] = position
                    self._next = (consumer + 1) % self._consumers
                yield batch
        finally:
            # Workers hold their own copy; the dataset itself goes back to untagged items.
            ds._tag_positions = False
        # A full pass: the next one is the next epoch, from the start.
        ds._resume, ds._rotation = None, 0
        self._positions = [0] * self._consumers
        self._next = 0
        ds.set_epoch(epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        return self.dataset._state(self.dataset.epoch, self._positions, self._next, self._consumers)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        positions, next_consumer = self.dataset._check_state(state, self.num_workers)
        self.dataset.set_epoch(int(state["epoch"]))
        self._positions = positions
        self._next = next_consumer
        self._loader = None
