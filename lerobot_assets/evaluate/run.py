"""`evaluate_checkpoint`: a checkpoint's policy and the two baselines on the same held-out seeds,
written as LeRobot's `eval_info.json` plus videos and a preview.

```
<out>/eval_info.json                         LeRobot's shape (per_task / per_group / overall), plus
                                             per_episode, the interval, baselines, seeds, provenance
<out>/videos/pusht_0/eval_episode_<n>.mp4    the first K policy rollouts, 480x640 top view, H.264
<out>/preview.png                            a strip of frames of rollout 0 (for asset metadata)
```
"""

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lerobot_assets.evaluate.agents import Agent, ExpertAgent, PolicyAgent, RandomAgent
from lerobot_assets.evaluate.metrics import EpisodeMetrics, aggregate
from lerobot_assets.evaluate.rollout import MAX_STEPS, RolloutBatch, run_rollouts
from lerobot_assets.evaluate.seeds import check_disjoint
from lerobot_assets.format.atomic import write_json_atomic
from lerobot_assets.sources.pusht import PUSHT_FPS
from lerobot_assets.train.checkpoint import load_policy, resolve_pretrained
from lerobot_assets.train.loop import resolve_device
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.encode import Mp4FrameWriter

TASK_GROUP = "pusht"
EVAL_INFO = "eval_info.json"
PREVIEW = "preview.png"
DEFAULT_SEED_START = 1000  # LeRobot's EvalPipelineConfig.seed


@dataclass
class AgentEval:
    name: str
    episodes: list[EpisodeMetrics]
    aggregates: dict[str, Any]
    eval_s: float


@dataclass
class EvalResult:
    output_dir: Path
    policy: AgentEval
    baselines: dict[str, AgentEval] = field(default_factory=dict)
    video_paths: list[str] = field(default_factory=list)
    preview: Path | None = None
    eval_info: dict[str, Any] = field(default_factory=dict)


def evaluate_agent(
    agent: Agent, seeds: Sequence[int], *, batch_size: int = 10, image: bool = False,
    max_steps: int = MAX_STEPS, record: int = 0, on_batch: Callable[[RolloutBatch], None] | None = None,
) -> tuple[AgentEval, RolloutBatch]:
    t0 = time.perf_counter()
    rollouts = run_rollouts(agent, seeds, batch_size=batch_size, image=image, max_steps=max_steps,
                            record=record, on_batch=on_batch)
    elapsed = time.perf_counter() - t0
    return AgentEval(agent.name, rollouts.episodes, aggregate(rollouts.episodes), elapsed), rollouts


def evaluate_checkpoint(
    checkpoint: Path | str,
    out: Path | str,
    *,
    episodes: int = 50,
    seed_start: int = DEFAULT_SEED_START,
    videos: int = 4,
    batch_size: int = 10,
    baselines: bool = True,
    max_steps: int = MAX_STEPS,
    device: str = "auto",
    on_batch: Callable[[str, RolloutBatch], None] | None = None,
    extra: dict[str, Any] | None = None,
    torch_threads: int | None = 1,
) -> EvalResult:
    """Evaluate the checkpoint's policy on seeds `seed_start .. seed_start + episodes - 1` (refused
    with SeedOverlapError if any trained it), then the expert and random baselines on the same seeds.
    `extra` entries are added to eval_info.json (e.g. the success floor a check compares with).
    `torch_threads` while evaluating (restored after): a rollout batch is a few envs, which one
    thread runs faster: more threads spin against other processes on a shared machine (20 episodes,
    same checkpoint, load ~4: 15.5 s with 2 threads, 8.8 s with 1)."""
    threads = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    try:
        return _evaluate(checkpoint, out, episodes, seed_start, videos, batch_size, baselines, max_steps, device,
                         on_batch, extra)
    finally:
        torch.set_num_threads(threads)


def _evaluate(
    checkpoint: Path | str, out: Path | str, episodes: int, seed_start: int, videos: int, batch_size: int,
    baselines: bool, max_steps: int, device: str, on_batch: Callable[[str, RolloutBatch], None] | None,
    extra: dict[str, Any] | None,
) -> EvalResult:
    pretrained = resolve_pretrained(checkpoint)
    dev = resolve_device(device)
    policy, train_config = load_policy(pretrained, dev)
    seeds = list(range(seed_start, seed_start + episodes))
    check_disjoint(seeds, train_config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    image = policy.config.encoder == "image"

    def report(name: str) -> Callable[[RolloutBatch], None] | None:
        return (lambda b: on_batch(name, b)) if on_batch is not None else None

    main, rollouts = evaluate_agent(PolicyAgent(policy, dev), seeds, batch_size=batch_size, image=image,
                                    max_steps=max_steps, record=videos, on_batch=report("policy"))
    result = EvalResult(out, main)
    if baselines:
        for agent in (ExpertAgent(), RandomAgent()):
            result.baselines[agent.name], _ = evaluate_agent(agent, seeds, batch_size=batch_size,
                                                             max_steps=max_steps, on_batch=report(agent.name))
    result.video_paths = write_videos(out, rollouts.frames)
    if rollouts.frames:
        result.preview = write_preview(rollouts.frames[min(rollouts.frames)], out / PREVIEW)
    result.eval_info = eval_info(result, seeds, str(pretrained), train_config) | dict(extra or {})
    write_json_atomic(out / EVAL_INFO, result.eval_info)
    return result


def write_videos(out: Path, frames: dict[int, list[np.ndarray]]) -> list[str]:
    """`videos/pusht_0/eval_episode_<n>.mp4` for each recorded rollout (libx264, yuv420p, 10 fps)."""
    paths = []
    folder = out / "videos" / f"{TASK_GROUP}_0"
    for n in sorted(frames):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"eval_episode_{n}.mp4"
        writer = Mp4FrameWriter(path, PUSHT_FPS, VideoEncoderConfig(vcodec="libx264", g=None, crf=23, preset="veryfast"))
        try:
            for frame in frames[n]:
                writer.write(frame)
        finally:
            writer.close()
        paths.append(str(path))
    return paths


def write_preview(frames: list[np.ndarray], path: Path, count: int = 6, height: int = 160) -> Path:
    """A PNG strip of `count` frames spread over a rollout, scaled to `height` pixels."""
    picks = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    tiles = []
    for i in picks:
        im = Image.fromarray(frames[int(i)])
        tiles.append(im.resize((round(im.width * height / im.height), height)))
    strip = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), height), "white")
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.width + 4
    strip.save(path)
    return path


def _overall(agent: AgentEval) -> dict[str, Any]:
    n = len(agent.episodes)
    return agent.aggregates | {"eval_s": agent.eval_s, "eval_ep_s": agent.eval_s / n if n else 0.0}


def eval_info(result: EvalResult, seeds: list[int], checkpoint: str, train_config: dict[str, Any]) -> dict[str, Any]:
    """LeRobot's eval_info.json shape, with our additions after its three keys."""
    eps = result.policy.episodes
    return {
        "per_task": [{
            "task_group": TASK_GROUP,
            "task_id": 0,
            "metrics": {
                "sum_rewards": [e.sum_reward for e in eps],
                "max_rewards": [e.max_reward for e in eps],
                "successes": [e.success for e in eps],
                "video_paths": result.video_paths,
            },
        }],
        "per_group": {TASK_GROUP: result.policy.aggregates},
        "overall": _overall(result.policy),
        "per_episode": [e.to_json() for e in eps],
        "baselines": {
            name: {"overall": _overall(b), "per_episode": [e.to_json() for e in b.episodes]}
            for name, b in result.baselines.items()
        },
        "seeds": {"start": seeds[0] if seeds else None, "count": len(seeds)},
        "checkpoint": checkpoint,
        "dataset": train_config.get("dataset", {}),
        "torch": torch.__version__,
    }


def read_eval_info(out: Path | str) -> dict[str, Any]:
    return json.loads((Path(out) / EVAL_INFO).read_text())
