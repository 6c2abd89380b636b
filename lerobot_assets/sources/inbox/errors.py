"""Problems found in a raw session: each names the file and, where it applies, the row (frame)."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RawProblem:
    """One thing wrong with a raw session: the file, the row (frame) where it applies, the message."""

    path: Path
    message: str
    row: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}: row {self.row}" if self.row is not None else str(self.path)
        return f"{where}: {self.message}"


class RawFormatError(ValueError):
    """A raw session breaks the format; `problems` lists every problem found (the first leads)."""

    def __init__(self, problems: list[RawProblem]) -> None:
        self.problems = list(problems)
        head = str(self.problems[0]) if self.problems else "invalid raw session"
        more = len(self.problems) - 1
        lines = [head] + ([f"({more} more problem{'s' if more > 1 else ''}):"] if more else [])
        lines += [f"  {p}" for p in self.problems[1:21]]
        if more > 20:
            lines.append(f"  ... and {more - 20} more")
        super().__init__("\n".join(lines))
