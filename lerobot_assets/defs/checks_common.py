"""The validator's report as an asset check result (shared by ingest and datasets)."""

from typing import Any

import dagster as dg

from lerobot_assets.checks.validate import ValidationReport
from lerobot_assets.defs.metadata import problems_markdown


def validation_result(report: ValidationReport | None, extra_problems: list[str], extra_metadata: dict[str, Any]) -> dg.AssetCheckResult:
    """`report` None: the root is not a v3 dataset at all (the reason is in `extra_problems`)."""
    if report is None:
        return dg.AssetCheckResult(
            passed=False,
            description=extra_problems[0][:1000],
            metadata={"problems": dg.MetadataValue.md(problems_markdown(extra_problems)), **extra_metadata},
        )
    problems = [str(p) for p in report.problems] + extra_problems
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
    return dg.AssetCheckResult(passed=report.ok and not extra_problems, description=summary[:1000], metadata=metadata)
