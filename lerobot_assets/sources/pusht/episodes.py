"""PushT episodes: streamed frame by frame for a writer, or whole in memory; the expert's success."""

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from lerobot_assets.sources.pusht.config import (
    ACTION_KEY,
    DONE_KEY,
    ENV_STATE_KEY,
    IMAGE_KEY,
    REWARD_KEY,
    STATE_KEY,
    SUCCESS_KEY,
    TOP_CAMERA_KEY,
    PushTSourceConfig,
)
from lerobot_assets.sources.pusht.env import block_keypoints, make_env, render_top_camera
from lerobot_assets.sources.pusht.expert import PushTExpert


@dataclass
class EpisodeResult:
    """The outcome of a streamed episode, filled in as its frames are yielded."""

    seed: int
    length: int = 0
    success: bool = False
    max_coverage: float = 0.0
    final_coverage: float = 0.0
    finished: bool = False
    elapsed_s: float = 0.0


@dataclass
class SimEpisode:
    """A whole episode in memory; `frames` holds one stacked array per feature key."""

    seed: int
    task: str
    frames: dict[str, np.ndarray]
    success: bool
    max_coverage: float
    final_coverage: float = 0.0

    @property
    def length(self) -> int:
        return int(self.frames[STATE_KEY].shape[0])

    def iter_frames(self) -> Iterator[dict[str, Any]]:
        """Per-frame dicts `{key: array, "task": str}`, as a writer's `add_frame` takes them."""
        for i in range(self.length):
            frame: dict[str, Any] = {key: arr[i] for key, arr in self.frames.items()}
            frame["task"] = self.task
            yield frame


def iter_episode_frames(
    seed: int, config: PushTSourceConfig, result: EpisodeResult | None = None
) -> Iterator[dict[str, Any]]:
    """Stream one episode frame by frame, holding none of it: at 480x640 a 300-frame episode is 276 MB.

    Each frame is `{observation.state, observation.environment_state, action, next.reward, next.done,
    next.success, observation.image[, observation.images.top], task}` with fresh arrays (safe to
    buffer). `next.*` is the outcome of the frame's action: gym-pusht's reward (coverage / 0.95,
    clipped to 1), done at success or on the last step `max_steps` allows, success as `is_success`. Pass `result` to read the success flag and coverage once the
    iterator is exhausted (`result.finished`).
    """
    res = result if result is not None else EpisodeResult(seed=seed)
    res.seed = seed
    t0 = time.perf_counter()
    env = make_env(config)
    try:
        obs, info, expert = _reset(env, seed, config)
        for step in range(config.max_steps):
            agent_pos = np.asarray(obs["agent_pos"])
            action = _act(expert, agent_pos, info)
            frame: dict[str, Any] = {
                STATE_KEY: agent_pos.astype(np.float32),
                ENV_STATE_KEY: block_keypoints(env),
                ACTION_KEY: action,
                IMAGE_KEY: np.array(obs["pixels"], dtype=np.uint8, copy=True),
            }
            if config.top_camera:
                frame[TOP_CAMERA_KEY] = render_top_camera(env)
            frame["task"] = config.task
            obs, reward, terminated, truncated, info = env.step(action)
            frame[REWARD_KEY] = np.array([reward], dtype=np.float32)
            frame[DONE_KEY] = np.array([bool(terminated or truncated or step == config.max_steps - 1)])
            frame[SUCCESS_KEY] = np.array([bool(info["is_success"])])
            res.length += 1
            res.final_coverage = float(info["coverage"])
            res.max_coverage = max(res.max_coverage, res.final_coverage)
            res.success = bool(info["is_success"])
            res.elapsed_s = time.perf_counter() - t0
            yield frame
            if terminated:
                break
        res.finished = True
    finally:
        env.close()
        res.elapsed_s = time.perf_counter() - t0


def _reset(env: Any, seed: int, config: PushTSourceConfig) -> tuple[dict[str, Any], dict[str, Any], PushTExpert]:
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed) if config.expert_noise > 0 else None
    return obs, info, PushTExpert(info["goal_pose"], noise=config.expert_noise, rng=rng)


def _act(expert: PushTExpert, agent_pos: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    # The env steps with exactly the float32 target that is recorded, so a replay matches.
    return expert.act(agent_pos, info["vel_agent"], info["block_pose"]).astype(np.float32)


def first_frame_signature(state: np.ndarray, action: np.ndarray) -> bytes:
    """What identifies an episode's seed: its first frame's state and action as float32 bytes.
    The state alone (the agent's integer start position) repeats across seeds; the first action
    depends on the block's pose too."""
    return np.asarray(state, np.float32).tobytes() + np.asarray(action, np.float32).tobytes()


def seed_signatures(seeds: Iterable[int], config: PushTSourceConfig) -> dict[bytes, int]:
    """{first-frame signature: seed} for these seeds: one env reset and one expert step each, no
    episode run (about 5 ms a seed)."""
    out: dict[bytes, int] = {}
    env = make_env(config.model_copy(update={"top_camera": False}))
    try:
        for seed in seeds:
            obs, info, expert = _reset(env, seed, config)
            agent_pos = np.asarray(obs["agent_pos"])
            out.setdefault(first_frame_signature(agent_pos.astype(np.float32), _act(expert, agent_pos, info)), seed)
    finally:
        env.close()
    return out


def generate_episode(seed: int, config: PushTSourceConfig | None = None) -> SimEpisode:
    """One whole episode in memory (the writer should prefer `iter_episode_frames`)."""
    config = config or PushTSourceConfig()
    result = EpisodeResult(seed=seed)
    columns: dict[str, list[np.ndarray]] = {key: [] for key in config.features()}
    for frame in iter_episode_frames(seed, config, result):
        for key, values in columns.items():
            values.append(frame[key])
    frames = {key: np.stack(values) for key, values in columns.items()}
    return SimEpisode(
        seed=seed,
        task=config.task,
        frames=frames,
        success=result.success,
        max_coverage=result.max_coverage,
        final_coverage=result.final_coverage,
    )


def episode_seeds(config: PushTSourceConfig) -> list[int]:
    return [config.seed + i for i in range(config.episodes)]


def generate_episodes(config: PushTSourceConfig) -> Iterator[SimEpisode]:
    """Episode i uses seed `config.seed + i`; generated lazily, one at a time."""
    for seed in episode_seeds(config):
        yield generate_episode(seed, config)


def success_rate(episodes: Iterable[SimEpisode | EpisodeResult]) -> float:
    flags = [bool(ep.success) for ep in episodes]
    return sum(flags) / len(flags) if flags else 0.0


def report(config: PushTSourceConfig) -> dict[str, Any]:
    """Run `config`'s episodes (streamed, nothing kept) and measure the expert."""
    results: list[EpisodeResult] = []
    t0, cpu0 = time.perf_counter(), time.process_time()
    for seed in episode_seeds(config):
        res = EpisodeResult(seed=seed)
        for _ in iter_episode_frames(seed, config, res):
            pass
        results.append(res)
    elapsed = time.perf_counter() - t0
    # CPU time too: on a shared machine wall-clock speed says more about the neighbours than the code.
    cpu = time.process_time() - cpu0
    steps = sum(r.length for r in results)
    return {
        "episodes": len(results),
        "successes": sum(r.success for r in results),
        "success_rate": success_rate(results),
        "mean_length": steps / len(results) if results else 0.0,
        "frames": steps,
        "steps_per_s": steps / elapsed if elapsed > 0 else 0.0,
        "steps_per_cpu_s": steps / cpu if cpu > 0 else 0.0,
        "elapsed_s": elapsed,
        "top_camera": config.top_camera,
        "max_steps": config.max_steps,
        "failed_seeds": [r.seed for r in results if not r.success],
    }
