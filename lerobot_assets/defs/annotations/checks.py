"""Annotation checks, `blocking=True`: the annotation validator passes on every episode, and the
annotated dataset passes the library's v3 validator."""

import dagster as dg

from lerobot_assets.annotate import validate_annotations
from lerobot_assets.checks.validate import validate_dataset
from lerobot_assets.defs.annotations.assets import ANNOTATED_DATASET, annotated_dataset
from lerobot_assets.defs.metadata import problems_markdown
from lerobot_assets.defs.resources import DataHome


@dg.asset_check(
    asset=annotated_dataset,
    blocking=True,
    description="Every episode's language rows pass the annotation validator (LeRobot 0.6.1's rules and ours), and the dataset the v3 validator.",
)
def annotated_dataset_valid(home: DataHome) -> dg.AssetCheckResult:
    with home.pulled(f"datasets/{ANNOTATED_DATASET}", "annotated_dataset_valid") as root:
        report = validate_annotations(root)
        problems = [str(i) for i in report.errors] + [str(p) for p in validate_dataset(root).errors]
    return dg.AssetCheckResult(
        passed=not problems,
        description=problems[0][:1000] if problems else f"{report.episodes_checked} episodes valid",
        metadata={
            "problems": dg.MetadataValue.md(problems_markdown(problems)),
            "episodes_checked": dg.MetadataValue.int(report.episodes_checked),
            "warnings": dg.MetadataValue.int(len(report.warnings)),
        },
    )


annotation_checks = [annotated_dataset_valid]
