"""Batching items that hold strings and variable-length values next to fixed-shape tensors."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import default_collate


def streaming_collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One batch dict from a list of item dicts.

    - tensors of one shape and dtype, and plain numbers: torch's `default_collate` (stacked, in
      shared memory inside DataLoader workers, exactly as without this function);
    - strings (`task`), lists (language columns), None, tensors of differing shapes: a list with
      one value per item, in order;
    - a key missing from some items: a list with None where it is missing.
    """
    if not items:
        return {}
    keys: dict[str, None] = {}
    for item in items:
        keys.update(dict.fromkeys(item))
    batch: dict[str, Any] = {}
    for key in keys:
        values = [item.get(key) for item in items]
        first = values[0]
        if isinstance(first, torch.Tensor) and all(
            isinstance(v, torch.Tensor) and v.shape == first.shape and v.dtype == first.dtype for v in values
        ):
            batch[key] = default_collate(values)
        elif all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in values) or all(
            isinstance(v, bool) for v in values
        ):
            batch[key] = default_collate(values)
        else:
            batch[key] = values
    return batch
