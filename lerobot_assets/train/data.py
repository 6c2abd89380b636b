"""Training batches from a v3 dataset: the reader with the policy's windows, and a seeded sampler
whose position is a function of the step (so a resumed run draws exactly the batches an
uninterrupted one would, with no sampler state to save)."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.stats_json import Stats, read_stats
from lerobot_assets.loading import LeRobotV3Dataset
from lerobot_assets.tools.merge import SOURCES_PATH
from lerobot_assets.train.config import PolicyConfig


class MissingFeaturesError(ValueError):
    """The dataset lacks features (or their stats) that the policy needs; the message names them."""


def check_features(root: Path | str, policy: PolicyConfig) -> tuple[DatasetInfo, Stats]:
    """The dataset's info and stats, after checking it has every feature the policy needs."""
    info = DatasetInfo.load(Path(root))
    missing = [k for k in policy.required_features if k not in info.features]
    if missing:
        raise MissingFeaturesError(
            f"{root}: the {policy.encoder} policy needs feature(s) {', '.join(map(repr, missing))}, "
            f"which the dataset lacks (re-record it: PushT sessions record them since issue 13)"
        )
    stats = read_stats(root)
    unstated = [k for k in [*policy.state_keys, policy.action_key] if k not in stats]
    if unstated:
        raise MissingFeaturesError(f"{root}: meta/stats.json has no stats for {', '.join(map(repr, unstated))}")
    return info, stats


def fill_shapes(policy: PolicyConfig, info: DatasetInfo) -> PolicyConfig:
    """The policy config with input/output sizes taken from the dataset's features."""
    dims = {k: int(np.prod(info.features[k].shape)) for k in policy.state_keys}
    image = None
    if policy.encoder == "image":
        h, w, c = info.features[policy.image_key].shape
        image = [int(c), int(h), int(w)]
    return policy.model_copy(update={
        "state_dims": dims,
        "action_dim": int(np.prod(info.features[policy.action_key].shape)),
        "image_shape": image,
        "fps": info.fps,
    })


def delta_timestamps(policy: PolicyConfig) -> dict[str, list[float]]:
    obs = [(i - policy.n_obs_steps + 1) / policy.fps for i in range(policy.n_obs_steps)]
    out = {k: list(obs) for k in policy.state_keys}
    if policy.encoder == "image":
        out[policy.image_key] = list(obs)
    out[policy.action_key] = [i / policy.fps for i in range(policy.chunk_size)]
    return out


class PolicyDataset(LeRobotV3Dataset):
    """The reader, decoding only the cameras the policy looks at: the state policy decodes no video
    at all (a batch of 480x640 top-camera frames it would throw away costs more than its training
    step)."""

    def __init__(self, root: Path | str, policy: PolicyConfig, episodes: list[int] | None = None) -> None:
        super().__init__(root, episodes=episodes, delta_timestamps=delta_timestamps(policy))
        wanted = {policy.image_key} if policy.encoder == "image" else set()
        self.video_keys = [k for k in self.video_keys if k in wanted]


class StepSampler(Sampler[list[int]]):
    """Batches of frame indices for steps `start_step` .. `steps - 1`: an endless stream of
    permutations (epoch e shuffled with seed `seed + e`), cut into batches of `batch_size`. Batch k is
    the same whether the run started at 0 or resumed at k."""

    def __init__(self, num_frames: int, batch_size: int, seed: int, steps: int, start_step: int = 0) -> None:
        self.n, self.batch_size, self.seed = num_frames, batch_size, seed
        self.steps, self.start_step = steps, start_step

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)

    def _epoch(self, e: int) -> torch.Tensor:
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + e))

    def __iter__(self) -> Iterator[list[int]]:
        pos = self.start_step * self.batch_size
        epoch, offset = divmod(pos, self.n)
        perm = self._epoch(epoch)
        for _ in range(len(self)):
            batch: list[int] = []
            while len(batch) < self.batch_size:
                take = perm[offset : offset + self.batch_size - len(batch)].tolist()
                batch += take
                offset += len(take)
                if offset == self.n:
                    epoch, offset = epoch + 1, 0
                    perm = self._epoch(epoch)
            yield batch


def relative_action_stats(ds: "PolicyDataset", policy: PolicyConfig, batch: int = 2048) -> dict[str, np.ndarray]:
    """Mean and std (chunk_size, action_dim) of `action[t + k] - position[t]` over every frame of the
    dataset and every chunk step k that lies inside the frame's episode (float64 sums, exact)."""
    key = policy.state_keys[0]
    a = policy.action_dim
    total = np.zeros((policy.chunk_size, a))
    total_sq = np.zeros((policy.chunk_size, a))
    count = np.zeros((policy.chunk_size, 1))
    for start in range(0, len(ds), batch):
        items = collate(ds.__getitems__(list(range(start, min(len(ds), start + batch)))))
        offsets = (items[policy.action_key].double() - items[key][:, -1:, :a].double()).numpy()
        keep = (~items[f"{policy.action_key}_is_pad"]).numpy()[..., None]
        total += (offsets * keep).sum(0)
        total_sq += (offsets**2 * keep).sum(0)
        count += keep.sum(0)
    mean = total / np.maximum(count, 1)
    std = np.sqrt(np.maximum(total_sq / np.maximum(count, 1) - mean**2, 0))
    return {"mean": mean, "std": np.where(count > 1, std, 1.0)}


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack the tensors of a batch; strings (`task`) are left out: the policy does not read them."""
    return {k: torch.stack([it[k] for it in items]) for k, v in items[0].items() if isinstance(v, torch.Tensor)}


def dataset_sources(root: Path | str) -> list[str] | None:
    """Names of the sources a merged dataset holds (its meta/lerobot_assets_sources.json), or None."""
    path = Path(root) / SOURCES_PATH
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return None
    return [str(s.get("name")) for s in data if isinstance(s, dict)] if isinstance(data, list) else None


def first_frames(ds: LeRobotV3Dataset, keys: list[str]) -> list[list[float]]:
    """Frame 0 of each episode, `keys` concatenated: what identifies where an episode started (for
    PushT, the agent position and block keypoints that a seed's reset produces)."""
    out = []
    for pos in range(ds.num_episodes):
        start, _ = ds.episode_range(pos)
        item = ds[start]
        # With a window the current frame is the window's last entry.
        values = [item[k][-1] if f"{k}_is_pad" in item else item[k] for k in keys]
        out.append([float(x) for v in values for x in v.reshape(-1).tolist()])  # type: ignore[union-attr]
    return out
