"""Check a built byte index against ffprobe (an independent MP4 demuxer)."""

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from lerobot_assets.format.published import follow_local


def ffprobe_packets(path: Path | str) -> dict[str, np.ndarray]:
    """Video packets of a file as ffprobe reports them: pos, size, pts and dts (s), keyframe flag."""
    if shutil.which("ffprobe") is None:
        raise FileNotFoundError("ffprobe is not installed (Debian: apt-get install ffmpeg)")
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_packets",
         "-show_entries", "packet=pos,size,pts_time,dts_time,flags", "-of", "json", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout
    packets = json.loads(out).get("packets", [])
    return {
        "pos": np.array([int(p["pos"]) for p in packets], dtype=np.int64),
        "size": np.array([int(p["size"]) for p in packets], dtype=np.int64),
        "pts": np.array([float(p["pts_time"]) for p in packets]),
        "dts": np.array([float(p["dts_time"]) for p in packets]),
        "key": np.array(["K" in p["flags"] for p in packets]),
    }


@dataclass
class VerifyReport:
    files: int = 0
    frames: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def verify_with_ffprobe(root: Path | str, sample: int = 256, seed: int = 0) -> VerifyReport:
    """Compare up to `sample` indexed frames (spread over every file) with ffprobe's packets.

    A local published prefix is verified at the version its pointer names."""
    root, _ = follow_local(root)
    frames = pq.read_table(
        root / "meta/byte_index/frames.parquet",
        columns=["video_key", "chunk_index", "file_index", "episode_index", "frame_index", "pts_s", "byte_offset", "size", "keyframe"],
    ).to_pydict()
    files = pq.read_table(root / "meta/byte_index/files.parquet", columns=["video_key", "chunk_index", "file_index", "path"]).to_pylist()
    n = len(frames["byte_offset"])
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(n, size=min(sample, n), replace=False)) if n else np.array([], dtype=int)
    report = VerifyReport(files=len(files))
    by_file: dict[tuple, list[int]] = {}
    for i in picked:
        by_file.setdefault((frames["video_key"][i], frames["chunk_index"][i], frames["file_index"][i]), []).append(int(i))
    paths = {(f["video_key"], f["chunk_index"], f["file_index"]): f["path"] for f in files}
    for key, rows in by_file.items():
        rel = paths[key]
        ref = ffprobe_packets(root / rel)
        where = {int(p): j for j, p in enumerate(ref["pos"])}
        for i in rows:
            label = f"{rel} episode {frames['episode_index'][i]} frame {frames['frame_index'][i]}"
            j = where.get(int(frames["byte_offset"][i]))
            if j is None:
                report.mismatches.append(f"{label}: no ffprobe packet at byte offset {frames['byte_offset'][i]}")
            elif ref["size"][j] != frames["size"][i]:
                report.mismatches.append(f"{label}: size {frames['size'][i]} != ffprobe {ref['size'][j]}")
            elif abs(ref["pts"][j] - frames["pts_s"][i]) > 1e-6:
                report.mismatches.append(f"{label}: pts {frames['pts_s'][i]:.6f} != ffprobe {ref['pts'][j]:.6f}")
            elif bool(ref["key"][j]) != bool(frames["keyframe"][i]):
                report.mismatches.append(f"{label}: keyframe {frames['keyframe'][i]} != ffprobe {bool(ref['key'][j])}")
            report.frames += 1
    return report
