"""Asset checks. All are `blocking=True`: a failure stops downstream assets in the same run and
fails `dagster asset materialize` (so CI gates on them).

- session_dataset_valid: the library validator over one session's dataset, plus its episode and
  frame counts equal to those of the session's raw episodes;
- lerobot_dataset_valid: the validator over the merged dataset;
- lerobot_dataset_totals: merged totals equal the sum of the merged sessions' totals;
- dataset_stats_sane: no NaN/inf, std >= 0, min <= max, counts equal to the frames they cover.
"""

import json
import warnings
from typing import Any

import dagster as dg
import numpy as np

from lerobot_assets.defs.assets import SESSION_CHECK, dataset_stats, lerobot_dataset, session_dataset
from lerobot_assets.defs.metadata import problems_markdown
from lerobot_assets.defs.partitions import sessions_partitions
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.home import MERGED_DATASET, read_raw_summary


def _validation_result(root: Any, extra_problems: list[str], extra_metadata: dict[str, Any]) -> dg.AssetCheckResult:
    from lerobot_assets.checks.validate import NotAV3DatasetError, validate_dataset

    try:
        report = validate_dataset(root)
    except NotAV3DatasetError as e:
        return dg.AssetCheckResult(passed=False, description=str(e), metadata={"problems": dg.MetadataValue.md(f"- {e}")})
    problems = [str(p) for p in report.problems] + extra_problems
    passed = report.ok and not extra_problems
    metadata = {
        "errors": dg.MetadataValue.int(len(report.errors) + len(extra_problems)),
        "warnings": dg.MetadataValue.int(len(report.warnings)),
        "problems": dg.MetadataValue.md(problems_markdown(problems)),
        "episodes_checked": dg.MetadataValue.int(report.num_episodes),
        "frames_checked": dg.MetadataValue.int(report.num_frames),
        "video_files_checked": dg.MetadataValue.int(report.num_video_files),
        **extra_metadata,
    }
    summary = report.summary() if not extra_problems else f"{report.summary()}; {extra_problems[0]}"
    return dg.AssetCheckResult(passed=passed, description=summary[:1000], metadata=metadata)


def session_dataset_valid(context: dg.AssetCheckExecutionContext, home: DataHome) -> dg.AssetCheckResult:
    from lerobot_assets.format.info import DatasetInfo

    layout = home.layout()
    session = context.partition_key
    root = layout.session(session)
    extra: list[str] = []
    expected: dict[str, Any] = {}
    try:
        raw = read_raw_summary(layout, session)
        info = DatasetInfo.load(root)
        expected = {"expected_episodes": dg.MetadataValue.int(raw.episodes), "expected_frames": dg.MetadataValue.int(raw.frames)}
        if (info.total_episodes, info.total_frames) != (raw.episodes, raw.frames):
            extra.append(
                f"meta/info.json: {info.total_episodes} episodes / {info.total_frames} frames, but the raw "
                f"session holds {raw.episodes} / {raw.frames}"
            )
    except (FileNotFoundError, ValueError) as e:
        extra.append(str(e))
    return _validation_result(root, extra, expected)


# Partitioned like its asset, so each session's result is recorded (and shown) per session; that
# is a Dagster "preview" feature in 1.13, whose warning says nothing actionable here.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*")
    session_dataset_valid = dg.asset_check(
        asset=session_dataset,
        name=SESSION_CHECK,
        blocking=True,
        partitions_def=sessions_partitions,
        description="The session's v3 dataset passes the library validator and holds exactly its raw episodes and frames.",
    )(session_dataset_valid)


@dg.asset_check(
    asset=lerobot_dataset,
    blocking=True,
    description="The merged dataset passes the library validator (layout, indices, timestamps, videos, stats).",
)
def lerobot_dataset_valid(home: DataHome) -> dg.AssetCheckResult:
    return _validation_result(home.layout().dataset(MERGED_DATASET), [], {})


@dg.asset_check(
    asset=lerobot_dataset,
    blocking=True,
    description="Merged episodes and frames equal the sum over the merged sessions' datasets, session by session.",
)
def lerobot_dataset_totals(home: DataHome) -> dg.AssetCheckResult:
    from lerobot_assets.format.episodes import read_episodes
    from lerobot_assets.format.info import DatasetInfo
    from lerobot_assets.tools.merge import SOURCES_PATH

    layout = home.layout()
    root = layout.dataset(MERGED_DATASET)
    merged = DatasetInfo.load(root)
    sources = json.loads((root / SOURCES_PATH).read_text()) if (root / SOURCES_PATH).is_file() else []
    problems: list[str] = []
    rows = ["| session | episodes | frames |", "|---|---|---|"]
    total_eps = total_frames = 0
    for src in sources:
        name = src["name"]
        try:
            info = DatasetInfo.load(layout.session(name))
        except (FileNotFoundError, ValueError) as e:
            problems.append(f"session {name}: {e}")
            continue
        total_eps += info.total_episodes
        total_frames += info.total_frames
        rows.append(f"| {name} | {info.total_episodes} | {info.total_frames} |")
        if (src.get("episodes"), src.get("frames")) != (info.total_episodes, info.total_frames):
            problems.append(
                f"session {name}: merged as {src.get('episodes')} episodes / {src.get('frames')} frames, "
                f"now holds {info.total_episodes} / {info.total_frames} (re-materialize lerobot_dataset)"
            )
    episodes = read_episodes(root, columns=["episode_index", "length"])
    table_frames = int(sum(episodes.column("length").to_pylist())) if episodes.num_rows else 0
    if not sources:
        problems.append(f"{root / SOURCES_PATH}: no record of merged sessions")
    if merged.total_episodes != total_eps or merged.total_frames != total_frames:
        problems.append(
            f"meta/info.json: {merged.total_episodes} episodes / {merged.total_frames} frames, sessions sum to "
            f"{total_eps} / {total_frames}"
        )
    if episodes.num_rows != merged.total_episodes or table_frames != merged.total_frames:
        problems.append(
            f"meta/episodes: {episodes.num_rows} episodes / {table_frames} frames, meta/info.json says "
            f"{merged.total_episodes} / {merged.total_frames}"
        )
    rows.append(f"| **sum** | **{total_eps}** | **{total_frames}** |")
    rows.append(f"| merged | {merged.total_episodes} | {merged.total_frames} |")
    return dg.AssetCheckResult(
        passed=not problems,
        description=problems[0] if problems else f"{len(sources)} sessions: {total_eps} episodes, {total_frames} frames",
        metadata={
            "totals": dg.MetadataValue.md("\n".join(rows)),
            "problems": dg.MetadataValue.md(problems_markdown(problems)),
            "sessions": dg.MetadataValue.int(len(sources)),
        },
    )


def stats_problems(stats: dict[str, dict[str, np.ndarray]], features: dict[str, Any], total_frames: int) -> list[str]:
    """What is wrong with dataset stats (pure function; see dataset_stats_sane)."""
    problems: list[str] = []
    for key, feature in features.items():
        if feature.dtype != "string" and key not in stats:
            problems.append(f"{key}: no statistics")
    for key, s in stats.items():
        for name, value in s.items():
            arr = np.asarray(value, dtype=np.float64)
            if not np.all(np.isfinite(arr)):
                problems.append(f"{key}/{name}: holds NaN or inf")
        if "std" in s and np.any(np.asarray(s["std"], dtype=np.float64) < 0):
            problems.append(f"{key}/std: negative")
        if "min" in s and "max" in s and np.any(np.asarray(s["min"]) > np.asarray(s["max"])):
            problems.append(f"{key}: min > max")
        if "count" in s:
            count = int(np.asarray(s["count"]).reshape(-1)[0])
            # Numeric features are counted over every frame; image stats over the frames sampled,
            # which can never exceed the frames.
            visual = key in features and features[key].is_visual
            if (count != total_frames) if not visual else not (0 < count <= total_frames):
                problems.append(f"{key}/count: {count}, dataset has {total_frames} frames")
    return problems


@dg.asset_check(
    asset=dataset_stats,
    blocking=True,
    description="Stats sanity: every feature present, no NaN or inf, std >= 0, min <= max, counts equal the frames.",
)
def dataset_stats_sane(home: DataHome) -> dg.AssetCheckResult:
    from lerobot_assets.format.info import DatasetInfo
    from lerobot_assets.format.stats_json import read_stats

    root = home.layout().dataset(MERGED_DATASET)
    info = DatasetInfo.load(root)
    problems = stats_problems(read_stats(root), info.features, info.total_frames)
    return dg.AssetCheckResult(
        passed=not problems,
        description=problems[0] if problems else f"stats of {info.total_frames} frames are sane",
        metadata={"problems": dg.MetadataValue.md(problems_markdown(problems)), "frames": dg.MetadataValue.int(info.total_frames)},
    )


session_checks = [session_dataset_valid]
dataset_checks = [lerobot_dataset_valid, lerobot_dataset_totals, dataset_stats_sane]
all_checks = [*session_checks, *dataset_checks]
