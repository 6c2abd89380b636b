"""Batching samples that carry language columns.

`torch.utils.data.default_collate` cannot stack ragged lists of dicts, and LeRobot's
`lerobot_collate_fn` drops the raw language columns. `collate_with_language` keeps them: each language
key becomes a list with one entry per sample (that sample's list of rows); everything else goes
through `default_collate`. `None` samples are dropped, as LeRobot does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import default_collate

from lerobot_assets.annotate.schema import LANGUAGE_COLUMNS


def collate_with_language(samples: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    kept = [s for s in samples if s is not None]
    if not kept:
        return {}
    keys = [k for k in LANGUAGE_COLUMNS if k in kept[0]]
    for k in keys:
        if not all(k in s for s in kept):
            raise ValueError(f"only some samples have {k!r}")
    batch = default_collate([{k: v for k, v in s.items() if k not in keys} for s in kept])
    for k in keys:
        batch[k] = [s[k] for s in kept]
    return batch
