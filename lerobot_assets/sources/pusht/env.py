"""The gym-pusht env an episode runs in, and its top-down camera."""

import cv2
import gym_pusht  # noqa: F401  (importing registers gym_pusht/PushT-v0)
import gymnasium as gym
import numpy as np
import pygame

from lerobot_assets.sources.pusht.config import PUSHT_ENV_ID, TOP_CAMERA_HEIGHT, TOP_CAMERA_WIDTH, PushTSourceConfig


def make_env(config: PushTSourceConfig) -> gym.Env:
    """The gym-pusht env an episode runs in (also what a policy evaluation should use)."""
    return gym.make(
        PUSHT_ENV_ID,
        obs_type="pixels_agent_pos",
        render_mode="rgb_array",
        observation_width=config.image_size,
        observation_height=config.image_size,
        # The registered TimeLimit is 300; the episode length is ours to set.
        max_episode_steps=config.max_steps,
    )


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
    screen = env.unwrapped._draw()  # type: ignore[attr-defined]
    width, height = screen.get_size()
    # Row-major bytes give the same pixels as gym-pusht's transposed surfarray view, but contiguous:
    # cv2.resize of the strided view took ~4x longer (5.2 ms against 1.3 ms per frame, measured).
    img = np.frombuffer(pygame.image.tobytes(screen, "RGB"), dtype=np.uint8).reshape(height, width, 3)
    return cv2.resize(img, (TOP_CAMERA_WIDTH, TOP_CAMERA_HEIGHT))
