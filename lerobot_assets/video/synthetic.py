"""Deterministic moving test scenes, for tests and benchmarks of the video code.

Smooth gradients plus a moving disc: smooth enough that a lossy codec at default quality keeps
PSNR well above 30 dB, moving enough that inter-frame prediction has real work to do, and
different per frame so a mis-mapped timestamp shows up as a wrong frame.
"""

import numpy as np


def moving_scene_frame(index: int, height: int = 64, width: int = 96) -> np.ndarray:
    """Frame `index` of the scene as HWC uint8."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = float(index)
    red = 127.5 + 110.0 * np.sin((xx + 0.06 * width * t) / (0.35 * width))
    green = 127.5 + 110.0 * np.cos((yy - 0.05 * height * t) / (0.3 * height))
    cx = width * (0.5 + 0.3 * np.sin(t / 4.0))
    cy = height * (0.5 + 0.3 * np.cos(t / 5.0))
    radius = 0.18 * min(height, width)
    disc = ((xx - cx) ** 2 + (yy - cy) ** 2) < radius**2
    blue = np.where(disc, 220.0, 40.0 + 60.0 * (xx / width))
    frame = np.stack([red, green, blue], axis=-1)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def moving_scene(num_frames: int, height: int = 64, width: int = 96, start: int = 0) -> np.ndarray:
    """(N, H, W, 3) uint8 frames `start .. start + num_frames - 1` of the scene."""
    return np.stack([moving_scene_frame(start + i, height, width) for i in range(num_frames)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 images or stacks (inf if equal)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
