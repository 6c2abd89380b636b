"""What acts in a rollout: the trained policy, the scripted expert (the ceiling), uniform random
actions (the floor), or a fixed action sequence per seed (replay, for tests and audits).

An agent sees every env of a batch at once: `reset(seeds, obs, infos)` at the start, then
`act(obs, infos)` -> (B, 2) float32 targets, one row per env (rows of finished envs are ignored).
`obs[i]` is `{feature key: array}` in the dataset's terms (`observation.state`, ...).
"""

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from lerobot_assets.sources.pusht import PushTExpert
from lerobot_assets.train.policy import ChunkingPolicy

WORKSPACE_SIZE = 512.0


class Agent(Protocol):
    name: str

    def reset(self, seeds: Sequence[int], obs: Sequence[Mapping[str, np.ndarray]], infos: Sequence[Mapping[str, Any]]) -> None: ...

    def act(self, obs: Sequence[Mapping[str, np.ndarray]], infos: Sequence[Mapping[str, Any]]) -> np.ndarray: ...


class PolicyAgent:
    """A `ChunkingPolicy`, one batched forward per replanning step for all envs."""

    name = "policy"

    def __init__(self, policy: ChunkingPolicy, device: str | torch.device = "cpu") -> None:
        self.policy = policy.eval()
        self.device = torch.device(device)
        self.keys = list(policy.config.state_dims) + (
            [policy.config.image_key] if policy.config.encoder == "image" else []
        )

    def reset(self, seeds: Sequence[int], obs: Sequence[Mapping[str, np.ndarray]], infos: Sequence[Mapping[str, Any]]) -> None:
        self.policy.reset()

    def act(self, obs: Sequence[Mapping[str, np.ndarray]], infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        batch = {k: torch.from_numpy(np.stack([o[k] for o in obs])).to(self.device) for k in self.keys}
        return self.policy.select_action(batch).cpu().numpy().astype(np.float32)


class ExpertAgent:
    """The scripted expert that recorded the data (no noise): what the data can teach at best."""

    name = "expert"

    def __init__(self) -> None:
        self.experts: list[PushTExpert] = []

    def reset(self, seeds: Sequence[int], obs: Sequence[Mapping[str, np.ndarray]], infos: Sequence[Mapping[str, Any]]) -> None:
        self.experts = [PushTExpert(info["goal_pose"]) for info in infos]

    def act(self, obs: Sequence[Mapping[str, np.ndarray]], infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.stack([
            e.act(np.asarray(info["pos_agent"]), info["vel_agent"], info["block_pose"]).astype(np.float32)
            for e, info in zip(self.experts, infos)
        ])


class RandomAgent:
    """Uniform targets in the workspace, seeded per episode seed (the same seeds give the same actions)."""

    name = "random"

    def __init__(self, seed_offset: int = 0) -> None:
        self.seed_offset = seed_offset
        self.rngs: list[np.random.Generator] = []

    def reset(self, seeds: Sequence[int], obs: Sequence[Mapping[str, np.ndarray]], infos: Sequence[Mapping[str, Any]]) -> None:
        self.rngs = [np.random.default_rng(self.seed_offset + s) for s in seeds]

    def act(self, obs: Sequence[Mapping[str, np.ndarray]], infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.stack([r.uniform(0, WORKSPACE_SIZE, size=2).astype(np.float32) for r in self.rngs])


class ReplayAgent:
    """Replays recorded actions per seed (`{seed: (T, 2)}`); holds the last one past the end."""

    name = "replay"

    def __init__(self, actions: Mapping[int, np.ndarray]) -> None:
        self.actions = {int(k): np.asarray(v, dtype=np.float32) for k, v in actions.items()}
        self.current: list[np.ndarray] = []
        self.t = 0

    def reset(self, seeds: Sequence[int], obs: Sequence[Mapping[str, np.ndarray]], infos: Sequence[Mapping[str, Any]]) -> None:
        missing = [s for s in seeds if s not in self.actions]
        if missing:
            raise KeyError(f"no recorded actions for seeds {missing}")
        self.current = [self.actions[s] for s in seeds]
        self.t = 0

    def act(self, obs: Sequence[Mapping[str, np.ndarray]], infos: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.stack([a[min(self.t, len(a) - 1)] for a in self.current])
        self.t += 1
        return out
