"""Dataset checks, all `blocking=True` (a failure stops downstream assets and fails the CLI):

- lerobot_dataset_valid: the validator over the merged dataset;
- lerobot_dataset_totals: merged totals equal the sum of the merged sessions' totals;
- dataset_stats_sane: no NaN/inf, std >= 0, min <= max, counts equal to the frames they cover;
- byte_index_matches_ffprobe: a sample of indexed frames equals what ffprobe reports.
"""

import json
from typing import Any

import dagster as dg
import numpy as np

from lerobot_assets.defs.checks_common import validation_result
from lerobot_assets.defs.datasets.assets import byte_index, dataset_stats, lerobot_dataset
from lerobot_assets.defs.metadata import problems_markdown
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.home import MERGED_DATASET


@dg.asset_check(
    asset=lerobot_dataset,
    blocking=True,
    description="The merged dataset passes the library validator (layout, indices, timestamps, videos, stats).",
)
def lerobot_dataset_valid(home: DataHome) -> dg.AssetCheckResult:
    return validation_result(home.layout().dataset(MERGED_DATASET), [], {})


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


@dg.asset_check(
    asset=byte_index,
    blocking=True,
    description="A sample of indexed frames (offset, size, pts, keyframe flag) equals what ffprobe reports.",
)
def byte_index_matches_ffprobe(home: DataHome) -> dg.AssetCheckResult:
    from lerobot_assets.byteindex.verify import verify_with_ffprobe

    report = verify_with_ffprobe(home.layout().dataset(MERGED_DATASET), sample=256)
    return dg.AssetCheckResult(
        passed=report.ok,
        metadata={
            "files": dg.MetadataValue.int(report.files),
            "frames_checked": dg.MetadataValue.int(report.frames),
            "mismatches": dg.MetadataValue.json(report.mismatches[:50]),
        },
    )


dataset_checks = [lerobot_dataset_valid, lerobot_dataset_totals, dataset_stats_sane, byte_index_matches_ffprobe]
