"""The gym-pusht env an episode runs in, and its top-down camera.

gym-pusht is imported when the first env (or expert) is made, not when this package is: it imports
pygame, whose settings (headless video, no banner) must be in the environment before pygame loads, and
setting the process's environment is the business of whoever creates an env, not of an `import`.
"""

import os
from typing import TYPE_CHECKING

import cv2
import gymnasium as gym
import numpy as np

from lerobot_assets.sources.pusht.config import PUSHT_ENV_ID, TOP_CAMERA_HEIGHT, TOP_CAMERA_WIDTH, PushTSourceConfig

if TYPE_CHECKING:
    from gym_pusht.envs.pusht import PushTEnv


def load_gym_pusht() -> "type[PushTEnv]":
    """gym-pusht's env class, imported headless; registers `PUSHT_ENV_ID` with gymnasium.

    Call it before `gym.make(PUSHT_ENV_ID)` when not going through `make_env`. A caller's own
    `SDL_VIDEODRIVER` or `PYGAME_HIDE_SUPPORT_PROMPT` is kept.
    """
    # pygame (imported by gym_pusht) wants a display unless told otherwise; workers and CI have none.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    # pygame prints an import banner on stdout, where commands print their reports.
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    # Lazy, so that the variables above are set before pygame loads (it reads the banner one at import).
    from gym_pusht.envs.pusht import PushTEnv

    return PushTEnv


def make_env(config: PushTSourceConfig) -> gym.Env:
    """The gym-pusht env an episode runs in (also what a policy evaluation should use)."""
    load_gym_pusht()
    return gym.make(
        PUSHT_ENV_ID,
        obs_type="pixels_agent_pos",
        render_mode="rgb_array",
        observation_width=config.image_size,
        observation_height=config.image_size,
        # The registered TimeLimit is 300; the episode length is ours to set.
        max_episode_steps=config.max_steps,
    )


def block_keypoints(env: gym.Env) -> np.ndarray:
    """The block's 8 keypoints as 16 float32 (x0, y0, x1, y1, ...): exactly what gym-pusht's
    `environment_state_agent_pos` observation holds as `environment_state` (`get_keypoints` of the
    block's shapes, flattened), read from any obs type's env."""
    unwrapped = env.unwrapped
    keypoints = unwrapped.get_keypoints(unwrapped._block_shapes)  # type: ignore[attr-defined]
    return np.asarray(keypoints, dtype=np.float64).reshape(-1).astype(np.float32)


def render_top_camera(env: gym.Env) -> np.ndarray:
    """The env's current state as a 480x640x3 uint8 top-down camera frame.

    gym-pusht draws its 512x512 workspace and cv2-resizes it to the size asked for
    (`visualization_width/height`), so this is the env's native render at 640x480 - same drawing, same
    resize - with one difference: `env.render()` overlays a cross at the *previous* action, which would
    leak the action history into an observation (and gym-pusht places it with x and y scales swapped when
    the frame is not square). The 4:3 frame stretches the square workspace (x by 1.25, y by 0.9375); a
    fixed linear map costs a policy nothing, where letterboxing would spend a quarter of the pixels on
    padding.
    """
    # Lazy, like gym_pusht itself (see load_gym_pusht); the env exists, so pygame is loaded already.
    import pygame

    screen = env.unwrapped._draw()  # type: ignore[attr-defined]
    width, height = screen.get_size()
    # Row-major bytes give the same pixels as gym-pusht's transposed surfarray view, but contiguous:
    # cv2.resize of the strided view took ~4x longer (5.2 ms against 1.3 ms per frame, measured).
    img = np.frombuffer(pygame.image.tobytes(screen, "RGB"), dtype=np.uint8).reshape(height, width, 3)
    return cv2.resize(img, (TOP_CAMERA_WIDTH, TOP_CAMERA_HEIGHT))
