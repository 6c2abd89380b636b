"""Curation: the merged dataset minus the episodes the curation SQL rejects, and its splits.

`curated_dataset` depends on the `curated_episodes` SQL model, so the UI draws SQL -> dataset
lineage and editing the SQL makes the dataset stale. Bodies call lerobot_assets.home.curation.
(No `from __future__ import annotations` here: Dagster reads the annotations at definition time.)
"""

from typing import Any

import dagster as dg
from pydantic import Field

from lerobot_assets.byteindex import build_byte_index
from lerobot_assets.defs.datasets.assets import lerobot_dataset
from lerobot_assets.defs.metadata import dataset_metadata, published
from lerobot_assets.defs.resources import DataHome, SqlVarsResource
from lerobot_assets.defs.sql.checks import CATALOG_POOL
from lerobot_assets.home import MERGED_DATASET
from lerobot_assets.home.curation import (
    CURATED_DATASET,
    CURATED_MODEL,
    SPLITS_DIR,
    build_curated_dataset,
    build_splits,
    curated_root,
)

CURATION_GROUP = "curation"


CURATED_REL = f"datasets/{CURATED_DATASET}"
SPLITS_REL = f"datasets/{SPLITS_DIR}"


def curated_keep(home: DataHome, sql: SqlVarsResource) -> list[int]:
    """Merged episode indices the curated_episodes model keeps (its table in the home's catalog)."""
    table = home.catalog(vars=sql.vars).read_model(CURATED_MODEL)
    return sorted({int(e) for e in table.column("episode_index").to_pylist()})


def _log_progress(context: dg.AssetExecutionContext) -> Any:
    last: dict[str, int] = {}

    def progress(label: str, done: int, total: int) -> None:
        # A line per tenth of the work, not per file: runs log to SQLite at ~30 ms an event.
        step = max(1, total // 10) if total else 1
        if done == total or done - last.get(label, -step) >= step:
            last[label] = done
            context.log.info(f"{label}: {done}/{total}")

    return progress


@dg.asset(
    group_name=CURATION_GROUP,
    deps=[dg.AssetKey(CURATED_MODEL), lerobot_dataset],
    kinds={"parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    # Reads the curated_episodes table from the DuckDB catalog, which one process writes at a time.
    pool=CATALOG_POOL,
    description=(
        "The merged dataset minus the episodes the curation rules reject (dbt_style_sql/models/curation/"
        "curated_episodes.sql), written to datasets/curated_dataset/ by stream copy; cut from the current "
        "curated dataset when only more episodes are rejected."
    ),
)
def curated_dataset(context: dg.AssetExecutionContext, home: DataHome, sql: SqlVarsResource) -> dg.MaterializeResult:
    keep = curated_keep(home, sql)
    with home.workspace(CURATED_DATASET, context.log.info) as ws:
        layout = ws.layout
        ws.pull(f"datasets/{MERGED_DATASET}")
        ws.pull(CURATED_REL)  # the current curated dataset: cut from it when only more are rejected
        result = build_curated_dataset(layout, keep, progress=_log_progress(context))
        root = curated_root(layout)
        index = build_byte_index(root)
        context.log.info(
            f"curated ({result.mode}): kept {len(result.kept)} episodes, rejected {len(result.rejected)}; "
            f"byte index: {index.stats.files_indexed} files indexed"
        )
        metadata: dict[str, Any] = dataset_metadata(root, layout.previews / f"{CURATED_DATASET}.png")
        ws.write(CURATED_REL)
        ws.write(f"previews/{CURATED_DATASET}.png")
        metadata = published(ws, metadata)
    metadata |= {
        "mode": dg.MetadataValue.text(result.mode),
        "kept_episodes": dg.MetadataValue.int(len(result.kept)),
        "rejected_episodes": dg.MetadataValue.int(len(result.rejected)),
        "rejected": dg.MetadataValue.json(result.rejected[:1000]),
    }
    return dg.MaterializeResult(metadata=metadata)


class SplitConfig(dg.Config):
    """How the curated dataset is split (largest-remainder allocation: no episode is lost)."""

    fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "val": 0.2})
    seed: int = Field(0, description="episodes are shuffled with this seed before allocation")


@dg.asset(
    group_name=CURATION_GROUP,
    deps=[curated_dataset],
    kinds={"parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Train/val splits of the curated dataset (datasets/splits/<name>/), each a v3 dataset, by stream copy.",
)
def dataset_splits(context: dg.AssetExecutionContext, config: SplitConfig, home: DataHome) -> dg.MaterializeResult:
    rows = ["| split | episodes | frames | MB |", "|---|---|---|---|"]
    with home.workspace(SPLITS_DIR, context.log.info) as ws:
        ws.pull(CURATED_REL)
        results = build_splits(ws.layout, config.fractions, config.seed, progress=_log_progress(context))
        for name, r in results.items():
            build_byte_index(r.output)
            rows.append(f"| {name} | {r.episodes} | {r.frames} | {r.bytes / 1e6:.1f} |")
            context.log.info(r.summary())
            ws.write(f"{SPLITS_REL}/{name}")
    return dg.MaterializeResult(
        metadata={
            "splits": dg.MetadataValue.md("\n".join(rows)),
            "split_names": dg.MetadataValue.json(sorted(results)),
            "episodes": dg.MetadataValue.json({n: r.episodes for n, r in results.items()}),
            "fractions": dg.MetadataValue.json(dict(config.fractions)),
            "seed": dg.MetadataValue.int(config.seed),
        }
    )


curation_assets = [curated_dataset, dataset_splits]
