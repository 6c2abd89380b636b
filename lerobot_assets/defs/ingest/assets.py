"""Ingest: raw_episodes[session] -> session_dataset[session] + session_videos[session], one partition per
recording session.

Each body calls the library (lerobot_assets.home) and returns
metadata; large files are written under the data home, never pickled through an IO manager.
(No `from __future__ import annotations` here: Dagster reads the annotations at definition time.)
"""

from collections.abc import Iterator

import dagster as dg

from lerobot_assets.defs.ingest.partitions import sessions_partitions
from lerobot_assets.defs.metadata import dataset_metadata, published, raw_metadata, videos_metadata
from lerobot_assets.defs.resources import DataHome, SimSourceResource, VideoEncoderResource
from lerobot_assets.home import (
    build_session_dataset,
    normalize_session,
    parse_session_key,
    read_raw_summary,
)
from lerobot_assets.home.validation import CHECK_NAME
from lerobot_assets.home.workspace import HomeWorkspace

GROUP = "lerobot"
SESSION_CHECK = CHECK_NAME
# A session registered after the condition is in place (sim or import by the register jobs, inbox by
# its sensor) is built once, by the automation sensor: no cursor of our own to keep.
build_new_sessions = dg.AutomationCondition.on_missing()

@dg.asset(
    partitions_def=sessions_partitions,
    group_name=GROUP,
    kinds={"parquet"},
    automation_condition=build_new_sessions,
    description=(
        "Normalized raw episodes of one recording session (raw-v1 format, docs/raw-format.md): sim sessions "
        "are simulated and written under raw/<session>/; inbox sessions are validated in place (file and row "
        "named on error, nothing in the inbox touched); imports are fetched and validated."
    ),
)
def raw_episodes(context: dg.AssetExecutionContext, home: DataHome, sim: SimSourceResource) -> dg.MaterializeResult:
    session = context.partition_key
    with home.workspace(f"raw_episodes-{session}", context.log.info) as ws:
        pull_session_sources(ws, session)
        summary = normalize_session(session, ws.layout, sim=sim.template(), progress=context.log.info)
        preview = f"previews/raw_episodes/{session}.png"
        ws.write(f"raw/{session}")
        ws.write(preview)
        return dg.MaterializeResult(metadata=published(ws, raw_metadata(summary, ws.layout.root / preview)))


def pull_session_sources(ws: HomeWorkspace, session: str) -> None:
    """What a session's raw episodes are read from, besides raw/<session>: its inbox folder, or its
    import spec and a Hub download (a no-op on a local home)."""
    key = parse_session_key(session)
    if key.kind == "inbox":
        ws.pull(f"inbox/{key.name}")
    elif key.kind == "import":
        ws.pull(f"imports/{key.name}.json")
        ws.pull(f"downloads/{key.name}")


SESSION_DATASET = dg.AssetKey("session_dataset")
SESSION_VIDEOS = dg.AssetKey("session_videos")


# One build writes both: the videos are encoded while the frames stream into the dataset, so
# making them an asset of their own costs no second pass over the data. Either may be selected
# alone (the build is the same); only the selected ones are reported materialized.
@dg.multi_asset(
    partitions_def=sessions_partitions,
    can_subset=True,
    specs=[
        dg.AssetSpec(
            SESSION_DATASET,
            group_name=GROUP,
            deps=[raw_episodes],
            kinds={"parquet"},
            automation_condition=build_new_sessions,
            description=(
                "One session as a LeRobot v3.0 dataset under sessions/<session>/, written by the library's "
                "DatasetWriter (imports: stream-copied), built beside the old one and swapped in whole."
            ),
        ),
        dg.AssetSpec(
            SESSION_VIDEOS,
            group_name=GROUP,
            deps=[raw_episodes],
            kinds={"mp4"},
            automation_condition=build_new_sessions,
            description=(
                "The session dataset's encoded camera videos (videos/<camera>/chunk-*/file-*.mp4): per camera the "
                "codec, size, files, bytes, duration and a preview frame."
            ),
        ),
    ],
)
def session_build(context: dg.AssetExecutionContext, home: DataHome, encoder: VideoEncoderResource) -> Iterator[dg.MaterializeResult]:
    session = context.partition_key
    results: list[dg.MaterializeResult] = []
    # Published when the block ends, before the results are reported: a materialization is recorded
    # only for a dataset that readers can see.
    with home.workspace(f"session_build-{session}", context.log.info) as ws:
        layout = ws.layout
        ws.pull(f"raw/{session}")
        pull_session_sources(ws, session)
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
        if SESSION_DATASET in context.selected_asset_keys:
            results.append(dg.MaterializeResult(asset_key=SESSION_DATASET, metadata=metadata))
        if SESSION_VIDEOS in context.selected_asset_keys:
            videos = videos_metadata(build.root, layout.previews / "session_videos" / session)
            results.append(dg.MaterializeResult(asset_key=SESSION_VIDEOS, metadata=videos))
        for rel in (f"sessions/{session}", f"previews/session_dataset/{session}.png"):
            ws.write(rel)
        for png in sorted((layout.previews / "session_videos" / session).glob("*.png")):
            ws.write(png.relative_to(layout.root).as_posix())
        results = [dg.MaterializeResult(asset_key=r.asset_key, metadata=published(ws, dict(r.metadata or {}))) for r in results]
    yield from results


session_assets = [raw_episodes, session_build]
