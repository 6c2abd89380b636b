"""Dataset checks, all `blocking=True` (a failure stops downstream assets and fails the CLI). Each
wraps a library check (lerobot_assets.checks, byteindex.verify):

- lerobot_dataset_valid: the validator over the merged dataset;
- lerobot_dataset_totals: merged totals equal the sum of the merged sessions' totals;
- dataset_stats_sane: no NaN/inf, std >= 0, min <= max, counts equal to the frames they cover;
- byte_index_matches_ffprobe: a sample of indexed frames equals what ffprobe reports.
"""

from pathlib import Path

import dagster as dg

from lerobot_assets.byteindex.verify import verify_with_ffprobe
from lerobot_assets.checks.merged import merged_totals
from lerobot_assets.checks.stats import stats_problems
from lerobot_assets.checks.validate import NotAV3DatasetError, validate_dataset
from lerobot_assets.defs.checks_common import validation_result
from lerobot_assets.defs.datasets.assets import MERGED_REL, byte_index, dataset_stats, lerobot_dataset
from lerobot_assets.defs.metadata import problems_markdown
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.stats_json import read_stats
from lerobot_assets.home import MERGED_DATASET


@dg.asset_check(
    asset=lerobot_dataset,
    blocking=True,
    description="The merged dataset passes the library validator (layout, indices, timestamps, videos, stats).",
)
def lerobot_dataset_valid(home: DataHome) -> dg.AssetCheckResult:
    try:
        with home.pulled(MERGED_REL, "lerobot_dataset_valid") as root:
            report = validate_dataset(root)
    except NotAV3DatasetError as e:
        return validation_result(None, [str(e)], {})
    return validation_result(report, [], {})


@dg.asset_check(
    asset=lerobot_dataset,
    blocking=True,
    description="Merged episodes and frames equal the sum over the merged sessions' datasets, session by session.",
)
def lerobot_dataset_totals(home: DataHome) -> dg.AssetCheckResult:
    with home.workspace("lerobot_dataset_totals") as ws:
        ws.pull(MERGED_REL)
        layout = ws.layout

        def session_root(name: str) -> Path:
            ws.pull(f"sessions/{name}")
            return layout.session(name)

        totals = merged_totals(layout.dataset(MERGED_DATASET), session_root)
    rows = ["| session | episodes | frames |", "|---|---|---|"]
    rows += [f"| {name} | {episodes} | {frames} |" for name, episodes, frames in totals.sources]
    rows.append(f"| **sum** | **{totals.episodes}** | **{totals.frames}** |")
    rows.append(f"| merged | {totals.merged_episodes} | {totals.merged_frames} |")
    return dg.AssetCheckResult(
        passed=totals.ok,
        description=totals.problems[0] if totals.problems else f"{len(totals.sources)} sessions: {totals.episodes} episodes, {totals.frames} frames",
        metadata={
            "totals": dg.MetadataValue.md("\n".join(rows)),
            "problems": dg.MetadataValue.md(problems_markdown(totals.problems)),
            "sessions": dg.MetadataValue.int(len(totals.sources)),
        },
    )


@dg.asset_check(
    asset=dataset_stats,
    blocking=True,
    description="Stats sanity: every feature present, no NaN or inf, std >= 0, min <= max, counts equal the frames.",
)
def dataset_stats_sane(home: DataHome) -> dg.AssetCheckResult:
    with home.pulled(MERGED_REL, "dataset_stats_sane") as root:
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
    with home.pulled(MERGED_REL, "byte_index_matches_ffprobe") as root:
        report = verify_with_ffprobe(root, sample=256)
    return dg.AssetCheckResult(
        passed=report.ok,
        metadata={
            "files": dg.MetadataValue.int(report.files),
            "frames_checked": dg.MetadataValue.int(report.frames),
            "mismatches": dg.MetadataValue.json(report.mismatches[:50]),
        },
    )


dataset_checks = [lerobot_dataset_valid, lerobot_dataset_totals, dataset_stats_sane, byte_index_matches_ffprobe]
