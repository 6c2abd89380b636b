"""The asset graph: raw_episodes[session] -> session_dataset[session] -> lerobot_dataset -> dataset_stats.

Each body calls the library (lerobot_assets.home, tools.merge, stats) and returns
metadata; large files are written under the data home, never pickled through an IO manager.
(No `from __future__ import annotations` here: Dagster reads the annotations at definition time.)
"""

from typing import Any

import dagster as dg

from lerobot_assets.defs.metadata import dataset_metadata, raw_metadata, stats_markdown
from lerobot_assets.defs.partitions import SESSIONS, sessions_partitions
from lerobot_assets.defs.resources import DataHome, SimSourceResource, VideoEncoderResource
from lerobot_assets.home import (
    MERGED_DATASET,
    HomeLayout,
    build_session_dataset,
    normalize_session,
    read_raw_summary,
)

GROUP = "lerobot"
SESSION_CHECK = "session_dataset_valid"

# Merge when sessions were updated and none is mid-run; unlike plain eager(), a session that was
# registered but never built (or failed) does not hold the merge of all the others back.
merge_automation = dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())


@dg.asset(
    partitions_def=sessions_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    description=(
        "Normalized raw episodes of one recording session (raw-v1 format, docs/raw-format.md): sim sessions "
        "are simulated and written under raw/<session>/; inbox sessions are validated in place (file and row "
        "named on error, nothing in the inbox touched); imports are fetched and validated."
    ),
)
def raw_episodes(context: dg.AssetExecutionContext, home: DataHome, sim: SimSourceResource) -> dg.MaterializeResult:
    layout = home.layout()
    session = context.partition_key
    summary = normalize_session(session, layout, sim=sim.template(), progress=context.log.info)
    return dg.MaterializeResult(metadata=raw_metadata(summary, layout.previews / "raw_episodes" / f"{session}.png"))


@dg.asset(
    partitions_def=sessions_partitions,
    group_name=GROUP,
    deps=[raw_episodes],
    kinds={"parquet"},
    description=(
        "One session as a LeRobot v3.0 dataset under sessions/<session>/, written by the library's "
        "DatasetWriter (imports: stream-copied), built beside the old one and swapped in whole."
    ),
)
def session_dataset(context: dg.AssetExecutionContext, home: DataHome, encoder: VideoEncoderResource) -> dg.MaterializeResult:
    layout = home.layout()
    session = context.partition_key
    summary = read_raw_summary(layout, session)
    build = build_session_dataset(
        summary,
        layout.session(session),
        encoder=encoder.config(),
        encoder_threads=encoder.encoder_threads,
        progress=context.log.info,
    )
    context.log.info(f"{session}: {build.episodes} episodes, {build.frames} frames in {build.elapsed_s:.1f} s")
    metadata = dataset_metadata(build.root, layout.previews / "session_dataset" / f"{session}.png")
    metadata["dropped_frames"] = dg.MetadataValue.int(build.dropped_frames)
    metadata["elapsed_s"] = dg.MetadataValue.float(round(build.elapsed_s, 3))
    return dg.MaterializeResult(metadata=metadata)


def _failed_sessions(instance: dg.DagsterInstance, keys: list[str]) -> set[str]:
    """Sessions whose latest validation, of their latest materialization, failed."""
    check_key = dg.AssetCheckKey(session_dataset.key, SESSION_CHECK)
    infos = instance.event_log_storage.get_asset_check_partition_info([check_key], partition_keys=keys)
    return {
        i.partition_key
        for i in infos
        if i.partition_key is not None and i.latest_execution_status.value == "FAILED" and i.is_current
    }


def merge_plan(instance: dg.DagsterInstance, layout: HomeLayout) -> tuple[list[str], dict[str, str]]:
    """(sessions to merge, in registration order; {session: why it is left out})."""
    keys = list(instance.get_dynamic_partitions(SESSIONS))
    materialized = instance.get_materialized_partitions(session_dataset.key)
    failed = _failed_sessions(instance, keys)
    chosen: list[str] = []
    skipped: dict[str, str] = {}
    for key in keys:
        if key not in materialized:
            skipped[key] = "not materialized yet"
        elif key in failed:
            skipped[key] = f"its latest {SESSION_CHECK} check failed"
        elif not (layout.session(key) / "meta" / "info.json").is_file():
            skipped[key] = f"{layout.session(key)} is missing"
        else:
            chosen.append(key)
    return chosen, skipped


@dg.asset(
    group_name=GROUP,
    deps=[dg.AssetDep(session_dataset, partition_mapping=dg.AllPartitionMapping())],
    kinds={"parquet"},
    automation_condition=merge_automation,
    description=(
        "All materialized, valid sessions merged into one v3 dataset (datasets/lerobot_dataset/) by stream copy: "
        "new sessions are appended; a changed or removed session triggers an atomic rebuild. Episode, frame and "
        "task indices are renumbered in session registration order."
    ),
)
def lerobot_dataset(context: dg.AssetExecutionContext, home: DataHome) -> dg.MaterializeResult:
    from lerobot_assets.tools.merge import merge_datasets

    layout = home.layout()
    sessions, skipped = merge_plan(context.instance, layout)
    for key, why in skipped.items():
        context.log.warning(f"not merging {key}: {why}")
    if not sessions:
        raise dg.Failure(
            description="no session dataset to merge: materialize session_dataset for at least one session first",
            metadata={"skipped": dg.MetadataValue.json(skipped)},
        )
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
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name=GROUP,
    deps=[lerobot_dataset],
    kinds={"json"},
    automation_condition=dg.AutomationCondition.eager(),
    description="Exact statistics of the merged dataset over all its episodes (meta/stats.json), as a table.",
)
def dataset_stats(context: dg.AssetExecutionContext, home: DataHome) -> dg.MaterializeResult:
    from lerobot_assets.format.info import DatasetInfo
    from lerobot_assets.stats.dataset import compute_dataset_stats
    from lerobot_assets.format.stats_json import write_stats

    root = home.layout().dataset(MERGED_DATASET)
    info = DatasetInfo.load(root)
    stats = compute_dataset_stats(root)
    write_stats(root, stats)
    context.log.info(f"stats of {len(stats)} features over {info.total_episodes} episodes, {info.total_frames} frames")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(root / "meta" / "stats.json")),
            "features": dg.MetadataValue.int(len(stats)),
            "episodes": dg.MetadataValue.int(info.total_episodes),
            "frames": dg.MetadataValue.int(info.total_frames),
            "stats": dg.MetadataValue.md(stats_markdown(stats)),
        }
    )


session_assets = [raw_episodes, session_dataset]
dataset_assets = [lerobot_dataset, dataset_stats]
all_assets = [*session_assets, *dataset_assets]
