"""Datasets: every valid session merged into lerobot_dataset, its exact stats and its byte index.

Each body calls the library (tools.merge, stats, byteindex) and returns metadata; large files are
written under the data home, never pickled through an IO manager.
(No `from __future__ import annotations` here: Dagster reads the annotations at definition time.)
"""

from typing import Any

import dagster as dg

from lerobot_assets.byteindex import build_byte_index
from lerobot_assets.defs.ingest.assets import GROUP, SESSION_DATASET, SESSION_VIDEOS
from lerobot_assets.defs.ingest.partitions import SESSIONS
from lerobot_assets.defs.metadata import dataset_metadata, published, stats_markdown
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.stats_json import write_stats
from lerobot_assets.home import MERGED_DATASET
from lerobot_assets.home.validation import merge_plan
from lerobot_assets.stats.dataset import compute_dataset_stats
from lerobot_assets.tools.merge import merge_datasets

MERGED_REL = f"datasets/{MERGED_DATASET}"

# Merge when sessions were updated and none is mid-run; unlike plain eager(), a session that was
# registered but never built (or failed) does not hold the merge of all the others back.
merge_automation = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())


@dg.asset(
    group_name=GROUP,
    deps=[
        dg.AssetDep(SESSION_DATASET, partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep(SESSION_VIDEOS, partition_mapping=dg.AllPartitionMapping()),
    ],
    kinds={"parquet"},
    automation_condition=merge_automation,
    description=(
        "All materialized, valid sessions merged into one v3 dataset (datasets/lerobot_dataset/) by stream copy: "
        "new sessions are appended; a changed or removed session triggers an atomic rebuild. Episode, frame and "
        "task indices are renumbered in session registration order."
    ),
)
def lerobot_dataset(context: dg.AssetExecutionContext, home: DataHome) -> dg.MaterializeResult:
    registered = context.instance.get_dynamic_partitions(SESSIONS)
    materialized = context.instance.get_materialized_partitions(SESSION_DATASET)
    with home.workspace(MERGED_DATASET, context.log.info) as ws:
        layout = ws.layout
        for key in registered:
            if key in materialized:
                ws.pull(f"sessions/{key}")
                ws.pull(f"checks/{key}.json")
        sessions, skipped = merge_plan(layout, registered, materialized)
        for key, why in skipped.items():
            context.log.warning(f"not merging {key}: {why}")
        if not sessions:
            raise dg.Failure(
                description="no session dataset to merge: materialize session_dataset for at least one session first",
                metadata={"skipped": dg.MetadataValue.json(skipped)},
            )
        ws.pull(MERGED_REL)  # what is already merged: new sessions are appended to it
        root = layout.dataset(MERGED_DATASET)
        result = merge_datasets([(s, layout.session(s)) for s in sessions], root, progress=context.log.info)
        context.log.info(f"merge {result.mode}: {result.episodes} episodes, {result.frames} frames from {len(sessions)} sessions")
        metadata: dict[str, Any] = dataset_metadata(root, layout.previews / f"{MERGED_DATASET}.png")
        metadata |= {
            "mode": dg.MetadataValue.text(result.mode),
            "sessions": dg.MetadataValue.int(len(sessions)),
            "session_names": dg.MetadataValue.json(sessions),
            "sessions_added": dg.MetadataValue.json(list(result.sessions_added)),
            "skipped_sessions": dg.MetadataValue.json(skipped),
        }
        if result.mode != "unchanged":
            ws.write(MERGED_REL)
        ws.write(f"previews/{MERGED_DATASET}.png")
        metadata = published(ws, metadata)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name=GROUP,
    deps=[lerobot_dataset],
    kinds={"json"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Exact statistics of the merged dataset over all its episodes (meta/stats.json), as a table.",
)
def dataset_stats(context: dg.AssetExecutionContext, home: DataHome) -> dg.MaterializeResult:
    with home.workspace("dataset_stats", context.log.info) as ws:
        ws.pull(MERGED_REL)
        root = ws.layout.dataset(MERGED_DATASET)
        info = DatasetInfo.load(root)
        stats = compute_dataset_stats(root)
        write_stats(root, stats)
        ws.write(MERGED_REL)
        ws.publish_all()
        path = ws.location(root / "meta" / "stats.json")
    context.log.info(f"stats of {len(stats)} features over {info.total_episodes} episodes, {info.total_frames} frames")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(path),
            "features": dg.MetadataValue.int(len(stats)),
            "episodes": dg.MetadataValue.int(info.total_episodes),
            "frames": dg.MetadataValue.int(info.total_frames),
            "stats": dg.MetadataValue.md(stats_markdown(stats)),
        }
    )


@dg.asset(
    group_name=GROUP,
    # The bytes it indexes are the session videos, stream-copied into the merged dataset; it is rebuilt
    # when the merged dataset changes, not each time a session's videos do (the merge comes first).
    deps=[lerobot_dataset, dg.AssetDep(SESSION_VIDEOS, partition_mapping=dg.AllPartitionMapping())],
    kinds={"parquet"},
    automation_condition=dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets(SESSION_VIDEOS)),
    description=(
        "Per-episode byte index of every video file of the merged dataset (meta/byte_index/: files, segments, "
        "frames tables), so training from remote storage fetches each file's header once and one byte range "
        "per episode. Incremental: only new or changed video files are parsed."
    ),
)
def byte_index(context: dg.AssetExecutionContext, home: DataHome) -> dg.MaterializeResult:
    def progress(p) -> None:  # one log line per file, not per frame
        context.log.info(f"[{p.done}/{p.total}] {p.action} {p.path} ({p.segments} episodes, {p.file_size} bytes)")

    with home.workspace("byte_index", context.log.info) as ws:
        ws.pull(MERGED_REL)
        root = ws.layout.dataset(MERGED_DATASET)
        result = build_byte_index(root, workers=2, progress=progress)
        ws.write(MERGED_REL)
        ws.publish_all()
        path = ws.location(root / "meta" / "byte_index")
    s = result.stats
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(path),
            "files": dg.MetadataValue.int(s.files),
            "files_indexed": dg.MetadataValue.int(s.files_indexed),
            "files_reused": dg.MetadataValue.int(s.files_reused),
            "episodes": dg.MetadataValue.int(s.segments),
            "frames": dg.MetadataValue.int(s.frames),
            "bytes_indexed": dg.MetadataValue.int(s.bytes_indexed),
            "header_bytes_read": dg.MetadataValue.int(s.header_bytes_read),
            "build_seconds": dg.MetadataValue.float(round(s.seconds, 3)),
        }
    )


dataset_assets = [lerobot_dataset, dataset_stats, byte_index]
