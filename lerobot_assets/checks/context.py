"""One validation in progress: the dataset's metadata as loaded so far, and the problems found."""

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lerobot_assets.checks.report import Problem, Severity, ValidationReport
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.templates import DatasetFile


@dataclass
class Episodes:
    """Episode metadata as numpy columns (position k = k-th row in file order)."""

    index: np.ndarray
    length: np.ndarray
    start: np.ndarray
    end: np.ndarray
    data_file: list[tuple[int, int]]
    tasks: list[list[str]]
    video: dict[str, dict[str, np.ndarray]]


class ValidationRun:
    """One validation in progress: its options, what it has loaded so far, and the problems found."""

    def __init__(self, root: Path, tolerance_s: float, max_per_check: int | None, check_videos: bool) -> None:
        self.root = root
        self.tolerance_s = tolerance_s
        self.max_per_check = max_per_check
        self.check_videos = check_videos
        self.report = ValidationReport(root=root)
        self._counts: dict[str, int] = defaultdict(int)
        self._first: dict[str, tuple[Severity, str]] = {}
        self.episode_files: list[Path] = []
        self.row_file: list[Path] = []  # episodes parquet file of each episode row
        self.info: DatasetInfo | None = None
        self.tasks: list[str] | None = None
        self.eps: Episodes | None = None
        self.files: list[DatasetFile] = []  # data and video files the episodes name, via the templates

    # ------------------------------------------------------------------ reporting
    def add(self, severity: Severity, file: str | Path, episode: int | None, message: str,
            check: str | None = None) -> None:
        """Record a problem; per-check caps keep a systematic fault from printing 10,000 lines."""
        rel = self.rel(file)
        if check is not None and self.max_per_check is not None:
            self._counts[check] += 1
            self._first.setdefault(check, (severity, rel))
            if self._counts[check] > self.max_per_check:
                return
        self.report.problems.append(Problem(severity, rel, None if episode is None else int(episode), message))

    def error(self, file: str | Path, episode: int | None, message: str, check: str | None = None) -> None:
        self.add("error", file, episode, message, check)

    def warn(self, file: str | Path, episode: int | None, message: str, check: str | None = None) -> None:
        self.add("warning", file, episode, message, check)

    def rel(self, file: str | Path) -> str:
        p = Path(file)
        try:
            return p.relative_to(self.root).as_posix() if p.is_absolute() else p.as_posix()
        except ValueError:
            return p.as_posix()

    def flush_caps(self) -> None:
        for check, n in self._counts.items():
            if self.max_per_check is not None and n > self.max_per_check:
                severity, rel = self._first[check]
                self.report.problems.append(Problem(
                    severity, rel, None,
                    f"{n - self.max_per_check} more problems of this kind ({check}) not listed; "
                    f"{n} in all, the first {self.max_per_check} are above",
                ))

    def episode_file_of(self, pos: int) -> Path:
        return self.row_file[pos]
