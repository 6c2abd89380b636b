"""Atomic MP4 output: write a hidden sibling temp file, then os.replace() it over the target.

A sibling (same directory, same filesystem) makes the rename atomic, and lets the target be one
of the inputs (appending an episode to an existing file): inputs are read while the temp file is
written, and the old file is replaced only once the new one is complete.
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from lerobot_assets.format.atomic import temp_sibling


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], suffix: str = ".mp4") -> Iterator[Path]:
    """Yield a temp path; on normal exit fsync + rename it over `path`, on error delete it."""
    target = Path(path)
    tmp = temp_sibling(target, suffix)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OSError(f"Video writing produced no data for {target}")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
