"""Training a policy on a v3 dataset (pure library: no Dagster import).

- `config`: `TrainConfig`, `PolicyConfig` (the checkpoint's config.json, `"type"` included)
- `policy`: `ChunkingPolicy`, an action-chunking policy with a state (MLP) or image (conv) encoder,
  normalized with the dataset's exact stats stored in its own weights
- `data`: the reader with the policy's windows (`PolicyDataset`), the step-seeded `StepSampler`,
  the named feature check
- `loop`: `train(config, resume=...)`: AdamW, warm-up + cosine, clipping, optional EMA, resumable exactly
- `checkpoint`: LeRobot's checkpoint layout, written atomically; `load_policy`
- `runs`: `train_in` (train only when data or settings changed; resume an interrupted run),
  `checkpoint_problems` (loads, predicts finite actions for a real batch)
- `safetensors_io`: the `.safetensors` format without the package
"""

from lerobot_assets.train.checkpoint import CheckpointError, load_policy, load_training_state, resolve_pretrained
from lerobot_assets.train.config import POLICY_TYPE, PolicyConfig, TrainConfig
from lerobot_assets.train.data import MissingFeaturesError, PolicyDataset, StepSampler, check_features
from lerobot_assets.train.loop import DeviceError, TrainResult, read_train_config, read_train_log, resolve_device, train
from lerobot_assets.train.policy import ChunkingPolicy
from lerobot_assets.train.runs import TrainRun, checkpoint_problems, current_run, run_key, train_in

__all__ = [
    "POLICY_TYPE",
    "CheckpointError",
    "ChunkingPolicy",
    "DeviceError",
    "MissingFeaturesError",
    "PolicyConfig",
    "PolicyDataset",
    "StepSampler",
    "TrainConfig",
    "TrainResult",
    "TrainRun",
    "check_features",
    "checkpoint_problems",
    "current_run",
    "load_policy",
    "load_training_state",
    "read_train_config",
    "read_train_log",
    "resolve_device",
    "resolve_pretrained",
    "run_key",
    "train",
    "train_in",
]
