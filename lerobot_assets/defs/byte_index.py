"""byte_index: the per-episode byte index of the merged dataset, checked against ffprobe."""

import dagster as dg

from lerobot_assets.defs.assets import GROUP, lerobot_dataset
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.home import MERGED_DATASET


@dg.asset(
    group_name=GROUP,
    deps=[lerobot_dataset],
    kinds={"parquet"},
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "Per-episode byte index of every video file of the merged dataset (meta/byte_index/: files, segments, "
        "frames tables), so training from remote storage fetches each file's header once and one byte range "
        "per episode. Incremental: only new or changed video files are parsed."
    ),
)
def byte_index(context: dg.AssetExecutionContext, home: DataHome) -> dg.MaterializeResult:
    from lerobot_assets.byteindex import build_byte_index

    root = home.layout().dataset(MERGED_DATASET)

    def progress(p) -> None:  # one log line per file, not per frame
        context.log.info(f"[{p.done}/{p.total}] {p.action} {p.path} ({p.segments} episodes, {p.file_size} bytes)")

    result = build_byte_index(root, workers=2, progress=progress)
    s = result.stats
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(root / "meta" / "byte_index")),
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


byte_index_assets = [byte_index]
byte_index_checks = [byte_index_matches_ffprobe]
