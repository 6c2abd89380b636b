"""split_dataset: one new dataset per split (`out_dir/<name>`), every episode in exactly one.

Beats LeRobot's split, which gives each fraction `int(total * frac)` episodes and lets the last
split run to the end, so a split rounding to zero loses its episodes (0.95/0.05 over 10 episodes
drops episode 9): fractions here are allocated by largest remainder, a split left with zero
episodes is an error naming it, and an optional seeded shuffle decides which episodes go where.
All splits are built before any is swapped in, so a failing split leaves no output at all.
"""

import math
import shutil
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.format.names import check_name
from lerobot_assets.tools.output import (
    EditResult,
    Progress,
    Stopwatch,
    check_output_free,
    local_input,
    new_dataset,
    resolve_output,
    tree_bytes,
)
from lerobot_assets.tools.rewrite import rewrite_dataset
from lerobot_assets.tools.selection import check_episodes

FRACTION_TOLERANCE = 1e-9


def allocate_fractions(fractions: Mapping[str, float], total: int, seed: int | None = None) -> dict[str, list[int]]:
    """{split: ascending episode indices} for `fractions` of `total` episodes.

    Counts by largest remainder: each split gets floor(frac * total), and the episodes left over
    go one each to the splits with the largest fractional parts (ties: the split with fewer
    episodes so far, then the order given), so the counts sum to `total`. Episodes are taken in
    order, or in `numpy.random.default_rng(seed).permutation(total)` order with a seed.
    """
    if not fractions:
        raise ValueError("no splits given")
    for name, frac in fractions.items():
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not math.isfinite(frac) or frac < 0:
            raise ValueError(f"split {name!r}: fraction {frac!r} is not a number in [0, 1]")
    total_frac = float(sum(fractions.values()))
    if abs(total_frac - 1.0) > FRACTION_TOLERANCE:
        raise ValueError(f"split fractions sum to {total_frac!r}, not 1 ({dict(fractions)})")
    names = list(fractions)
    quotas = [fractions[n] * total for n in names]
    counts = [math.floor(q) for q in quotas]
    left = total - sum(counts)
    order = sorted(range(len(names)), key=lambda i: (-(quotas[i] - counts[i]), counts[i], i))
    for i in order[:left]:
        counts[i] += 1
    for name, count in zip(names, counts):
        if count == 0:
            raise ValueError(f"split {name!r} gets zero of {total} episodes (fraction {fractions[name]}); raise its fraction")
    episodes = np.arange(total) if seed is None else np.random.default_rng(seed).permutation(total)
    out, start = {}, 0
    for name, count in zip(names, counts):
        out[name] = sorted(int(e) for e in episodes[start : start + count])
        start += count
    return out


def check_explicit(splits: Mapping[str, Sequence[int]], total: int) -> dict[str, list[int]]:
    """Explicit episode lists: each in range and non-empty, no episode in two splits."""
    owner: dict[int, str] = {}
    out = {}
    for name, episodes in splits.items():
        chosen = check_episodes(episodes, total)
        if not chosen:
            raise ValueError(f"split {name!r} gets zero episodes")
        for e in chosen:
            if e in owner:
                raise ValueError(f"episode {e} is in both split {owner[e]!r} and split {name!r}")
            owner[e] = name
        out[name] = chosen
    return out


def plan_splits(splits: Mapping[str, float] | Mapping[str, Sequence[int]], total: int, seed: int | None) -> dict[str, list[int]]:
    if not splits:
        raise ValueError("no splits given")
    for name in splits:
        check_name(name, "split name")
    values = list(splits.values())
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return allocate_fractions(splits, total, seed)  # type: ignore[arg-type]
    if all(not isinstance(v, (str, bytes)) and isinstance(v, Sequence | np.ndarray) for v in values):
        if seed is not None:
            raise ValueError("seed shuffles fractions; explicit episode lists are used as given")
        return check_explicit(splits, total)  # type: ignore[arg-type]
    raise ValueError("splits must be all fractions ({'train': 0.8, 'val': 0.2}) or all episode lists")


def split_dataset(
    root: Path | str,
    splits: Mapping[str, float] | Mapping[str, Sequence[int]],
    out_dir: Path | str,
    seed: int | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict[str, EditResult]:
    """Write each split of `root` to `out_dir/<name>` (episodes renumbered 0..n-1 in source order).

    ValueError (nothing written) for fractions that do not sum to 1, a split with zero episodes,
    overlapping or out-of-range lists, an unsafe split name; OutputExistsError for an existing
    `out_dir/<name>` without `overwrite`.
    """
    clock = Stopwatch()
    base = resolve_output(out_dir)
    with local_input(root) as src:
        meta = DatasetMeta(src)
        plan = plan_splits(splits, meta.num_episodes, seed)
        for name in plan:
            if (base / name).exists() or (base / name).is_symlink():
                check_output_free(base / name, overwrite)
        made_dir = not base.exists()
        done = {}
        try:
            with ExitStack() as stack:
                # Every output is entered (checked, temp made) and built before any is swapped in:
                # the stack swaps them in on a clean exit and removes every temp on an error.
                for name, episodes in plan.items():
                    tmp = stack.enter_context(new_dataset(base / name, [root], overwrite=overwrite, operation="split"))
                    done[name] = rewrite_dataset(src, tmp, episodes, progress=progress, meta=meta)
        except BaseException:
            if made_dir:
                shutil.rmtree(base, ignore_errors=True)
            raise
    seconds = clock.seconds
    return {
        name: EditResult(f"split {name}", base / name, d.episodes, d.frames, tree_bytes(base / name), seconds, d.notes)
        for name, d in done.items()
    }
