"""Scratch directories beside a target, so the final rename into place is atomic."""

import shutil
from collections.abc import Callable
from pathlib import Path

from lerobot_assets.format.atomic import make_temp_dir

Progress = Callable[[str], None]


def scratch_dir(parent: Path, session: str) -> Path:
    """A fresh temp dir beside the target (same filesystem: the final rename is atomic)."""
    parent.mkdir(parents=True, exist_ok=True)
    # '~' never occurs in a session name, so this matches this session's leftovers only (a killed
    # run's), not those of a session whose name merely starts with this one.
    for stale in parent.glob(f".tmp-{session}~*"):
        shutil.rmtree(stale, ignore_errors=True)
    return make_temp_dir(parent, f".tmp-{session}~")
