"""Curation checks, all `blocking=True`: each wraps a library check.

- curated_dataset_valid: the validator over the curated dataset;
- curated_dataset_matches_rules: it holds exactly the episodes curated_episodes keeps;
- dataset_splits_partition: the splits are disjoint and their union is the curated dataset;
- dataset_splits_valid: the validator over each split.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from lerobot_assets.checks.splits import split_problems
from lerobot_assets.checks.validate import NotAV3DatasetError, validate_dataset
from lerobot_assets.defs.checks_common import validation_result
from lerobot_assets.defs.curation.assets import CURATED_REL, SPLITS_REL, curated_dataset, curated_keep, dataset_splits
from lerobot_assets.defs.metadata import problems_markdown
from lerobot_assets.defs.resources import DataHome, SqlVarsResource
from lerobot_assets.defs.sql.checks import CATALOG_POOL
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.home.curation import curated_root, read_provenance, splits_root


@dg.asset_check(asset=curated_dataset, blocking=True, description="The curated dataset passes the library validator.")
def curated_dataset_valid(home: DataHome) -> dg.AssetCheckResult:
    try:
        with home.pulled(CURATED_REL, "curated_dataset_valid") as root:
            report = validate_dataset(root)
    except NotAV3DatasetError as e:
        return validation_result(None, [str(e)], {})
    return validation_result(report, [], {})


@dg.asset_check(
    asset=curated_dataset,
    blocking=True,
    pool=CATALOG_POOL,
    description="The curated dataset holds exactly the merged episodes that curated_episodes keeps, in order.",
)
def curated_dataset_matches_rules(home: DataHome, sql: SqlVarsResource) -> dg.AssetCheckResult:
    keep = curated_keep(home, sql)
    with home.pulled(CURATED_REL, "curated_dataset_matches_rules") as root:
        recorded = [int(e) for e in (read_provenance(root) or {}).get("kept", [])]
        episodes = DatasetInfo.load(root).total_episodes
    problems = []
    if recorded != keep:
        problems.append(f"built from {len(recorded)} kept episodes, but curated_episodes now keeps {len(keep)}")
    if episodes != len(keep):
        problems.append(f"holds {episodes} episodes, curated_episodes keeps {len(keep)}")
    return dg.AssetCheckResult(
        passed=not problems,
        description=problems[0] if problems else f"{episodes} episodes, as the rules keep",
        metadata={"problems": dg.MetadataValue.md(problems_markdown(problems)), "kept": dg.MetadataValue.int(len(keep))},
    )


@contextmanager
def _split_roots(home: DataHome, name: str) -> Iterator[tuple[Path, dict[str, Path]]]:
    """(curated root, {split: root}) on local disk for reading."""
    with home.workspace(name) as ws:
        ws.pull(CURATED_REL)
        for split in ws.children(SPLITS_REL):
            ws.pull(f"{SPLITS_REL}/{split}")
        base = splits_root(ws.layout)
        found = {p.name: p for p in sorted(base.iterdir()) if (p / "meta" / "info.json").is_file()} if base.is_dir() else {}
        yield curated_root(ws.layout), found


@dg.asset_check(
    asset=dataset_splits,
    blocking=True,
    description="The splits are disjoint and together hold every curated episode, unchanged (compared by content).",
)
def dataset_splits_partition(home: DataHome) -> dg.AssetCheckResult:
    with _split_roots(home, "dataset_splits_partition") as (curated, splits):
        report = split_problems(curated, splits)
    if not splits:
        report.problems.insert(0, "no split datasets found")
    return dg.AssetCheckResult(
        passed=report.ok,
        description=report.problems[0] if report.problems else (
            f"{report.source_episodes} episodes in " + ", ".join(f"{n} {c}" for n, c in report.split_episodes.items())
        ),
        metadata={
            "problems": dg.MetadataValue.md(problems_markdown(report.problems)),
            "split_episodes": dg.MetadataValue.json(report.split_episodes),
        },
    )


@dg.asset_check(asset=dataset_splits, blocking=True, description="Each split passes the library validator.")
def dataset_splits_valid(home: DataHome) -> dg.AssetCheckResult:
    problems: list[str] = []
    checked = 0
    with _split_roots(home, "dataset_splits_valid") as (_, splits):
        for name, root in splits.items():
            report = validate_dataset(root)
            checked += 1
            problems += [f"{name}: {p}" for p in report.errors]
    if not checked:
        problems.append("no split datasets found")
    return dg.AssetCheckResult(
        passed=not problems,
        description=problems[0][:1000] if problems else f"{checked} splits valid",
        metadata={"problems": dg.MetadataValue.md(problems_markdown(problems)), "splits": dg.MetadataValue.int(checked)},
    )


curation_checks = [curated_dataset_valid, curated_dataset_matches_rules, dataset_splits_partition, dataset_splits_valid]
