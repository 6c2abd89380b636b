"""Shared helpers of the Dagster-layer tests (this module holds no tests).

Sessions are tiny (a few episodes of a few frames, 32x48 cameras, sim without the top camera) so
the whole Dagster test set stays within a few minutes on two cores.
"""

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np

from lerobot_assets.sources import inbox

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SVT_LOG", "1")

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "lerobot-v3-tiny"
CAM = "observation.images.cam"
FPS = 10
FEATURES: dict[str, dict[str, Any]] = {
    "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    CAM: {"dtype": "video", "shape": [32, 48, 3], "names": ["height", "width", "channels"]},
}
TINY_SIM = {"max_steps": 12, "top_camera": False, "image_size": 32}


def image(t: int, h: int = 32, w: int = 48) -> np.ndarray:
    """A smooth moving gradient (compresses well, so decoded values stay close)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 4 + t * 3) % 256, (y * 5 + t * 2) % 256, np.full_like(x, (t * 7) % 256)], -1).astype(np.uint8)


def episode_frames(length: int, task: str, start: float = 0.0) -> list[dict[str, Any]]:
    """Frames whose state encodes (start + t) so tests can check values survive the pipeline."""
    return [
        {
            "observation.state": np.array([start + t, -(start + t)], dtype=np.float32),
            "action": np.array([start + t + 0.5, 1.0], dtype=np.float32),
            CAM: image(t),
            "task": task,
        }
        for t in range(length)
    ]


def make_inbox_session(
    home: Path,
    folder: str,
    lengths: list[int],
    tasks: list[str] | None = None,
    *,
    camera_format: str = "png",
    complete: bool = True,
    start: float = 0.0,
) -> Path:
    """A raw-v1 session in <home>/inbox/<folder>; episode i uses tasks[i % len(tasks)]."""
    tasks = tasks or ["pick the cube"]
    episodes = []
    offset = start
    for i, n in enumerate(lengths):
        episodes.append(episode_frames(n, tasks[i % len(tasks)], offset))
        offset += 1000.0
    return inbox.write_session(
        home / "inbox" / folder,
        fps=FPS,
        features=FEATURES,
        episodes=episodes,
        robot_type="test_bot",
        camera_format=camera_format,  # type: ignore[arg-type]
        complete=complete,
    )


def resources(home: Path, sql_vars: dict[str, Any] | None = None, **sim: Any) -> dict[str, Any]:
    from lerobot_assets.defs.resources import DataHome, SimSourceResource, SqlVarsResource, VideoEncoderResource

    return {
        "home": DataHome(root=str(home)),
        "encoder": VideoEncoderResource(),
        "sim": SimSourceResource(**(TINY_SIM | sim)),
        "sql": SqlVarsResource(vars=sql_vars or {}),
    }


def session_defs() -> list[Any]:
    from lerobot_assets.defs.ingest.assets import raw_episodes, session_build
    from lerobot_assets.defs.ingest.checks import session_dataset_valid

    return [raw_episodes, session_build, session_dataset_valid]


def dataset_defs() -> list[Any]:
    from lerobot_assets.defs.datasets.assets import dataset_stats, lerobot_dataset
    from lerobot_assets.defs.datasets.checks import dataset_stats_sane, lerobot_dataset_totals, lerobot_dataset_valid

    return [lerobot_dataset, dataset_stats, lerobot_dataset_valid, lerobot_dataset_totals, dataset_stats_sane]


def add_sessions(instance: dg.DagsterInstance, keys: list[str]) -> None:
    new = [k for k in keys if not instance.has_dynamic_partition("sessions", k)]
    if new:
        instance.add_dynamic_partitions("sessions", new)


def materialize_session(instance: dg.DagsterInstance, home: Path, key: str, **sim: Any) -> dg.ExecuteInProcessResult:
    add_sessions(instance, [key])
    return dg.materialize(
        session_defs(), partition_key=key, instance=instance, resources=resources(home, **sim), raise_on_error=False
    )


def materialize_dataset(instance: dg.DagsterInstance, home: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(dataset_defs(), instance=instance, resources=resources(home), raise_on_error=False)


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """Metadata values of the materialization of `asset` in `result` ({} if not materialized)."""
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def check_metadata(result: dg.ExecuteInProcessResult, name: str) -> dict[str, Any]:
    for e in result.get_asset_check_evaluations():
        if e.check_name == name:
            return {k: v.value for k, v in e.metadata.items()}
    raise KeyError(name)


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    out = []
    for event in result.all_events:
        if event.is_step_failure:
            err = event.step_failure_data.error
            while err is not None:
                out.append(err.message)
                err = err.cause
    return out


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under root: proves nothing was touched."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(root).rglob("*")) if p.is_file()
    }


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
