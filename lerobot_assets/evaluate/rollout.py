"""Rollouts in gym-pusht: a batch of envs stepped in lockstep, one agent call per step for the batch.

Each env's `done` latches at success (terminated) or at `max_steps`; a finished env is not stepped
again and nothing after its last step is counted (LeRobot's `eval_policy` counts one step past the
end, which includes the start of the next auto-reset episode). Observations are given in the
dataset's terms: `observation.state` (agent xy), `observation.environment_state` (the block's
keypoints, as the PushT source records them) and, for image policies, `observation.image` (CHW
float in [0, 1], what the reader returns).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from lerobot_assets.evaluate.agents import Agent
from lerobot_assets.evaluate.metrics import EpisodeMetrics
from lerobot_assets.sources.pusht import (
    ENV_STATE_KEY,
    IMAGE_KEY,
    PUSHT_ENV_ID,
    STATE_KEY,
    block_keypoints,
    load_gym_pusht,
    render_top_camera,
)

MAX_STEPS = 300  # LeRobot's PushtEnv episode_length


@dataclass
class RolloutBatch:
    episodes: list[EpisodeMetrics]
    # Top-camera frames (480x640x3 uint8) of the episodes asked to be recorded, by episode_ix.
    frames: dict[int, list[np.ndarray]] = field(default_factory=dict)
    actions: dict[int, np.ndarray] = field(default_factory=dict)


def make_eval_env(image: bool, image_size: int = 96) -> gym.Env:
    """gym-pusht for evaluation: pixels only when the policy looks at them (rendering costs more
    than the physics step)."""
    load_gym_pusht()
    if image:
        return gym.make(PUSHT_ENV_ID, obs_type="pixels_agent_pos", observation_width=image_size,
                        observation_height=image_size, max_episode_steps=100_000)
    return gym.make(PUSHT_ENV_ID, obs_type="environment_state_agent_pos", max_episode_steps=100_000)


def observation(env: gym.Env, obs: dict[str, Any], image: bool) -> dict[str, np.ndarray]:
    out = {
        STATE_KEY: np.asarray(obs["agent_pos"], dtype=np.float64).astype(np.float32),
        # The same computation the recorder uses (the env's own environment_state when it has one).
        ENV_STATE_KEY: block_keypoints(env),
    }
    if image:
        out[IMAGE_KEY] = np.ascontiguousarray(np.asarray(obs["pixels"]).transpose(2, 0, 1), dtype=np.float32) / 255.0
    return out


def reset_observations(seeds: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """What an env reset with each seed shows at step 0 (for the seed-overlap check), state only."""
    env = make_eval_env(image=False)
    try:
        return [observation(env, env.reset(seed=int(seed))[0], False) for seed in seeds]
    finally:
        env.close()


def run_batch(
    agent: Agent,
    seeds: Sequence[int],
    first_ix: int = 0,
    *,
    image: bool = False,
    max_steps: int = MAX_STEPS,
    record: Sequence[int] = (),
    on_step: Callable[[], None] | None = None,
) -> RolloutBatch:
    """Roll out `agent` on `seeds` (one env each); episodes numbered from `first_ix`.
    `record`: episode numbers whose top-camera frames to keep (step 0 .. the last step's result)."""
    envs = [make_eval_env(image) for _ in seeds]
    try:
        obs, infos = [], []
        for env, seed in zip(envs, seeds):
            o, info = env.reset(seed=seed)
            obs.append(observation(env, o, image))
            infos.append(info)
        agent.reset(seeds, obs, infos)
        n = len(seeds)
        done = [False] * n
        sums, maxes = [0.0] * n, [0.0] * n
        coverage = [0.0] * n
        success = [False] * n
        lengths = [0] * n
        frames = {first_ix + i: [render_top_camera(envs[i])] for i in range(n) if first_ix + i in record}
        actions: dict[int, list[np.ndarray]] = {first_ix + i: [] for i in range(n)}
        for _ in range(max_steps):
            if all(done):
                break
            act = agent.act(obs, infos)
            for i, env in enumerate(envs):
                if done[i]:
                    continue
                a = np.asarray(act[i], dtype=np.float32)
                actions[first_ix + i].append(a)
                o, reward, terminated, truncated, info = env.step(a)
                obs[i], infos[i] = observation(env, o, image), info
                sums[i] += float(reward)
                maxes[i] = max(maxes[i], float(reward))
                coverage[i] = max(coverage[i], float(info["coverage"]))
                lengths[i] += 1
                success[i] = success[i] or bool(info["is_success"])
                if first_ix + i in frames:
                    frames[first_ix + i].append(render_top_camera(env))
                if terminated or truncated or lengths[i] >= max_steps:
                    done[i] = True
            if on_step is not None:
                on_step()
        episodes = [
            EpisodeMetrics(first_ix + i, int(seeds[i]), sums[i], maxes[i], success[i], lengths[i], coverage[i])
            for i in range(n)
        ]
        return RolloutBatch(episodes, frames, {k: np.stack(v) if v else np.zeros((0, 2), np.float32) for k, v in actions.items()})
    finally:
        for env in envs:
            env.close()


def run_rollouts(
    agent: Agent,
    seeds: Sequence[int],
    *,
    batch_size: int = 10,
    image: bool = False,
    max_steps: int = MAX_STEPS,
    record: int = 0,
    on_batch: Callable[[RolloutBatch], None] | None = None,
) -> RolloutBatch:
    """Every seed, `batch_size` envs at a time (episode i runs seed `seeds[i]`); the top-camera frames of
    the first `record` episodes are kept."""
    out = RolloutBatch([])
    for start in range(0, len(seeds), batch_size):
        part = run_batch(agent, seeds[start : start + batch_size], start, image=image, max_steps=max_steps,
                         record=range(record))
        out.episodes += part.episodes
        out.frames.update(part.frames)
        out.actions.update(part.actions)
        if on_batch is not None:
            on_batch(part)
    return out
