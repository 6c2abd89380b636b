"""The library checks behind the Dagster checks, without Dagster: session validation records, the
merge plan that reads them, merged totals."""

import json
import shutil
from pathlib import Path

from test_defs_support import make_inbox_session

from lerobot_assets.checks.merged import merged_totals
from lerobot_assets.home import HomeLayout, build_session_dataset, normalize_session
from lerobot_assets.home.validation import merge_plan, read_check_record, validate_session
from lerobot_assets.tools.merge import merge_datasets


def _built(home: Path, folder: str, lengths: list[int]) -> tuple[HomeLayout, str]:
    layout = HomeLayout(home)
    make_inbox_session(home, folder, lengths)
    key = f"inbox-{folder}"
    build_session_dataset(normalize_session(key, layout), layout.session(key))
    return layout, key


def test_validation_is_recorded_and_drives_the_merge_plan(home: Path) -> None:
    layout, a = _built(home, "a", [3, 4])
    _, b = _built(home, "b", [5])
    assert validate_session(layout, a).passed
    record = read_check_record(layout, a)
    assert record is not None and record.passed and record.problems == []

    # b's dataset loses a frame: its validation fails, is recorded, and keeps b out of the merge.
    info_path = layout.session(b) / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["total_frames"] = 4
    info_path.write_text(json.dumps(info, indent=4))
    result = validate_session(layout, b)
    assert not result.passed
    assert "meta/info.json: 1 episodes / 4 frames, but the raw session holds 1 / 5" in result.problems
    assert (result.expected_episodes, result.expected_frames) == (1, 5)
    assert read_check_record(layout, b).passed is False  # type: ignore[union-attr]

    chosen, skipped = merge_plan(layout, [a, b, "inbox-c"], {a, b})
    assert chosen == [a]
    assert skipped == {b: "its latest session_dataset_valid check failed", "inbox-c": "not materialized yet"}

    # Rebuilt since the failed check: judged again by its own next check, so not held back now.
    build_session_dataset(normalize_session(b, layout), layout.session(b))
    assert merge_plan(layout, [a, b], {a, b}) == ([a, b], {})


def test_a_missing_dataset_is_not_merged(home: Path) -> None:
    layout, a = _built(home, "a", [3])
    (layout.session(a) / "meta" / "info.json").unlink()
    assert merge_plan(layout, [a], {a}) == ([], {a: f"{layout.session(a)} is missing"})
    result = validate_session(layout, a)
    assert not result.passed and result.report is None and "info.json" in result.problems[0]


def test_merged_totals(home: Path) -> None:
    layout, a = _built(home, "a", [3, 4])
    _, b = _built(home, "b", [5])
    merged = layout.dataset()
    merge_datasets([(a, layout.session(a)), (b, layout.session(b))], merged)
    totals = merged_totals(merged, layout.session)
    assert totals.ok
    assert totals.sources == [(a, 2, 7), (b, 1, 5)]
    assert (totals.episodes, totals.frames, totals.merged_episodes, totals.merged_frames) == (3, 12, 3, 12)

    shutil.rmtree(home / "inbox" / "b")
    _built(home, "b", [5, 2])  # b changed after the merge
    totals = merged_totals(merged, layout.session)
    assert totals.problems == [
        f"session {b}: merged as 1 episodes / 5 frames, now holds 2 / 7 (re-materialize lerobot_dataset)",
        "meta/info.json: 3 episodes / 12 frames, sessions sum to 4 / 14",
    ]
