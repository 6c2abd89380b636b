"""Session validation and the merge plan that depends on it.

`validate_session` runs the validator over a session's dataset, compares its totals with the raw
episodes it was built from, and records the outcome under `<home>/checks/<session>.json` together
with the dataset's fingerprint. `merge_plan` reads those records: a session whose latest validation
of its *current* dataset failed is left out of the merge. Keeping this state in our own files (not in
Dagster's event log) makes it readable without Dagster and exact about which build it judged.
"""

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lerobot_assets.checks.validate import NotAV3DatasetError, ValidationReport, validate_dataset
from lerobot_assets.format.atomic import pending_replacements, recover_replace, write_json_atomic
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.home.layout import HomeLayout
from lerobot_assets.home.raw import read_raw_summary
from lerobot_assets.tools.merge import dataset_fingerprint

CHECK_NAME = "session_dataset_valid"
_RECORDED_PROBLEMS = 50


@dataclass
class SessionValidation:
    """The validator's report of a session dataset (None when the root is not a v3 dataset at all),
    plus the problems found against its raw episodes."""

    session: str
    report: ValidationReport | None
    problems: list[str] = field(default_factory=list)  # beyond the report's: not a dataset, totals
    expected_episodes: int | None = None
    expected_frames: int | None = None

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.ok and not self.problems

    def all_problems(self) -> list[str]:
        return [str(p) for p in (self.report.problems if self.report else [])] + self.problems


@dataclass
class CheckRecord:
    session: str
    passed: bool
    fingerprint: str
    problems: list[str]
    checked_at: float


def validate_session(layout: HomeLayout, session: str) -> SessionValidation:
    """Validate `<home>/sessions/<session>/` and record the outcome (see module docstring)."""
    root = layout.session(session)
    recover_replace(root)  # a build killed mid-swap is finished before the dataset is judged
    out = SessionValidation(session, report=None)
    try:
        out.report = validate_dataset(root)
    except NotAV3DatasetError as e:
        out.problems.append(str(e))
    try:
        raw = read_raw_summary(layout, session)
        info = DatasetInfo.load(root)
        out.expected_episodes, out.expected_frames = raw.episodes, raw.frames
        if (info.total_episodes, info.total_frames) != (raw.episodes, raw.frames):
            out.problems.append(
                f"meta/info.json: {info.total_episodes} episodes / {info.total_frames} frames, but the raw "
                f"session holds {raw.episodes} / {raw.frames}"
            )
    except (FileNotFoundError, ValueError) as e:
        out.problems.append(str(e))
    fingerprint = dataset_fingerprint(root) if root.is_dir() else ""
    record = CheckRecord(session, out.passed, fingerprint, out.all_problems()[:_RECORDED_PROBLEMS], time.time())
    write_json_atomic(layout.session_check(session), asdict(record))
    return out


def read_check_record(layout: HomeLayout, session: str) -> CheckRecord | None:
    path = layout.session_check(session)
    if not path.is_file():
        return None
    return CheckRecord(**json.loads(path.read_text()))


def merge_plan(layout: HomeLayout, registered: Iterable[str], materialized: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """(sessions to merge, in registration order; {session: why it is left out})."""
    built = set(materialized)
    chosen: list[str] = []
    skipped: dict[str, str] = {}
    pending = pending_replacements(layout.sessions_root)  # one listing, not one per session
    for key in registered:
        root = layout.session(key)
        if root.name in pending:
            recover_replace(root)
        if key not in built:
            skipped[key] = "not materialized yet"
        elif not (root / "meta" / "info.json").is_file():
            skipped[key] = f"{root} is missing"
        elif _failed_now(layout, key, root):
            skipped[key] = f"its latest {CHECK_NAME} check failed"
        else:
            chosen.append(key)
    return chosen, skipped


def _failed_now(layout: HomeLayout, session: str, root: Path) -> bool:
    """The latest validation failed, and judged the dataset as it is now (a rebuild since then is
    judged again by its own check, so it is not held back)."""
    record = read_check_record(layout, session)
    return record is not None and not record.passed and record.fingerprint == dataset_fingerprint(root)
