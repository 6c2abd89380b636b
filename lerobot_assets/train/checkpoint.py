"""Checkpoints in LeRobot's layout, written atomically, and loading them back.

```
<output_dir>/checkpoints/<step, max(6, len(str(steps))) digits>/
    pretrained_model/{config.json (with "type"), model.safetensors, train_config.json}
    training_state/{training_step.json, rng_state.safetensors, optimizer_state.safetensors,
                    optimizer_param_groups.json, scheduler_state.json[, train_model.safetensors]}
<output_dir>/checkpoints/last -> <step>   (a relative symlink)
```

A checkpoint is built in a temp directory beside its final name and renamed into place; `last` is
a new symlink renamed over the old one. A crash while saving leaves the previous `last` and its
checkpoint intact (at worst a `.tmp-*` directory, removed by the next save). With EMA, the
inference weights in `pretrained_model/model.safetensors` are the EMA weights and the raw training
weights go to `training_state/train_model.safetensors`. Unlike LeRobot's `update_last_checkpoint`,
a `last` that is a real directory is refused by name instead of failing inside `os.symlink`.
"""

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lerobot_assets.format.atomic import fsync_dir, make_temp_dir, write_json_atomic
from lerobot_assets.train.config import POLICY_TYPE, PolicyConfig
from lerobot_assets.train.policy import ChunkingPolicy
from lerobot_assets.train.safetensors_io import SafetensorsError, load_file, save_file

CHECKPOINTS = "checkpoints"
LAST = "last"
PRETRAINED = "pretrained_model"
TRAINING_STATE = "training_state"
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
TRAIN_CONFIG_FILE = "train_config.json"
TRAIN_MODEL_FILE = "train_model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file."""


def step_name(step: int, total_steps: int) -> str:
    return f"{step:0{max(6, len(str(total_steps)))}d}"


def checkpoints_dir(output_dir: Path) -> Path:
    return Path(output_dir) / CHECKPOINTS


def last_checkpoint(output_dir: Path) -> Path | None:
    last = checkpoints_dir(output_dir) / LAST
    return last if last.exists() else None


def check_last_is_link(output_dir: Path) -> None:
    last = checkpoints_dir(output_dir) / LAST
    if last.exists() and not last.is_symlink():
        raise FileExistsError(f"{last}: is a real directory, not the symlink to the latest checkpoint; move it away")


@dataclass
class TrainingState:
    step: int
    model: dict[str, torch.Tensor]  # training weights
    ema: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, torch.Tensor]


def save_checkpoint(
    output_dir: Path,
    step: int,
    total_steps: int,
    policy: ChunkingPolicy,
    train_config: dict[str, Any],
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: dict[str, torch.Tensor] | None,
    batch_size: int,
) -> Path:
    """Write checkpoint `step` (see module docstring) and point `last` at it; returns its path."""
    root = checkpoints_dir(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    check_last_is_link(output_dir)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    name = step_name(step, total_steps)
    tmp = make_temp_dir(root, f".tmp-{name}-")
    try:
        pre, state = tmp / PRETRAINED, tmp / TRAINING_STATE
        pre.mkdir()
        state.mkdir()
        weights = {k: v.detach().clone() for k, v in policy.state_dict().items()}
        if ema is not None:
            inference = dict(weights)
            inference.update(ema)
            save_file(inference, pre / MODEL_FILE, {"format": "pt"})
            save_file(weights, state / TRAIN_MODEL_FILE, {"format": "pt"})
        else:
            save_file(weights, pre / MODEL_FILE, {"format": "pt"})
        write_json_atomic(pre / CONFIG_FILE, policy.config.model_dump(mode="json"))
        write_json_atomic(pre / TRAIN_CONFIG_FILE, train_config)
        write_json_atomic(state / "training_step.json", {"step": step, "num_processes": 1, "batch_size": batch_size})
        save_file(rng_state(), state / "rng_state.safetensors")
        tensors, groups = flatten_optimizer(optimizer.state_dict())
        save_file(tensors, state / "optimizer_state.safetensors")
        write_json_atomic(state / "optimizer_param_groups.json", groups)
        write_json_atomic(state / "scheduler_state.json", _jsonable(scheduler.state_dict()))
        fsync_dir(pre)
        fsync_dir(state)
        fsync_dir(tmp)
        final = root / name
        if final.exists():  # re-saving a step (a resumed run's end): the old one goes only after
            old = make_temp_dir(root, f".tmp-old-{name}-")
            os.replace(final, old / name)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _point_last(root, name)
    return root / name


def _point_last(root: Path, name: str) -> None:
    """`last` -> name, swapped atomically: a new relative symlink renamed over the old one."""
    for i in range(100):
        link = root / f".tmp-last-{os.getpid()}-{i}"
        try:
            os.symlink(name, link)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"{root}: no free temp name for the last symlink")
    os.replace(link, root / LAST)
    fsync_dir(root)


# ---------------------------------------------------------------------------------------------- state


def rng_state() -> dict[str, torch.Tensor]:
    version, values, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    out = {
        "py_rng_version": torch.tensor([version], dtype=torch.int64),
        "py_rng_state": torch.tensor(values, dtype=torch.int64),
        "py_rng_gauss": torch.tensor([np.nan if gauss is None else gauss], dtype=torch.float64),
        "np_rng_state_values": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "np_rng_state_index": torch.tensor([pos], dtype=torch.int64),
        "np_rng_has_gauss": torch.tensor([has_gauss], dtype=torch.int64),
        "np_rng_cached_gaussian": torch.tensor([cached], dtype=torch.float64),
        "torch_rng_state": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["torch_cuda_rng_state"] = torch.cuda.get_rng_state()
    return out


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    gauss = float(state["py_rng_gauss"][0])
    random.setstate((
        int(state["py_rng_version"][0]),
        tuple(int(x) for x in state["py_rng_state"].tolist()),
        None if np.isnan(gauss) else gauss,
    ))
    np.random.set_state((
        "MT19937",
        state["np_rng_state_values"].numpy().astype(np.uint32),
        int(state["np_rng_state_index"][0]),
        int(state["np_rng_has_gauss"][0]),
        float(state["np_rng_cached_gaussian"][0]),
    ))
    torch.set_rng_state(state["torch_rng_state"])
    if "torch_cuda_rng_state" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["torch_cuda_rng_state"])


def flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """The optimizer state as `state/<param>/<name>` tensors, and its param groups as JSON."""
    tensors = {}
    for pid, entries in sd["state"].items():
        for name, value in entries.items():
            tensors[f"state/{pid}/{name}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return tensors, _jsonable(sd["param_groups"])


def unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split("/", 2)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": groups}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return None  # callables (LambdaLR's lambdas) are not state


# ---------------------------------------------------------------------------------------------- loading


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not readable JSON ({e})") from None


def resolve_pretrained(path: Path | str) -> Path:
    """The `pretrained_model` directory of: an output dir (its `last`), a checkpoint dir, or itself."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint")
    last = p / CHECKPOINTS / LAST
    if last.exists():
        # Named through the link's target, so errors say which checkpoint (000123, not last).
        p = p / CHECKPOINTS / os.readlink(last) if last.is_symlink() else last
    if (p / PRETRAINED).is_dir():
        p = p / PRETRAINED
    if not (p / CONFIG_FILE).exists() and not (p / MODEL_FILE).exists():
        raise CheckpointError(f"{p / CONFIG_FILE}: missing (not a checkpoint, a checkpoint dir or an output dir)")
    return p


def load_policy(path: Path | str, device: str | torch.device = "cpu") -> tuple[ChunkingPolicy, dict[str, Any]]:
    """The policy of a checkpoint (in eval mode) and its train_config.json; CheckpointError naming
    the file that does not load."""
    pre = resolve_pretrained(path)
    raw = _read_json(pre / CONFIG_FILE)
    if not isinstance(raw, dict) or raw.get("type") != POLICY_TYPE:
        got = raw.get("type") if isinstance(raw, dict) else None
        raise CheckpointError(f"{pre / CONFIG_FILE}: policy type {got!r} is not {POLICY_TYPE!r}")
    try:
        config = PolicyConfig.model_validate(raw)
        policy = ChunkingPolicy(config)
    except ValueError as e:
        raise CheckpointError(f"{pre / CONFIG_FILE}: {str(e).splitlines()[0]}") from None
    try:
        weights = load_file(pre / MODEL_FILE)
    except SafetensorsError as e:
        raise CheckpointError(str(e)) from None
    try:
        policy.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{pre / MODEL_FILE}: weights do not fit config.json ({str(e).splitlines()[0]})") from None
    train_config = _read_json(pre / TRAIN_CONFIG_FILE) if (pre / TRAIN_CONFIG_FILE).exists() else {}
    return policy.to(device).eval(), train_config


def load_training_state(checkpoint: Path) -> TrainingState:
    state_dir = checkpoint / TRAINING_STATE
    if not state_dir.is_dir():
        raise NotADirectoryError(f"{state_dir}: missing; the checkpoint cannot resume training")
    try:
        step = int(_read_json(state_dir / "training_step.json")["step"])
        pre_weights = load_file(checkpoint / PRETRAINED / MODEL_FILE)
        ema = None
        if (state_dir / TRAIN_MODEL_FILE).exists():
            model = load_file(state_dir / TRAIN_MODEL_FILE)
            ema = pre_weights
        else:
            model = pre_weights
        optimizer = unflatten_optimizer(
            load_file(state_dir / "optimizer_state.safetensors"), _read_json(state_dir / "optimizer_param_groups.json")
        )
        scheduler = _read_json(state_dir / "scheduler_state.json")
        rng = load_file(state_dir / "rng_state.safetensors")
    except SafetensorsError as e:
        raise CheckpointError(str(e)) from None
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{state_dir}: malformed training state ({e})") from None
    return TrainingState(step, model, ema, optimizer, scheduler, rng)
