"""Evaluation seeds must be disjoint from every seed whose episodes trained the policy.

Two checks, both from the checkpoint's train_config.json:
- declared: the sim sessions among its `sources` (`sim-s0000-0009` = seeds 0..9, see
  home/keys.py): an evaluation seed in one of them is refused, naming the session;
- observed: its `first_frames` (frame 0 of every training episode): an evaluation seed whose reset
  shows one of them is refused too, whatever the provenance says (a dataset built outside the data
  home, an import, a split of a merged dataset). A PushT reset is fixed by its seed, so this is
  exact: the same seed gives bit-identical float32 positions and keypoints.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from lerobot_assets.evaluate.rollout import reset_observations
from lerobot_assets.home.keys import parse_session_key


class SeedOverlapError(ValueError):
    """Evaluation seeds that trained the policy; the message names them and where they came from."""


def declared_training_seeds(sources: Iterable[str] | None) -> dict[int, str]:
    """{seed: sim session} of the sim sessions among a dataset's sources."""
    out: dict[int, str] = {}
    for name in sources or []:
        try:
            key = parse_session_key(name)
        except ValueError:
            continue
        if key.kind == "sim":
            for seed in key.seeds:
                out.setdefault(seed, name)
    return out


def observed_training_seeds(seeds: Sequence[int], first_frames: Mapping[str, Any] | None) -> list[int]:
    """The seeds among `seeds` whose reset equals the first frame of a training episode."""
    if not first_frames or not first_frames.get("values"):
        return []
    keys = list(first_frames["keys"])
    known = {np.asarray(v, dtype=np.float32).tobytes() for v in first_frames["values"]}
    hits = []
    for seed, obs in zip(seeds, reset_observations(seeds)):
        if any(k not in obs for k in keys):
            return []  # trained on other features: nothing to compare
        sig = np.concatenate([np.asarray(obs[k], dtype=np.float32).reshape(-1) for k in keys]).tobytes()
        if sig in known:
            hits.append(int(seed))
    return hits


def check_disjoint(seeds: Sequence[int], train_config: Mapping[str, Any]) -> None:
    """SeedOverlapError when an evaluation seed trained the policy (see module docstring)."""
    declared = declared_training_seeds(train_config.get("sources"))
    root = train_config.get("dataset", {}).get("root", "?")
    clash = sorted(s for s in seeds if s in declared)
    if clash:
        sessions = sorted({declared[s] for s in clash})
        raise SeedOverlapError(
            f"evaluation seeds {_short(clash)} trained the policy (session {', '.join(sessions)} of {root}); "
            f"choose seeds past {max(declared)} (--seed-start)"
        )
    observed = observed_training_seeds(seeds, train_config.get("first_frames"))
    if observed:
        raise SeedOverlapError(
            f"evaluation seeds {_short(observed)} trained the policy (their first frames are episodes of {root}); "
            "choose other seeds (--seed-start)"
        )


def _short(seeds: list[int]) -> str:
    more = f", ... ({len(seeds)} seeds)" if len(seeds) > 10 else ""
    return "[" + ", ".join(map(str, seeds[:10])) + more + "]"
