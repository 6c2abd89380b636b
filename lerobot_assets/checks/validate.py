"""Validation of a whole LeRobot v3.0 dataset root against the invariants LeRobot's reader relies on.

`validate_dataset(root)` never raises for a broken dataset (it reports a `Problem` naming the file
and, where it applies, the episode); it raises `NotAV3DatasetError` only when `root` is not a v3
dataset at all. Everything is read once: the episodes metadata (without its stats columns), five
index columns of each data file, the packet timestamps of each video file (demux only, no
decoding), grouped so that one video file is opened once whatever number of episodes it holds.
Per-episode checks are vectorised over all frames, so thousands of episodes stay fast.
The checks live in `metadata.py` (info, tasks, episodes, stats), `data.py` (data parquet) and
`videos.py` (video files); `context.py` holds what they share while one validation runs.

Why each check matters to LeRobot 0.6.1's `LeRobotDataset`:
- it concatenates every `data/*/*.parquet` in path order and indexes rows by position, so the
  global `index` must be 0..N-1 in that order and each episode's `dataset_from/to_index` must
  point at its rows;
- it looks episodes and tasks up by position (`meta.episodes[ep]`, `tasks.iloc[task_index]`), so
  both must be numbered 0..n-1 in file order;
- it decodes video at `from_timestamp + timestamp` and fails when no frame lies within
  `tolerance_s` (1e-4 s), so timestamps must equal frame_index/fps and each episode's frames must
  sit at from_timestamp + k/fps in its video file.
"""

from pathlib import Path

from lerobot_assets.checks.context import ValidationRun
from lerobot_assets.checks.data import check_data
from lerobot_assets.checks.metadata import (
    OPTIONAL_STAT_KEYS,
    REQUIRED_STAT_KEYS,
    NotAV3DatasetError,
    check_episodes,
    check_info_features,
    check_stats,
    load_episodes,
    load_info,
    load_tasks,
)
from lerobot_assets.checks.report import Problem, Severity, ValidationReport
from lerobot_assets.checks.videos import check_video_files
from lerobot_assets.format.layout import INFO_PATH
from lerobot_assets.format.published import follow_local
from lerobot_assets.format.version import read_consistently

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "OPTIONAL_STAT_KEYS",
    "REQUIRED_STAT_KEYS",
    "NotAV3DatasetError",
    "Problem",
    "Severity",
    "ValidationReport",
    "validate_dataset",
]

# LeRobot's default reader tolerance (seconds) between a queried and a decoded timestamp.
DEFAULT_TOLERANCE_S = 1e-4
# Passes tried before giving up on seeing one version of a dataset that is being appended to.
CONSISTENT_READ_ATTEMPTS = 20


def validate_dataset(
    root: Path | str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    check_videos: bool = True,
    max_problems_per_check: int | None = 50,
) -> ValidationReport:
    """Check every invariant LeRobot's reader relies on; see the module docstring.

    `root` is a local dataset root, or a local directory laid out as a published prefix (format.versions),
    validated at the version its pointer names. Raises NotAV3DatasetError when `root` is not a LeRobot
    v3 dataset, versions.PointerError (naming the file) for a pointer that cannot be followed; any other
    fault becomes a Problem in the returned report (`report.ok` is False when there is at least one error).
    The report describes one committed version even while a writer appends (passes are retried
    until one ran within one version; a warning says so when none did).
    """
    # A published prefix is validated at the version its pointer names (followed once: a publish
    # meanwhile does not mix versions); the report's root is that version.
    root, _ = follow_local(root)
    # Absolute once, here: the files found under the root are compared with the paths the metadata
    # names relative to it, and a relative root made every file look unreferenced.
    root = root.absolute()

    def once() -> ValidationReport:
        run = ValidationRun(root, tolerance_s, max_problems_per_check, check_videos)
        if not load_info(run):
            return run.report
        check_info_features(run)
        load_tasks(run)
        if load_episodes(run):
            check_episodes(run)
            check_data(run)
            if run.check_videos:
                check_video_files(run)
        check_stats(run)
        run.flush_caps()
        return run.report

    # A writer appending meanwhile replaces info.json, the episodes and the data files one by one:
    # only a pass that saw one committed version is a verdict on the dataset (see format.version).
    report, consistent = read_consistently(root, once, attempts=CONSISTENT_READ_ATTEMPTS)
    if not consistent:
        report.problems.append(Problem(
            "warning", INFO_PATH, None,
            f"the dataset changed during each of {CONSISTENT_READ_ATTEMPTS} validation passes (a writer is "
            "appending?); these results may mix two versions: validate again when it is idle",
        ))
    return report
