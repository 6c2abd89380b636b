"""Ingest: raw_episodes[session] -> session_dataset[session], one partition per recording session.

Each body calls the library (lerobot_assets.home) and returns
metadata; large files are written under the data home, never pickled through an IO manager.
(No `from __future__ import annotations` here: Dagster reads the annotations at definition time.)
"""

import dagster as dg

from lerobot_assets.defs.metadata import dataset_metadata, raw_metadata
from lerobot_assets.defs.ingest.partitions import sessions_partitions
from lerobot_assets.defs.resources import DataHome, SimSourceResource, VideoEncoderResource
from lerobot_assets.home import (
    build_session_dataset,
    normalize_session,
    read_raw_summary,
)
from lerobot_assets.home.validation import CHECK_NAME

GROUP = "lerobot"
SESSION_CHECK = CHECK_NAME

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


session_assets = [raw_episodes, session_dataset]
