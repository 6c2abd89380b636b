"""Materialization metadata: counts, duration, bytes, codecs, a preview frame and a stats table.

What the UI shows for every materialization, so a dataset can be judged without opening a notebook.
"""

import base64
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np

from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.home import RawSummary, raw_preview
from lerobot_assets.home.workspace import HomeWorkspace
from lerobot_assets.video.summary import camera_videos, episode_first_frame

PREVIEW_MAX_WIDTH = 320


def published(ws: HomeWorkspace, metadata: dict[str, Any]) -> dict[str, Any]:
    """Publish the step's writes now, and point its path metadata at where they live in the home (on a
    remote home, its workspace is gone once the step ends): call last in an asset body."""
    ws.publish_all()
    out = dict(metadata)
    for key, value in metadata.items():
        if isinstance(value, dg.PathMetadataValue) and value.path is not None:
            out[key] = dg.MetadataValue.path(ws.location(Path(str(value.path))))
    return out


def dir_bytes(root: Path) -> int:
    """Bytes of the files of a dataset (the writer's scratch and lock files excluded)."""
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file() and ".staging" not in p.parts)


def preview_png(image: np.ndarray | None, out: Path) -> bytes | None:
    """Downscaled PNG of `image`, also written to `out` (so the UI can link the file)."""
    if image is None:
        return None
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image)).convert("RGB")
    if im.width > PREVIEW_MAX_WIDTH:
        im = im.resize((PREVIEW_MAX_WIDTH, max(1, round(im.height * PREVIEW_MAX_WIDTH / im.width))))
    buf = BytesIO()
    im.save(buf, format="PNG", optimize=True)
    data = buf.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return data


def preview_metadata(png: bytes | None, path: Path, caption: str) -> dict[str, Any]:
    if png is None:
        return {}
    b64 = base64.b64encode(png).decode()
    return {
        "preview": dg.MetadataValue.md(f"**{caption}**\n\n![preview](data:image/png;base64,{b64})"),
        "preview_path": dg.MetadataValue.path(str(path)),
    }


def _fmt(values: Any, digits: int = 4) -> str:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        return f"{arr[0]:.{digits}g}"
    shown = ", ".join(f"{v:.{digits}g}" for v in arr[:6])
    return f"[{shown}{', ...' if arr.size > 6 else ''}]"


def stats_markdown(stats: dict[str, dict[str, Any]]) -> str:
    """One row per feature: min, max, mean, std, count (vectors shown per dimension)."""
    if not stats:
        return "_no statistics_"
    lines = ["| feature | min | max | mean | std | q50 | count |", "|---|---|---|---|---|---|---|"]
    for key, s in stats.items():
        count = int(np.asarray(s.get("count", [0])).reshape(-1)[0])
        cells = [_fmt(s[k]) if k in s else "-" for k in ("min", "max", "mean", "std", "q50")]
        lines.append(f"| `{key}` | " + " | ".join(cells) + f" | {count:,} |")
    return "\n".join(lines)


def dataset_metadata(root: Path, preview_out: Path) -> dict[str, Any]:
    """Metadata of a v3 dataset root: counts, duration, bytes, codecs, preview, stats table."""
    meta = DatasetMeta(root)
    info = meta.info
    frames = int(info.total_frames)
    codecs = {}
    for key in info.video_keys:
        block = info.features[key].info or {}
        codecs[key] = f"{block.get('video.codec', '?')} {block.get('video.width', '?')}x{block.get('video.height', '?')} {block.get('video.pix_fmt', '')}".strip()
    md: dict[str, Any] = {
        "path": dg.MetadataValue.path(str(root)),
        "episodes": dg.MetadataValue.int(int(info.total_episodes)),
        "frames": dg.MetadataValue.int(frames),
        "dagster/row_count": dg.MetadataValue.int(frames),
        "fps": dg.MetadataValue.int(int(info.fps)),
        "duration_s": dg.MetadataValue.float(round(frames / info.fps, 3) if info.fps else 0.0),
        "tasks": dg.MetadataValue.int(len(meta.tasks)),
        "bytes": dg.MetadataValue.int(dir_bytes(root)),
        "codec": dg.MetadataValue.text(", ".join(f"{k}: {v}" for k, v in codecs.items()) or "no video"),
        "stats": dg.MetadataValue.md(stats_markdown(meta.stats)),
    }
    if info.video_keys and meta.num_episodes:
        key = info.video_keys[-1]  # the last camera is the widest view in our sources (PushT: top)
        md |= preview_metadata(preview_png(_safe_preview(episode_first_frame, root, key), preview_out), preview_out, f"episode 0, {key}, frame 0")
    return md


def videos_metadata(root: Path, preview_dir: Path) -> dict[str, Any]:
    """Metadata of a dataset's encoded videos: a table with one row per camera, and each camera's
    frame 0 of episode 0 as a preview."""
    cameras = camera_videos(root)
    rows = ["| camera | codec | size | pix_fmt | files | bytes | duration_s |", "|---|---|---|---|---|---|---|"]
    rows += [
        f"| `{c.key}` | {c.codec} | {c.width}x{c.height} | {c.pix_fmt} | {c.files} | {c.bytes:,} | {c.duration_s:.2f} |"
        for c in cameras
    ]
    md: dict[str, Any] = {
        "cameras": dg.MetadataValue.md("\n".join(rows) if cameras else "_no video features_"),
        "video_files": dg.MetadataValue.int(sum(c.files for c in cameras)),
        "bytes": dg.MetadataValue.int(sum(c.bytes for c in cameras)),
        "duration_s": dg.MetadataValue.float(max((c.duration_s for c in cameras), default=0.0)),
        "codec": dg.MetadataValue.json({c.key: c.codec for c in cameras}),
    }
    previews = []
    for c in cameras:
        out = preview_dir / f"{c.key}.png"
        png = preview_png(_safe_preview(episode_first_frame, root, c.key), out)
        if png is not None:
            previews.append(f"**{c.key}**\n\n![{c.key}](data:image/png;base64,{base64.b64encode(png).decode()})")
    if previews:
        md["preview"] = dg.MetadataValue.md("\n\n".join(previews))
    return md


def _safe_preview(read: Callable[..., np.ndarray | None], *args: Any) -> np.ndarray | None:
    try:
        return read(*args)
    except Exception:  # a preview must never fail a materialization
        return None


def raw_metadata(summary: RawSummary, preview_out: Path) -> dict[str, Any]:
    md: dict[str, Any] = {
        "source": dg.MetadataValue.path(summary.source),
        "kind": dg.MetadataValue.text(summary.kind),
        "format": dg.MetadataValue.text(summary.format),
        "episodes": dg.MetadataValue.int(summary.episodes),
        "frames": dg.MetadataValue.int(summary.frames),
        "dagster/row_count": dg.MetadataValue.int(summary.frames),
        "fps": dg.MetadataValue.int(summary.fps),
        "duration_s": dg.MetadataValue.float(round(summary.duration_s, 3)),
        "bytes": dg.MetadataValue.int(summary.bytes),
        "cameras": dg.MetadataValue.json(summary.cameras),
        "tasks": dg.MetadataValue.json(summary.tasks),
        "episode_lengths": dg.MetadataValue.md(_lengths_md(summary.lengths)),
        "fingerprint": dg.MetadataValue.text(summary.fingerprint),
    }
    if "success_rate" in summary.details:
        md["success_rate"] = dg.MetadataValue.float(float(summary.details["success_rate"]))
    if summary.details:
        md["details"] = dg.MetadataValue.json(summary.details)
    image = _safe_preview(raw_preview, summary)
    md |= preview_metadata(preview_png(image, preview_out), preview_out, "episode 0, frame 0")
    return md


def _lengths_md(lengths: list[int]) -> str:
    if not lengths:
        return "_no episodes_"
    arr = np.asarray(lengths)
    return (
        f"{len(arr)} episodes: min {arr.min()}, mean {arr.mean():.1f}, max {arr.max()} frames\n\n"
        + "| episode | frames |\n|---|---|\n"
        + "\n".join(f"| {i} | {n} |" for i, n in enumerate(lengths[:50]))
        + ("\n| ... | ... |" if len(lengths) > 50 else "")
    )


def problems_markdown(problems: list[Any], limit: int = 30) -> str:
    if not problems:
        return "_no problems_"
    lines = [f"- {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"- ... and {len(problems) - limit} more")
    return "\n".join(lines)
