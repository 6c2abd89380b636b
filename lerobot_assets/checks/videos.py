"""Validation of the video files against the episodes metadata: each file read once (demux only,
no decoding) whatever number of episodes it holds; each episode's frames must sit at
from_timestamp + k/fps within the reader's tolerance."""

import math
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from lerobot_assets.checks.context import ValidationRun
from lerobot_assets.checks.report import episode_list
from lerobot_assets.format.files import file_problem
from lerobot_assets.format.layout import WRITER_TEMP_GLOB
from lerobot_assets.video.probe import UnreadableVideoError, VideoScan, scan_video


def check_video_files(run: ValidationRun) -> None:
    eps, info = run.eps, run.info
    assert eps is not None and info is not None
    jobs: list[tuple[str, str, list[int]]] = []
    if info.video_path is None:
        return  # check_info_features reports a null video_path when there are video features
    for key in info.video_keys:
        v = eps.video[key]
        positions_of: dict[tuple[int, int], list[int]] = defaultdict(list)
        for k, cf in enumerate(zip(v["chunk_index"].tolist(), v["file_index"].tolist())):
            positions_of[cf].append(k)
        # The camera's files as its template names them (format.templates.dataset_files).
        files = [f for f in run.files if f.kind == "video" and f.video_key == key]
        for f in files:
            jobs.append((key, f.rel, positions_of[(f.chunk_index, f.file_index)]))
        referenced = {f.rel for f in files}
        for path in sorted((run.root / "videos" / key).glob("*/*.mp4")):
            # A writer's temp (`.file-000.mp4.<random>.tmp.mp4`) is a version being published,
            # not a stray: it is renamed into place or removed by the writer's recovery.
            if fnmatch(path.name, WRITER_TEMP_GLOB):
                continue
            if run.rel(path) not in referenced:
                run.warn(path, None, "video file is not referenced by any episode")
    run.report.num_video_files = len(jobs)
    # Demuxing is I/O and C work; a few threads overlap it across files.
    workers = max(1, min(4, os.cpu_count() or 1, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda job: _scan(run.root / job[1]), jobs))
    for (key, rel, positions), scan in zip(jobs, results):
        _check_video_segments(run, key, rel, positions, scan)


def _check_video_segments(run: ValidationRun, key: str, rel: str, positions: list[int], scan: VideoScan | str) -> None:
    eps, info = run.eps, run.info
    assert eps is not None and info is not None
    first_ep = int(eps.index[positions[0]])
    if isinstance(scan, str):
        run.error(rel, first_ep, f"{scan} (referenced by {episode_list(eps.index[positions])})")
        return
    width, height, file_codec = scan.summary["width"], scan.summary["height"], scan.summary["codec"]
    feature = info.features[key]
    if len(feature.shape) == 3:
        names = feature.names if isinstance(feature.names, list) else None
        h, w = (feature.shape[1], feature.shape[2]) if names and names[0] == "channels" else feature.shape[:2]
        if (height, width) != (h, w):
            run.error(rel, None, f"resolution {width}x{height} but info.json says {w}x{h}")
    codec = (feature.info or {}).get("video.codec")
    if codec and file_codec and codec != file_codec:
        run.warn(rel, None, f"codec {file_codec} but info.json says {codec}")
    fps = info.fps
    half = 0.5 / fps
    # Seconds, sorted: presentation order whatever the decode order.
    pts = np.sort(scan.packets.pts) * float(scan.packets.time_base)  # type: ignore[arg-type]
    v = eps.video[key]
    segments = []
    for k in positions:
        ep = int(eps.index[k])
        start, stop = float(v["from_timestamp"][k]), float(v["to_timestamp"][k])
        length = int(eps.length[k])
        if not (math.isfinite(start) and math.isfinite(stop)):
            run.error(rel, ep, f"from/to timestamps {start}, {stop} are not finite", check="video_ts")
            continue
        if start < -half or stop > scan.duration_s + half or stop <= start:
            run.error(rel, ep, f"segment [{start:.6f}, {stop:.6f}] s is outside the video's duration "
                                f"{scan.duration_s:.6f} s", check="video_range")
            continue
        if abs((stop - start) - length / fps) > half:
            run.error(rel, ep, f"segment lasts {stop - start:.6f} s but the episode's {length} frames "
                                f"last {length / fps:.6f} s", check="video_span")
        lo, hi = np.searchsorted(pts, [start - half, stop - half])
        count = int(hi - lo)
        if count != length:
            run.error(rel, ep, f"video holds {count} frames in [{start:.6f}, {stop:.6f}) s but the "
                                f"episode has {length}", check="video_count")
        else:
            dev = np.abs(pts[lo:hi] - (start + np.arange(length) / fps))
            worst = float(dev.max()) if dev.size else 0.0
            if worst >= run.tolerance_s:
                j = int(dev.argmax())
                run.error(rel, ep, f"frame {j} sits at {pts[lo + j]:.6f} s, {worst:.6f} s away from "
                                    f"from_timestamp + {j}/fps (reader tolerance {run.tolerance_s} s)",
                           check="video_align")
        segments.append((start, stop, ep))
    segments.sort()
    for (a0, a1, ea), (b0, b1, eb) in zip(segments, segments[1:]):
        if b0 < a1 - half:
            run.error(rel, eb, f"segment [{b0:.6f}, {b1:.6f}] overlaps episode {ea}'s [{a0:.6f}, {a1:.6f}]",
                       check="video_overlap")


def _scan(path: Path) -> VideoScan | str:
    """The file's packets and stream facts, or why there are none ("video file is missing",
    "video file is a FIFO", "unreadable video: <the reader's reason>")."""
    problem = file_problem(path)
    if problem is not None:
        return f"video file {problem}"
    try:
        return scan_video(path)
    except UnreadableVideoError as e:
        return f"unreadable video: {e}"
