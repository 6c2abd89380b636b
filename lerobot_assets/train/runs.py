"""Training runs that happen only when their inputs changed, and a checkpoint's sanity check.

`train_in(base, config)` trains into `base/<key>`, where the key hashes the dataset's fingerprint
and the training configuration (dataset path and output dir left out): the same data and settings
give the same directory. A finished run there is reused as it is ("unchanged"); one a crash
interrupted is resumed from its last checkpoint ("resumed", equal to an uninterrupted run); else
a fresh run ("trained"). `base/current` (a relative symlink, swapped atomically) names the latest.
"""

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from lerobot_assets.format.atomic import fsync_dir
from lerobot_assets.tools.merge import dataset_fingerprint
from lerobot_assets.train.checkpoint import PRETRAINED, TRAIN_CONFIG_FILE, last_checkpoint, load_policy
from lerobot_assets.train.config import TrainConfig
from lerobot_assets.train.data import PolicyDataset, collate
from lerobot_assets.train.loop import TrainResult, read_train_log, train

CURRENT = "current"


@dataclass
class TrainRun:
    mode: Literal["trained", "resumed", "unchanged"]
    output_dir: Path
    checkpoint: Path
    step: int
    final_loss: float
    samples_per_s: float | None  # None when nothing was trained now
    fingerprint: str
    result: TrainResult | None


def run_key(config: TrainConfig, fingerprint: str) -> str:
    settings = config.model_dump(mode="json", exclude={"dataset", "output_dir", "device", "num_workers"})
    blob = json.dumps({"fingerprint": fingerprint, "settings": settings}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def train_in(base: Path, config: TrainConfig, *, progress: bool = False) -> TrainRun:
    """Train `config` under `base/<key>` unless that run exists already (see module docstring)."""
    fingerprint = dataset_fingerprint(Path(config.dataset))
    out = Path(base) / run_key(config, fingerprint)
    config = config.model_copy(update={"output_dir": str(out)})
    last = last_checkpoint(out)
    if last is not None:
        saved = json.loads((last / PRETRAINED / TRAIN_CONFIG_FILE).read_text())
        step = int(json.loads((last / "training_state" / "training_step.json").read_text())["step"])
        if step >= config.steps and saved.get("dataset", {}).get("fingerprint") == fingerprint:
            log = read_train_log(out)
            loss = float(np.mean([r["loss"] for r in log[-5:]])) if log else float("nan")
            _point_current(Path(base), out.name)
            return TrainRun("unchanged", out, out / "checkpoints" / os.readlink(last), step, loss, None, fingerprint, None)
        result = train(config, resume=True, progress=progress)
        mode: Literal["trained", "resumed", "unchanged"] = "resumed"
    else:
        if out.exists():  # a run killed before its first checkpoint: nothing in it to keep
            shutil.rmtree(out)
        result = train(config, progress=progress)
        mode = "trained"
    _point_current(Path(base), out.name)
    return TrainRun(mode, out, result.checkpoint, result.step, result.final_loss, result.samples_per_s, fingerprint, result)


def current_run(base: Path) -> Path | None:
    link = Path(base) / CURRENT
    return Path(base) / os.readlink(link) if link.is_symlink() else None


def _point_current(base: Path, name: str) -> None:
    link = base / f".tmp-{CURRENT}-{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(name, link)
    os.replace(link, base / CURRENT)
    fsync_dir(base)


def checkpoint_problems(checkpoint: Path | str, dataset: Path | str, frames: int = 16) -> list[str]:
    """Why the checkpoint is not usable: it does not load, or its actions for a real batch of the
    dataset (the first `frames` frames) are not finite or have the wrong shape. Empty when fine."""
    try:
        policy, _ = load_policy(checkpoint)
    except (ValueError, OSError) as e:
        return [f"does not load: {e}"]
    try:
        ds = PolicyDataset(dataset, policy.config)
        batch = collate([ds[i] for i in range(min(frames, len(ds)))])
        chunk = policy.predict_chunk(batch)
    except (ValueError, OSError, KeyError, RuntimeError) as e:
        return [f"cannot predict on {dataset}: {e}"]
    want = (len(batch[policy.config.action_key]), policy.config.chunk_size, policy.config.action_dim)
    problems = []
    if tuple(chunk.shape) != want:
        problems.append(f"predicted shape {tuple(chunk.shape)}, expected {want}")
    if not torch.isfinite(chunk).all():
        problems.append(f"{int((~torch.isfinite(chunk)).sum())} predicted action values are not finite")
    return problems
