"""Evaluating policies in the gym-pusht simulation (pure library: no Dagster import).

- `run`: `evaluate_checkpoint` (policy + expert and random baselines on the same held-out seeds,
  eval_info.json in LeRobot's shape, MP4s of the first rollouts, a preview strip)
- `rollout`: batched rollouts with latched `done` and nothing counted past an episode's end
- `agents`: `PolicyAgent`, `ExpertAgent`, `RandomAgent`, `ReplayAgent`
- `metrics`: per-episode metrics, aggregates, the Beta-posterior success interval
- `seeds`: the refusal of evaluation seeds that trained the policy (`SeedOverlapError`)
"""

from lerobot_assets.evaluate.agents import Agent, ExpertAgent, PolicyAgent, RandomAgent, ReplayAgent
from lerobot_assets.evaluate.metrics import EpisodeMetrics, aggregate, success_interval
from lerobot_assets.evaluate.rollout import MAX_STEPS, RolloutBatch, run_batch, run_rollouts
from lerobot_assets.evaluate.run import (
    DEFAULT_SEED_START,
    EVAL_INFO,
    AgentEval,
    EvalResult,
    evaluate_agent,
    evaluate_checkpoint,
    read_eval_info,
)
from lerobot_assets.evaluate.seeds import SeedOverlapError, check_disjoint, declared_training_seeds

__all__ = [
    "DEFAULT_SEED_START",
    "EVAL_INFO",
    "MAX_STEPS",
    "Agent",
    "AgentEval",
    "EpisodeMetrics",
    "EvalResult",
    "ExpertAgent",
    "PolicyAgent",
    "RandomAgent",
    "ReplayAgent",
    "RolloutBatch",
    "SeedOverlapError",
    "aggregate",
    "check_disjoint",
    "declared_training_seeds",
    "evaluate_agent",
    "evaluate_checkpoint",
    "read_eval_info",
    "run_batch",
    "run_rollouts",
    "success_interval",
]
