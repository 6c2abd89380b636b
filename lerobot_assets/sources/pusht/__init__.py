"""PushT episodes from the gym-pusht simulation, driven by a scripted expert.

The built-in source of real episodes: no hardware, no learning. A seed fixes the initial agent and block
pose (through the env's own RNG) and the expert is deterministic, so a seed reproduces an episode byte
for byte.

Frame semantics follow LeRobot's `lerobot/pusht`: frame t holds the observation (agent position and
images) on which action t was taken, and `action` is the commanded absolute target of the agent.

Pure library: no Dagster import. `iter_episode_frames` streams frames for a dataset writer;
`generate_episode(s)` return whole episodes; `report` measures the expert (`lerobot-assets sim-report`).

- `config`: `PushTSourceConfig`, the recorded features and the constants
- `expert`: the scripted planner (`PushTExpert`)
- `env`: `make_env` and `render_top_camera`; gym-pusht (and pygame) load there, headless, on first use
- `episodes`: `iter_episode_frames`, `generate_episode(s)`, `success_rate`, `report`
- `record`: `record_pusht`, episodes straight into a `DatasetWriter`
"""

from lerobot_assets.sources.pusht.config import (
    ACTION_KEY,
    DONE_KEY,
    ENV_STATE_KEY,
    IMAGE_KEY,
    PUSHT_ENV_ID,
    PUSHT_FPS,
    PUSHT_TASK,
    REWARD_KEY,
    STATE_KEY,
    SUCCESS_KEY,
    TOP_CAMERA_HEIGHT,
    TOP_CAMERA_KEY,
    TOP_CAMERA_WIDTH,
    PushTSourceConfig,
    pusht_features,
)
from lerobot_assets.sources.pusht.env import block_keypoints, load_gym_pusht, make_env, render_top_camera
from lerobot_assets.sources.pusht.episodes import (
    EpisodeResult,
    SimEpisode,
    episode_seeds,
    generate_episode,
    generate_episodes,
    iter_episode_frames,
    report,
    success_rate,
)
from lerobot_assets.sources.pusht.expert import WORKSPACE, PushTExpert, pose_cost

__all__ = [
    "ACTION_KEY",
    "DONE_KEY",
    "ENV_STATE_KEY",
    "IMAGE_KEY",
    "PUSHT_ENV_ID",
    "PUSHT_FPS",
    "PUSHT_TASK",
    "REWARD_KEY",
    "STATE_KEY",
    "SUCCESS_KEY",
    "TOP_CAMERA_HEIGHT",
    "TOP_CAMERA_KEY",
    "TOP_CAMERA_WIDTH",
    "WORKSPACE",
    "EpisodeResult",
    "PushTExpert",
    "PushTSourceConfig",
    "SimEpisode",
    "block_keypoints",
    "episode_seeds",
    "generate_episode",
    "generate_episodes",
    "iter_episode_frames",
    "load_gym_pusht",
    "make_env",
    "pose_cost",
    "pusht_features",
    "render_top_camera",
    "report",
    "success_rate",
]
