"""Reading one committed version of a dataset that a writer may be appending to.

A reader that opens info.json, then the episodes, then the data files sees whatever each file held
when it was opened; during an append those come from different versions (`total_episodes=3` but
four episode rows). The writer publishes a version by renaming every new file into place while its
redo journal (`COMMIT_JOURNAL_PATH`) exists, info.json among them in every commit. So a read that
starts and ends with no journal and the same info.json file (inode, mtime and content: a rename
brings a new file) saw exactly one committed version; otherwise it is retried.
"""

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lerobot_assets.format.files import read_metadata_bytes
from lerobot_assets.format.layout import COMMIT_JOURNAL_PATH, INFO_PATH

T = TypeVar("T")
VersionStamp = tuple[int, int, int, int, str]


def version_stamp(root: Path | str) -> VersionStamp | None:
    """What identifies the committed version of `root` now, or None while a commit is being
    published. Two equal stamps taken before and after a read mean the read saw one version
    (a root without info.json has a constant stamp: reading it fails at once, not after retries)."""
    root = Path(root)
    journal = root / COMMIT_JOURNAL_PATH
    # The journal is checked on both sides of the stat, so a commit that starts or ends between
    # the stat and one check is still seen by the other.
    if os.path.lexists(journal):
        return None
    try:
        st = os.stat(root / INFO_PATH)
        # The content too: an inode freed by one commit can be reused by the next within one
        # timestamp tick, but every commit changes info.json's totals.
        digest = hashlib.sha256(read_metadata_bytes(root / INFO_PATH)).hexdigest()
        stamp: VersionStamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, digest)
    except (OSError, ValueError):  # missing, or not a file we read (reported by the read itself)
        stamp = (0, 0, 0, 0, "")
    if os.path.lexists(journal):
        return None
    return stamp


def read_consistently(
    root: Path | str, read: Callable[[], T], *, attempts: int = 20, pause_s: float = 0.02
) -> tuple[T, bool]:
    """`read()` until one call ran entirely within one committed version of `root`; returns its
    result and True, or after `attempts` calls the last result and False (the dataset kept
    changing; the result may mix versions). A dataset nobody writes to is read once."""
    result: T
    for attempt in range(max(1, attempts)):
        before = version_stamp(root)
        if before is None and attempt < attempts - 1:
            time.sleep(pause_s)  # a commit is being published: renames, over in milliseconds
            continue
        result = read()
        if before is not None and version_stamp(root) == before:
            return result, True
        time.sleep(pause_s * (attempt + 1) / 4)
    return result, False
