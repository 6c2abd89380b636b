"""Shared test helpers: small synthetic datasets recorded with the real writer."""

from pathlib import Path

import numpy as np

from lerobot_assets.recording import DatasetWriter

# A dataset LeRobot 0.6.1 itself wrote (copied from ../shared/fixtures so the repo is self-contained).
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "lerobot-v3-tiny"
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
    "action": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
    "observation.images.front": {"dtype": "video", "shape": [48, 64, 3], "names": ["height", "width", "channels"]},
    "observation.images.wrist": {"dtype": "video", "shape": [32, 40, 3], "names": ["height", "width", "channels"]},
}
TASKS = ["pick the cube", "place the cube"]


def make_frame(rng: np.random.Generator, t: int, task: str, chw: bool = False) -> dict:
    def img(h: int, w: int) -> np.ndarray:
        # Smooth moving gradient: compresses well, so decoded values stay close to the input.
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([(x * 4 + t * 3) % 256, (y * 5 + t * 2) % 256, np.full_like(x, (t * 7) % 256)], -1)
        arr = base.astype(np.uint8)
        return arr.transpose(2, 0, 1) if chw else arr

    return {
        "observation.state": rng.standard_normal(6).astype(np.float32),
        "action": rng.standard_normal(6).astype(np.float32),
        "observation.images.front": img(48, 64),
        "observation.images.wrist": img(32, 40),
        "task": task,
    }


def record(root: Path, lengths: list[int], seed: int = 0, writer: DatasetWriter | None = None, **kwargs) -> tuple[DatasetWriter, list[list[dict]]]:
    rng = np.random.default_rng(seed)
    w = writer or DatasetWriter.create(root, fps=30, features=FEATURES, robot_type="so100", **kwargs)
    episodes = []
    for i, n in enumerate(lengths):
        frames = [make_frame(rng, t, TASKS[i % 2]) for t in range(n)]
        for f in frames:
            w.add_frame(f)
        w.save_episode()
        episodes.append(frames)
    return w, episodes


def assert_frames_equal(got: list[dict], want: list[dict]) -> None:
    """Two datasets' decoded items, frame by frame: the task string equal, every array equal exactly."""
    assert len(got) == len(want)
    for i, (x, y) in enumerate(zip(got, want, strict=True)):
        assert x.keys() == y.keys()
        for key in x:
            if key == "task":
                assert x[key] == y[key]
            else:
                assert np.array_equal(np.asarray(x[key]), np.asarray(y[key])), f"frame {i}: {key} differs"
