"""What a training run is told (`TrainConfig`) and what a policy is (`PolicyConfig`).

`PolicyConfig` is the checkpoint's `pretrained_model/config.json` (with LeRobot's `"type"` key);
`TrainConfig` goes into `train_config.json` together with where the data came from.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

POLICY_TYPE = "lerobot_assets_chunking"
STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
IMAGE_KEY = "observation.image"
ACTION_KEY = "action"


class PolicyConfig(BaseModel):
    """An action-chunking policy: from the last `n_obs_steps` observations it predicts the next
    `chunk_size` actions; a rollout executes `n_action_steps` of them before predicting again."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["lerobot_assets_chunking"] = "lerobot_assets_chunking"
    encoder: Literal["state", "image"] = "state"
    state_keys: list[str] = Field(default_factory=lambda: [STATE_KEY, ENV_STATE_KEY])
    image_key: str = IMAGE_KEY
    action_key: str = ACTION_KEY
    chunk_size: int = Field(16, ge=1, le=256)
    n_action_steps: int = Field(2, ge=1)
    n_obs_steps: int = Field(2, ge=1, le=16)
    hidden_dim: int = Field(512, ge=8)
    num_layers: int = Field(4, ge=1, le=16)
    image_channels: int = Field(32, ge=4, description="width of the image encoder's conv net")
    temporal_ensemble_coeff: float | None = Field(
        None, ge=0, description="ACT's temporal ensembling at rollout (predict every step, average the "
        "overlapping chunks with weights exp(-coeff * age)); None executes n_action_steps per prediction",
    )
    relative_actions: bool = Field(
        True, description="predict actions as offsets from the current position (the first state key's first "
        "action_dim values), normalized per chunk step with stats computed over the training windows",
    )
    relative_features: bool = Field(
        True, description="also feed every 2-D point of the other state keys relative to that position",
    )
    # Filled in by training from the dataset: input/output shapes, so inference needs no dataset.
    state_dims: dict[str, int] = Field(default_factory=dict)
    action_dim: int = 0
    image_shape: list[int] | None = None  # C, H, W
    fps: int = 10

    @model_validator(mode="after")
    def _steps_within_chunk(self) -> "PolicyConfig":
        if self.n_action_steps > self.chunk_size:
            raise ValueError(f"n_action_steps {self.n_action_steps} exceeds chunk_size {self.chunk_size}")
        return self

    @property
    def required_features(self) -> list[str]:
        keys = [*self.state_keys, self.action_key]
        return keys + ([self.image_key] if self.encoder == "image" else [])


class TrainConfig(BaseModel):
    """A training run. Optimizer: AdamW; schedule: linear warm-up then cosine decay to
    `min_lr_ratio * lr` at `steps`; gradients clipped to `grad_clip_norm`."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    output_dir: str
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(100, ge=0)
    min_lr_ratio: float = Field(0.01, ge=0, le=1)
    grad_clip_norm: float = Field(10.0, gt=0)
    ema_decay: float | None = Field(None, gt=0, lt=1, description="EMA of the weights; the checkpoint's model is the EMA")
    seed: int = Field(0, ge=0)
    num_workers: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    save_freq: int | None = Field(None, ge=1, description="also checkpoint every this many steps (always at the end)")
    log_freq: int = Field(50, ge=1)
    episodes: list[int] | None = Field(None, description="train on these episodes of the dataset only")
    split: str | None = Field(None, description="the split the dataset is (recorded, e.g. 'train')")
    sources: list[str] | None = Field(
        None, description="sessions the data came from (default: the dataset's meta/lerobot_assets_sources.json)"
    )
