"""Episode and feature selections given by users, checked against a dataset with errors that name
the bad value (unknown episode 57 of 50; unknown feature with its close match)."""

import difflib
from collections.abc import Iterable, Sequence

from lerobot_assets.format.info import DatasetInfo


def parse_episode_ranges(text: str) -> list[int]:
    """"1,4,7-9" -> [1, 4, 7, 8, 9] (sorted, unique). ValueError naming the bad part."""
    out: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ValueError(f"episodes {text!r}: {part!r} is not an episode index or a range like 7-9") from None
        if a < 0 or b < a:
            raise ValueError(f"episodes {text!r}: {part!r} is not an ascending range of non-negative indices")
        out.update(range(a, b + 1))
    if not out:
        raise ValueError(f"episodes {text!r}: no episode indices given")
    return sorted(out)


def check_episodes(episodes: Iterable[int], total: int, what: str = "episode") -> list[int]:
    """Sorted unique episode indices, each < total; ValueError naming the first unknown one."""
    chosen = sorted(set(int(e) for e in episodes))
    for e in chosen:
        if e < 0 or e >= total:
            span = f"0-{total - 1}" if total else "none"
            raise ValueError(f"unknown {what} {e} of {total} (the dataset has episodes {span})")
    return chosen


def feature_problem(key: str, keys: Sequence[str]) -> str | None:
    if key in keys:
        return None
    close = difflib.get_close_matches(key, list(keys), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (features: {', '.join(keys)})"
    return f"unknown feature {key!r}{hint}"


def check_features(keys: Iterable[str], info: DatasetInfo) -> list[str]:
    """The keys, each a feature of `info`; ValueError naming the first unknown one and its close match."""
    names = list(info.features)
    out = []
    for key in keys:
        problem = feature_problem(key, names)
        if problem:
            raise ValueError(problem)
        out.append(key)
    return out
