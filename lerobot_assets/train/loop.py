"""The training loop: `train(config)` -> a checkpoint directory in LeRobot's layout.

Deterministic on CPU for a given seed and machine: the sampler's batches are a function of
(seed, step), dropout is not used, and `torch.use_deterministic_algorithms` is on while training.
A run resumed from checkpoint k (`resume=True`) loads weights, EMA, optimizer, scheduler and RNG
states and continues with batch k+1, so it ends with the same weights as an uninterrupted run.
"""

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.tools.merge import dataset_fingerprint
from lerobot_assets.train.checkpoint import (
    PRETRAINED,
    TRAIN_CONFIG_FILE,
    CheckpointError,
    check_last_is_link,
    last_checkpoint,
    load_training_state,
    save_checkpoint,
    set_rng_state,
)
from lerobot_assets.train.config import TrainConfig
from lerobot_assets.train.data import (
    PolicyDataset,
    StepSampler,
    check_features,
    collate,
    dataset_sources,
    fill_shapes,
    first_frames,
    relative_action_stats,
)
from lerobot_assets.train.policy import ChunkingPolicy

TRAIN_LOG = "train_log.jsonl"


class DeviceError(RuntimeError):
    """The device asked for is not available."""


@dataclass
class TrainResult:
    output_dir: Path
    checkpoint: Path
    step: int
    steps_this_run: int
    final_loss: float
    samples_per_s: float
    elapsed_s: float
    cpu_s: float  # CPU time of this process (all its threads; DataLoader workers not counted)
    device: str
    fingerprint: str
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) of this run


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device cuda asked for, but CUDA is not available (torch {torch.__version__})")
    return torch.device(device)


def lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up to 1 over `warmup_steps`, then cosine decay to `min_lr_ratio` at `steps`."""
    warmup, total, floor = min(config.warmup_steps, config.steps), config.steps, config.min_lr_ratio

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


@contextmanager
def _deterministic() -> Iterator[None]:
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


def read_train_config(output_dir: Path | str) -> TrainConfig:
    """The TrainConfig saved with an output dir's last checkpoint (what `--resume` continues)."""
    last = last_checkpoint(Path(output_dir))
    if last is None:
        raise CheckpointError(f"{Path(output_dir) / 'checkpoints' / 'last'}: missing; nothing to resume")
    path = last / PRETRAINED / TRAIN_CONFIG_FILE
    try:
        return TrainConfig.model_validate(json.loads(path.read_text())["train"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: not a train config ({str(e).splitlines()[0]})") from None


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    stop_at: int | None = None,
    progress: bool = True,
    on_log: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train (or, with `resume`, continue) the policy of `config`; returns where it was saved.

    `stop_at` ends the run after saving step `stop_at` (what an interrupted run leaves behind).
    Errors, each raised before anything is written: the dataset lacks a feature the policy needs
    (MissingFeaturesError), the output dir exists without `resume` (FileExistsError), `resume`
    without a checkpoint or with a changed dataset (CheckpointError), cuda without CUDA (DeviceError).
    """
    out = Path(config.output_dir)
    device = resolve_device(config.device)
    if out.exists() and not resume:
        raise FileExistsError(f"{out}: output directory exists; pass --resume to continue it, or choose another --out")
    if resume:
        check_last_is_link(out)
        if last_checkpoint(out) is None:
            raise CheckpointError(f"{out / 'checkpoints' / 'last'}: missing; nothing to resume")
    root = Path(config.dataset)
    info, stats = check_features(root, config.policy)
    policy_config = fill_shapes(config.policy, info)
    fingerprint = dataset_fingerprint(root)
    start = None
    if resume:
        last = last_checkpoint(out)
        assert last is not None
        saved = json.loads((last / PRETRAINED / TRAIN_CONFIG_FILE).read_text())
        if saved.get("dataset", {}).get("fingerprint") != fingerprint:
            raise CheckpointError(
                f"{last / PRETRAINED / TRAIN_CONFIG_FILE}: trained on dataset fingerprint "
                f"{saved.get('dataset', {}).get('fingerprint')}, but {root} is now {fingerprint}"
            )
        start = load_training_state(last)

    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)
    dataset = PolicyDataset(root, policy_config, episodes=config.episodes)
    model = ChunkingPolicy(policy_config)
    relative = relative_action_stats(dataset, policy_config) if policy_config.relative_actions else None
    model.set_stats(stats, relative)
    model.to(device)
    params = dict(model.named_parameters())
    optimizer = torch.optim.AdamW(params.values(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
    ema = {k: p.detach().clone() for k, p in params.items()} if config.ema_decay else None
    step = 0
    if start is not None:
        model.load_state_dict(start.model)
        optimizer.load_state_dict(start.optimizer)
        # The lambdas are code, not state: LambdaLR stores None for them and skips None on load.
        scheduler.load_state_dict(start.scheduler | {"lr_lambdas": [None] * len(optimizer.param_groups)})
        if ema is not None and start.ema is not None:
            ema = {k: start.ema[k].to(device) for k in ema}
        set_rng_state(start.rng)
        step = start.step

    train_config = {
        "train": config.model_dump(mode="json"),
        "policy": policy_config.model_dump(mode="json"),
        "dataset": {
            "root": str(root.resolve()),
            "fingerprint": fingerprint,
            "split": config.split,
            "episodes": dataset.num_episodes,
            "frames": dataset.num_frames,
            "total_episodes": info.total_episodes,
            "total_frames": info.total_frames,
            "selected_episodes": config.episodes,
        },
        "sources": config.sources if config.sources is not None else dataset_sources(root),
        # Frame 0 of each training episode (state keys concatenated): an evaluation refuses a seed
        # whose reset produces one of them, whatever the dataset's provenance says.
        "first_frames": {"keys": policy_config.state_keys, "values": first_frames(dataset, policy_config.state_keys)},
    }

    out.mkdir(parents=True, exist_ok=True)
    log_path = out / TRAIN_LOG
    _truncate_log(log_path, step)
    sampler = StepSampler(len(dataset), config.batch_size, config.seed, config.steps, start_step=step)
    end = config.steps if stop_at is None else min(config.steps, stop_at)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers, collate_fn=collate)
    losses: list[tuple[int, float]] = []
    checkpoint = last_checkpoint(out)
    first_step = step
    bar = tqdm(total=end, initial=step, desc="training", unit="step", disable=not progress)
    t0, cpu0 = time.perf_counter(), time.process_time()
    model.train()
    with _deterministic(), open(log_path, "a") as log:
        for batch in loader:
            if step >= end:
                break
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            loss = model.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                d = float(config.ema_decay)  # type: ignore[arg-type]
                with torch.no_grad():
                    for k, p in params.items():
                        ema[k].mul_(d).add_(p.detach(), alpha=1 - d)
            step += 1
            value = float(loss.detach())
            losses.append((step, value))
            if step % config.log_freq == 0 or step == end:
                elapsed = time.perf_counter() - t0
                rate = (step - first_step) * config.batch_size / elapsed if elapsed > 0 else 0.0
                log.write(json.dumps({"step": step, "loss": value, "lr": scheduler.get_last_lr()[0],
                                      "grad_norm": float(grad_norm), "samples_per_s": round(rate, 1)}) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{value:.4f}", samples_s=f"{rate:.0f}")
                if on_log is not None:
                    on_log(step, value)
            bar.update()
            if step == end or (config.save_freq and step % config.save_freq == 0):
                checkpoint = save_checkpoint(
                    out, step, config.steps, model, train_config,
                    optimizer=optimizer, scheduler=scheduler, ema=ema, batch_size=config.batch_size,
                )
    bar.close()
    elapsed = time.perf_counter() - t0
    assert checkpoint is not None
    tail = [v for _, v in losses[-50:]]
    return TrainResult(
        output_dir=out,
        checkpoint=checkpoint,
        step=step,
        steps_this_run=step - first_step,
        final_loss=float(np.mean(tail)) if tail else float("nan"),
        samples_per_s=(step - first_step) * config.batch_size / elapsed if elapsed > 0 else 0.0,
        elapsed_s=elapsed,
        cpu_s=time.process_time() - cpu0,
        device=str(device),
        fingerprint=fingerprint,
        losses=losses,
    )


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past `step` (a killed run logged steps its last checkpoint does not hold)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line)["step"]) <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError):
            continue
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(f"{line}\n" for line in keep))
    os.replace(tmp, path)


def read_train_log(output_dir: Path | str) -> list[dict[str, Any]]:
    path = Path(output_dir) / TRAIN_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def dataset_summary(root: Path | str) -> dict[str, Any]:
    info = DatasetInfo.load(Path(root))
    return {"episodes": info.total_episodes, "frames": info.total_frames, "fps": info.fps}
