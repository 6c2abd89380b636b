"""What a dataset validation reports: problems naming the file and episode, and the report."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    severity: Severity
    file: str  # relative to the dataset root
    episode: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.episode is None else f"{self.file} [episode {self.episode}]"
        # One line per problem, whatever a library put in the message.
        message = " ".join(line.strip() for line in self.message.splitlines() if line.strip())
        return f"{self.severity.upper()} {where}: {message}"


@dataclass
class ValidationReport:
    root: Path
    problems: list[Problem] = field(default_factory=list)
    # What was looked at, for the one-line summary.
    num_episodes: int = 0
    num_frames: int = 0
    num_data_files: int = 0
    num_video_files: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        state = "OK" if self.ok else "INVALID"
        return (f"{state} {self.root}: {self.num_episodes} episodes, {self.num_frames} frames, "
                f"{self.num_data_files} data files, {self.num_video_files} video files checked; "
                f"{len(self.errors)} errors, {len(self.warnings)} warnings")


def episode_list(indices: np.ndarray, limit: int = 10) -> str:
    values = [int(x) for x in indices]
    head = ", ".join(str(x) for x in values[:limit])
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return f"episode{'s' if len(values) > 1 else ''} {head}{more}"
