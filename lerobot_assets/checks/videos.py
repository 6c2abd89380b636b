"""Validation of the video files against the episodes metadata: each file read once (demux only,
no decoding) whatever number of episodes it holds; each episode's frames must sit at
from_timestamp + k/fps within the reader's tolerance."""

import math
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np

from lerobot_assets.checks.context import ValidationRun
from lerobot_assets.checks.report import episode_list


def check_video_files(run: ValidationRun) -> None:
    eps, info = run.eps, run.info
    assert eps is not None and info is not None
    jobs: list[tuple[str, str, list[int]]] = []
    for key in info.video_keys:
        v = eps.video[key]
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for k, cf in enumerate(zip(v["chunk_index"].tolist(), v["file_index"].tolist())):
            groups[cf].append(k)
        referenced = set()
        for (c, f), positions in sorted(groups.items()):
            rel = info.video_path.format(video_key=key, chunk_index=c, file_index=f)
            referenced.add(rel)
            jobs.append((key, rel, positions))
        for path in sorted((run.root / "videos" / key).glob("*/*.mp4")):
            if run.rel(path) not in referenced:
                run.warn(path, None, "video file is not referenced by any episode")
    run.report.num_video_files = len(jobs)
    # Demuxing is I/O and C work; a few threads overlap it across files.
    workers = max(1, min(4, os.cpu_count() or 1, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda job: _probe_packets(run.root / job[1]), jobs))
    for (key, rel, positions), probe in zip(jobs, results):
        _check_video_segments(run, key, rel, positions, probe)


def _check_video_segments(run: ValidationRun, key: str, rel: str, positions: list[int], probe: "_VideoProbe") -> None:
    eps, info = run.eps, run.info
    assert eps is not None and info is not None
    first_ep = int(eps.index[positions[0]])
    if probe.error is not None:
        missing = probe.error == "missing"
        msg = "video file is missing" if missing else f"unreadable video: {probe.error}"
        run.error(rel, first_ep, f"{msg} (referenced by {episode_list(eps.index[positions])})")
        return
    feature = info.features[key]
    if len(feature.shape) == 3:
        names = feature.names if isinstance(feature.names, list) else None
        h, w = (feature.shape[1], feature.shape[2]) if names and names[0] == "channels" else feature.shape[:2]
        if (probe.height, probe.width) != (h, w):
            run.error(rel, None, f"resolution {probe.width}x{probe.height} but info.json says {w}x{h}")
    codec = (feature.info or {}).get("video.codec")
    if codec and probe.codec and codec != probe.codec:
        run.warn(rel, None, f"codec {probe.codec} but info.json says {codec}")
    fps = info.fps
    half = 0.5 / fps
    pts = probe.pts
    v = eps.video[key]
    segments = []
    for k in positions:
        ep = int(eps.index[k])
        start, stop = float(v["from_timestamp"][k]), float(v["to_timestamp"][k])
        length = int(eps.length[k])
        if not (math.isfinite(start) and math.isfinite(stop)):
            run.error(rel, ep, f"from/to timestamps {start}, {stop} are not finite", check="video_ts")
            continue
        if start < -half or stop > probe.duration + half or stop <= start:
            run.error(rel, ep, f"segment [{start:.6f}, {stop:.6f}] s is outside the video's duration "
                                f"{probe.duration:.6f} s", check="video_range")
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


class _VideoProbe:
    """Packet timestamps (seconds, sorted) and stream facts of one video file."""

    def __init__(self) -> None:
        self.error: str | None = None
        self.pts = np.empty(0)
        self.duration = 0.0
        self.width = 0
        self.height = 0
        self.codec: str | None = None


def _probe_packets(path: Path) -> _VideoProbe:
    """Demux (never decode) every packet of the first video stream; one pass over the file."""
    import av  # local: only video checks need PyAV

    probe = _VideoProbe()
    if not path.is_file():
        probe.error = "missing"
        return probe
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                probe.error = "no video stream"
                return probe
            stream = container.streams.video[0]
            tb = Fraction(stream.time_base)
            ctx = stream.codec_context
            probe.width, probe.height = ctx.width, ctx.height
            probe.codec = ctx.codec.canonical_name if ctx.codec is not None else None
            ticks: list[int] = []
            end = 0
            for packet in container.demux(stream):
                # The flush packet at the end carries no frame.
                if packet.pts is None or packet.size == 0:
                    continue
                ticks.append(packet.pts)
                end = max(end, packet.pts + (packet.duration or 0))
            if stream.duration is not None:
                probe.duration = float(stream.duration * tb)
            elif container.duration is not None:
                probe.duration = container.duration / 1_000_000
            else:
                probe.duration = float(end * tb)
            probe.pts = np.sort(np.asarray(ticks, dtype=np.int64)) * float(tb)
    except av.error.FFmpegError as e:
        # str(e) repeats the path, which the problem line already names.
        probe.error = e.strerror or str(e)
    except (OSError, ValueError) as e:
        probe.error = str(e)
    return probe
