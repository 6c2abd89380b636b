"""The action-chunking policy: normalization with the dataset's exact stats, a state encoder (MLP)
or an image encoder (a small conv net on the 96x96 camera, plus the state), and a head predicting
`chunk_size` actions at once.

Stats live in the model's buffers, so `model.safetensors` alone is enough for inference.
Inputs are normalized to zero mean / unit std, actions to [-1, 1] by min/max: PushT's actions are
bounded targets in the 512x512 workspace, and a bounded output keeps the L1 loss balanced across axes.
"""

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from lerobot_assets.train.config import PolicyConfig

_EPS = 1e-6


class Normalizer(nn.Module):
    """(x - mean) / std per feature, or min/max to [-1, 1]; stats are buffers saved with the model."""

    a: torch.Tensor
    b: torch.Tensor

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.register_buffer("a", torch.zeros(dim))  # mean or min
        self.register_buffer("b", torch.ones(dim))  # std or max

    def set_stats(self, stats: Mapping[str, np.ndarray]) -> None:
        keys = ("mean", "std") if self.mode == "mean_std" else ("min", "max")
        self.a.copy_(torch.as_tensor(np.asarray(stats[keys[0]], dtype=np.float32).reshape(-1)))
        self.b.copy_(torch.as_tensor(np.asarray(stats[keys[1]], dtype=np.float32).reshape(-1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "mean_std":
            return (x - self.a) / (self.b + _EPS)
        return (x - self.a) / (self.b - self.a + _EPS) * 2 - 1

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        if self.mode == "mean_std":
            return y * (self.b + _EPS) + self.a
        return (y + 1) / 2 * (self.b - self.a + _EPS) + self.a


class ChunkNormalizer(nn.Module):
    """(x - mean) / std per chunk step and action dimension: the offsets of actions from the current
    position grow with the step, so each step gets its own scale."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, chunk: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(chunk, dim))
        self.register_buffer("std", torch.ones(chunk, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / (self.std + _EPS)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * (self.std + _EPS) + self.mean


class ImageEncoder(nn.Module):
    """A small conv net: 96x96 RGB -> a feature vector (4 stride-2 convs, global average pool)."""

    def __init__(self, channels: int, out_dim: int) -> None:
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(3, c, 5, stride=2, padding=2), nn.GELU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * c, out_dim),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image * 2 - 1)  # [0, 1] -> [-1, 1]


class ChunkingPolicy(nn.Module):
    """`forward(batch)` -> normalized action chunk (B, chunk_size, action_dim); `loss(batch)`;
    `predict_chunk(obs)` -> unnormalized actions; `select_action(obs)` with an action queue."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        if not config.state_dims or config.action_dim < 1:
            raise ValueError("PolicyConfig has no state_dims/action_dim: they are filled in from a dataset")
        self.config = config
        self.input_norms = nn.ModuleDict(
            {_safe(k): Normalizer(d, "mean_std") for k, d in config.state_dims.items()}
        )
        self.action_norm = Normalizer(config.action_dim, "min_max")
        self.relative_norm = ChunkNormalizer(config.chunk_size, config.action_dim)
        self.anchor_key = next(iter(config.state_dims))
        if config.relative_actions and config.state_dims[self.anchor_key] < config.action_dim:
            raise ValueError(f"relative_actions: {self.anchor_key} has fewer than {config.action_dim} values")
        # Keys whose values are 2-D points (PushT's keypoints) get a copy relative to the agent.
        self.point_keys = [k for k, d in config.state_dims.items() if k != self.anchor_key and d % 2 == 0]
        if not config.relative_features:
            self.point_keys = []
        state_in = sum(config.state_dims.values()) * config.n_obs_steps
        state_in += sum(config.state_dims[k] for k in self.point_keys) * config.n_obs_steps
        h = config.hidden_dim
        self.image_encoder: ImageEncoder | None = None
        if config.encoder == "image":
            self.image_encoder = ImageEncoder(config.image_channels, h)
            state_in += h * config.n_obs_steps
        layers: list[nn.Module] = [nn.Linear(state_in, h), nn.LayerNorm(h), nn.GELU()]
        for _ in range(config.num_layers - 1):
            layers += [nn.Linear(h, h), nn.GELU()]
        layers.append(nn.Linear(h, config.chunk_size * config.action_dim))
        self.head = nn.Sequential(*layers)
        self._queue: torch.Tensor | None = None  # (B, steps left, action_dim), unnormalized
        self._history: list[dict[str, torch.Tensor]] = []
        self._chunks: list[torch.Tensor] = []

    def set_stats(
        self, stats: Mapping[str, Mapping[str, np.ndarray]], relative: Mapping[str, np.ndarray] | None = None
    ) -> None:
        """Dataset stats (meta/stats.json) of the inputs and actions; `relative`: {"mean", "std"} of
        shape (chunk_size, action_dim) of the actions' offsets (`relative_action_stats`)."""
        for key in self.config.state_dims:
            self._norm(key).set_stats(stats[key])
        self.action_norm.set_stats(stats[self.config.action_key])
        if relative is not None:
            self.relative_norm.mean.copy_(torch.as_tensor(np.asarray(relative["mean"], dtype=np.float32)))
            self.relative_norm.std.copy_(torch.as_tensor(np.asarray(relative["std"], dtype=np.float32)))

    def _norm(self, key: str) -> Normalizer:
        norm = self.input_norms[_safe(key)]
        assert isinstance(norm, Normalizer)
        return norm

    def anchor(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The current position (B, action_dim) the relative actions are offsets from."""
        return batch[self.anchor_key][:, -1, : self.config.action_dim]

    def target(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The recorded chunk, normalized as the network predicts it."""
        actions = batch[self.config.action_key]
        if self.config.relative_actions:
            return self.relative_norm(actions - self.anchor(batch)[:, None])
        return self.action_norm(actions)

    def _features(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Inputs of shape (B, n_obs_steps, D) per state key (and (B, n_obs_steps, C, H, W) images)."""
        parts = []
        for key in self.config.state_dims:
            x = batch[key]
            parts.append(self._norm(key)(x).flatten(1))
        agent = batch[self.anchor_key][..., None, :2]
        for key in self.point_keys:
            x = batch[key]
            scale = self._norm(key).b.reshape(-1, 2)
            rel = (x.reshape(*x.shape[:-1], -1, 2) - agent) / (scale + _EPS)
            parts.append(rel.flatten(1))
        if self.image_encoder is not None:
            img = batch[self.config.image_key]
            b, t = img.shape[:2]
            parts.append(self.image_encoder(img.flatten(0, 1)).reshape(b, t, -1).flatten(1))
        return torch.cat(parts, dim=1)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out = self.head(self._features(batch))
        return out.reshape(-1, self.config.chunk_size, self.config.action_dim)

    def loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """L1 between predicted and recorded (normalized) chunks; padded steps past the episode's
        end (`action_is_pad`) do not count."""
        pred = self(batch)
        err = (pred - self.target(batch)).abs().mean(-1)
        keep = ~batch[f"{self.config.action_key}_is_pad"]
        return (err * keep).sum() / keep.sum().clamp(min=1)

    @torch.no_grad()
    def predict_chunk(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Actions (B, chunk_size, action_dim) in the dataset's units."""
        out = self(batch)
        if self.config.relative_actions:
            return self.relative_norm.inverse(out) + self.anchor(batch)[:, None]
        return self.action_norm.inverse(out)

    # ------------------------------------------------------------------ rollouts
    def reset(self) -> None:
        self._queue = None
        self._history = []
        self._chunks = []

    @torch.no_grad()
    def select_action(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One action per env (B, action_dim) from this step's observation ({key: (B, ...)}).
        Keeps the last n_obs_steps observations (the first repeated at the start, as the dataset's
        padding does) and replans every n_action_steps."""
        self._history.append({k: v for k, v in obs.items()})
        n = self.config.n_obs_steps
        while len(self._history) < n:
            self._history.insert(0, self._history[0])
        self._history = self._history[-n:]
        if self.config.temporal_ensemble_coeff is not None:
            return self._ensembled(self.predict_chunk(self._stacked()))
        if self._queue is None or self._queue.shape[1] == 0:
            chunk = self.predict_chunk(self._stacked())
            self._queue = chunk[:, : self.config.n_action_steps]
        action = self._queue[:, 0]
        self._queue = self._queue[:, 1:]
        return action

    def _stacked(self) -> dict[str, torch.Tensor]:
        return {k: torch.stack([h[k] for h in self._history], dim=1) for k in self._history[-1]}

    def _ensembled(self, chunk: torch.Tensor) -> torch.Tensor:
        """ACT's temporal ensembling: every chunk predicted in the last chunk_size steps says something
        about this step; they are averaged with weights exp(-coeff * i), i = 0 for the oldest."""
        self._chunks = [*self._chunks, chunk][-self.config.chunk_size :]
        k = len(self._chunks)
        # The chunk predicted j steps ago holds this step's action at index j.
        preds = torch.stack([c[:, k - 1 - i] for i, c in enumerate(self._chunks)], dim=1)  # oldest first
        w = torch.exp(-float(self.config.temporal_ensemble_coeff or 0.0) * torch.arange(k, dtype=preds.dtype))
        return (preds * (w / w.sum())[None, :, None]).sum(1)


def _safe(key: str) -> str:
    """Module names may not contain '.'."""
    return key.replace(".", "__")
