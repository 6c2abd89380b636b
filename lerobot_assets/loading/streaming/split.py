"""Which consumer (rank x DataLoader worker) reads which episodes: an exact partition.

Episodes are first grouped by the video files they live in (consecutive episodes sharing every
camera's file, or the data file when there is no camera), so that a rank opens as few files as
possible. A group larger than a fair share (total frames / parts) is cut into contiguous runs
of at most that share, so one big file never lands on a single rank. The units are then given
greedily, largest first, to the part with the fewest frames so far (ties: the lowest part).
Ranks are split first; each rank's episodes are then split the same way over its workers.

Every selected episode goes to exactly one consumer. With fewer episodes than consumers some
consumers get none: they yield nothing for the epoch (and say so once in the log); no episode
is ever duplicated to fill them. Frame counts per part differ by about one episode's length at
most when groups are small; DDP loops that need equal step counts per rank should train by
steps (as LeRobot does), not by epochs.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch.distributed as dist


@dataclass(frozen=True)
class EpisodeRef:
    """One selected episode: its root (position in the roots list), its position in that root's
    episode order, its length in frames and the files it shares with its neighbours."""

    root: int
    position: int
    length: int
    files: tuple


def group_units(episodes: Sequence[EpisodeRef], parts: int) -> list[list[EpisodeRef]]:
    """Episodes in file order, grouped by shared files, big groups cut to at most a fair share."""
    if not episodes:
        return []
    total = sum(e.length for e in episodes)
    fair = max(1, -(-total // max(1, parts)))  # ceil
    groups: list[list[EpisodeRef]] = []
    for ep in episodes:
        if groups and groups[-1][0].root == ep.root and groups[-1][0].files == ep.files:
            groups[-1].append(ep)
        else:
            groups.append([ep])
    units: list[list[EpisodeRef]] = []
    for group in groups:
        run: list[EpisodeRef] = []
        frames = 0
        for ep in group:
            if run and frames + ep.length > fair:
                units.append(run)
                run, frames = [], 0
            run.append(ep)
            frames += ep.length
        units.append(run)
    return units


def balance(episodes: Sequence[EpisodeRef], parts: int) -> list[list[EpisodeRef]]:
    """`episodes` split into `parts` lists (each in file order): group by file, greedy largest first."""
    if parts < 1:
        raise ValueError(f"cannot split episodes into {parts} parts")
    units = group_units(episodes, parts)
    # Largest first; ties keep file order so the split is a pure function of the input.
    order = sorted(range(len(units)), key=lambda u: (-sum(e.length for e in units[u]), u))
    loads = [0] * parts
    out: list[list[EpisodeRef]] = [[] for _ in range(parts)]
    for u in order:
        part = min(range(parts), key=lambda p: (loads[p], p))
        out[part].extend(units[u])
        loads[part] += sum(e.length for e in units[u])
    rank_of = {(e.root, e.position): i for i, e in enumerate(episodes)}
    for chosen in out:
        chosen.sort(key=lambda e: rank_of[(e.root, e.position)])
    return out


def assign(episodes: Sequence[EpisodeRef], world_size: int, rank: int, num_workers: int) -> list[list[EpisodeRef]]:
    """This rank's episodes, one list per worker (a single list when num_workers is 0 or 1)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    mine = balance(episodes, world_size)[rank]
    return balance(mine, max(1, num_workers))


def resolve_distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """(rank, world_size): the arguments, else torch.distributed when initialised, else the
    RANK / WORLD_SIZE environment variables, else (0, 1)."""
    if (rank is None) != (world_size is None):
        raise ValueError("pass both rank and world_size, or neither")
    if rank is not None and world_size is not None:
        r, w = int(rank), int(world_size)
    else:
        if dist.is_available() and dist.is_initialized():
            r, w = dist.get_rank(), dist.get_world_size()
        elif "RANK" in os.environ or "WORLD_SIZE" in os.environ:
            try:
                r, w = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
            except ValueError:
                raise ValueError(
                    f"RANK={os.environ.get('RANK')!r} / WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} are not integers"
                ) from None
        else:
            r, w = 0, 1
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"rank {r} is outside world_size {w}")
    return r, w


def fingerprint(episodes: Sequence[EpisodeRef]) -> str:
    """A short digest of the selected episodes (root, position, length): a saved stream state
    only fits a dataset that selects the same episodes."""
    arr = np.asarray([(e.root, e.position, e.length) for e in episodes], dtype=np.int64)
    return hashlib.sha256(arr.tobytes()).hexdigest()[:16]
