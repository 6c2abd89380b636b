"""The order in which one consumer emits frames: a pure function of its episodes and its seed.

Nothing here reads data: the order needs only episode lengths (from the episodes metadata), so
resuming replays it without any IO (`skip`), and a test can check it without decoding.

Events, in the order a consumer must act on them:
- ("admit", ep): the episode enters the pool (time to prefetch its rows and video bytes);
- ("sample", ep, frame): emit this frame (episode-local index) — the only event that costs IO;
- ("leave", ep): the episode's last frame was emitted; its rows and bytes may go.

shuffle=True: the consumer's episodes are admitted in a seeded random order into a pool of
`pool_size` episodes. Samples are drawn in rounds: each round visits every pool episode once,
in a fresh random order, and emits a uniformly random frame among those the episode has not
emitted yet (episodes drawn without replacement within a round). When an episode's last frame
is out, it leaves and the next one enters (joining from the next round). Compared with drawing
each sample uniformly among the pool's remaining frames, a batch then holds as many different
episodes as the pool allows: for 32-sample batches from a 64-episode pool of 50-frame episodes,
0.95+ distinct episodes per sample over an epoch instead of 0.66 (measured by
benchmarks/bench_dataloading.py), which is what makes a pool of 64 mix like a global shuffle. shuffle=False: episodes in their natural order (roots in
the order given, episodes by index), frames in order.

Weighted mixing (`weights` given): each root the consumer has episodes of runs its own pool
stream, cycling (a root that runs out starts its next cycle, reshuffled), and each sample comes
from root i with probability w_i / sum(w) over the roots this consumer holds; the consumer
emits `quota` samples. Every cycle of a root emits each of its frames exactly once.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np

from lerobot_assets.loading.streaming.split import EpisodeRef

Event = tuple


def derive_seed(*parts: int) -> int:
    """One 64-bit seed from (seed, epoch, rank, worker, ...): independent streams per consumer."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint32).view(np.uint64)[0])


def pool_stream(episodes: Sequence[EpisodeRef], pool_size: int, shuffle: bool, seed: int) -> Iterator[Event]:
    """Admit / sample / leave events over `episodes`, every frame exactly once."""
    if not shuffle:
        for ep in episodes:
            yield ("admit", ep)
            for frame in range(ep.length):
                yield ("sample", ep, frame)
            yield ("leave", ep)
        return
    rng = random.Random(seed)
    order = list(episodes)
    rng.shuffle(order)
    # Per pool slot: its episode and the frames it has not emitted yet (a sample swaps the drawn
    # frame with the last one and pops it: O(1) per frame).
    slots: list[EpisodeRef | None] = []
    frames_left: list[list[int]] = []
    free_slots: list[int] = []
    next_ep = 0

    def admit() -> EpisodeRef:
        nonlocal next_ep
        ep = order[next_ep]
        next_ep += 1
        if free_slots:
            slot = free_slots.pop()
            slots[slot], frames_left[slot] = ep, list(range(ep.length))
        else:
            slots.append(ep)
            frames_left.append(list(range(ep.length)))
        return ep

    while next_ep < len(order) and len(slots) - len(free_slots) < pool_size:
        yield ("admit", admit())
    randbelow = rng.randrange
    round_left: list[int] = []
    while True:
        if not round_left:
            round_left = [i for i, ep in enumerate(slots) if ep is not None]
            if not round_left:
                return
            rng.shuffle(round_left)
        slot = round_left.pop()
        held = slots[slot]
        assert held is not None
        left = frames_left[slot]
        j = randbelow(len(left))
        frame = left[j]
        left[j] = left[-1]
        left.pop()
        yield ("sample", held, frame)
        if not left:
            slots[slot] = None
            free_slots.append(slot)
            yield ("leave", held)
            if next_ep < len(order):
                yield ("admit", admit())  # takes part from the next round on


def consumer_stream(
    episodes: Sequence[EpisodeRef],
    *,
    pool_size: int,
    shuffle: bool,
    seed: int,
    epoch: int,
    rank: int,
    worker: int,
    weights: Sequence[float] | None = None,
    quota: int | None = None,
) -> Iterator[Event]:
    """All events of one consumer (rank, worker) for one epoch."""
    if weights is None:
        yield from pool_stream(episodes, pool_size, shuffle, derive_seed(seed, epoch, rank, worker))
        return
    by_root: dict[int, list[EpisodeRef]] = {}
    for ep in episodes:
        by_root.setdefault(ep.root, []).append(ep)
    roots = sorted(by_root)
    if not roots or not quota:
        return
    w = np.asarray([float(weights[r]) for r in roots])
    if w.sum() <= 0:
        # This consumer holds only roots of weight 0: it emits nothing rather than ignore the weights.
        return
    cum = np.cumsum(w / w.sum()).tolist()
    cum[-1] = 1.0
    rng = random.Random(derive_seed(seed, epoch, rank, worker, 1 << 30))
    cycles = dict.fromkeys(roots, 0)

    def cycle(root: int) -> Iterator[Event]:
        c = cycles[root]
        cycles[root] += 1
        return pool_stream(by_root[root], pool_size, shuffle, derive_seed(seed, epoch, rank, worker, root + 1, c))

    streams = {r: cycle(r) for r in roots}
    emitted = 0
    while emitted < quota:
        u = rng.random()
        root = roots[next(i for i, c in enumerate(cum) if u < c)]
        while True:
            event = next(streams[root], None)
            if event is None:  # this root's cycle is over: its next one, reshuffled
                streams[root] = cycle(root)
                continue
            yield event
            if event[0] == "sample":
                emitted += 1
                break


def largest_remainder(total: int, shares: Sequence[int]) -> list[int]:
    """`total` split proportionally to `shares` in integers that sum to `total` exactly."""
    s = sum(shares)
    if s <= 0:
        return [0] * len(shares)
    exact = [total * x / s for x in shares]
    out = [int(v) for v in exact]
    left = total - sum(out)
    for i in sorted(range(len(shares)), key=lambda i: (-(exact[i] - out[i]), i))[:left]:
        out[i] += 1
    return out
