"""Dataset edits by stream copy against copying the dataset (`cp -r`), measured in the same run.

On a generated dataset (default 200 episodes, 2 cameras: 96x96 and 480x640, several video and data
files per camera so deletions hit every file):

- delete 10% of the episodes (every 10th, so every file holds kept and dropped ones): time vs
  `cp -r` of the whole dataset (goal <= 1.5x; no re-encode: the output's video packets are the
  input's, checked). The edits fsync every file they publish (a crash never leaves a half-written
  dataset) and `cp -r` does not, so `cp -r` followed by `sync` is reported as a second baseline;
- split 80/20 then merge the two splits back: time of each vs `cp -r`, and the merged-back
  dataset's video packets (hence frames) and data rows identical to the input's (checked; a few
  episodes are also decoded and compared pixel for pixel).

Each timed step runs `--repeat` times alternating with the baseline; medians are reported. The
last line printed is a JSON object.

    .venv/bin/python benchmarks/bench_edit.py [--episodes 200] [--frames 30] [--repeat 3]
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("SVT_LOG", "1")

import av  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

SMALL, BIG = "observation.images.wrist", "observation.images.top"


def generate(root: Path, episodes: int, frames: int) -> None:
    from lerobot_assets.recording import DatasetWriter

    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": None},
        "action": {"dtype": "float32", "shape": [6], "names": None},
        SMALL: {"dtype": "video", "shape": [96, 96, 3], "names": ["height", "width", "channels"]},
        BIG: {"dtype": "video", "shape": [480, 640, 3], "names": ["height", "width", "channels"]},
    }
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:480, 0:640]
    # Fine texture that moves: AV1 frames of a few tens of KB at 480x640, like camera footage (a
    # plain gradient compresses to almost nothing and would make every copy look free).
    texture = rng.integers(0, 48, (480 + 64, 640 + 64, 3), dtype=np.uint8)
    w = DatasetWriter.create(
        root, fps=30, features=features, robot_type="bench", data_files_size_in_mb=0.2, video_files_size_in_mb=40
    )
    for e in range(episodes):
        for t in range(frames):
            big = np.stack([(xs + 3 * t + e) % 256, (ys + 2 * t) % 256, np.full_like(xs, (7 * e) % 256)], -1).astype(np.uint8)
            big += texture[t % 64 : t % 64 + 480, (2 * t) % 64 : (2 * t) % 64 + 640]
            w.add_frame(
                {
                    "observation.state": rng.standard_normal(6).astype(np.float32),
                    "action": rng.standard_normal(6).astype(np.float32),
                    SMALL: np.ascontiguousarray(big[::5, ::6][:96, :96]),
                    BIG: big,
                    "task": f"task {e % 3}",
                }
            )
        w.save_episode()
    w.finalize()


def cp_r(src: Path, dst: Path, sync: bool = False) -> float:
    """`cp -r`; with `sync`, also until the copy is on disk (the edits fsync what they publish)."""
    os.sync()  # start from a clean page cache state: earlier writes must not land on this timing
    t = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    if sync:
        os.sync()
    return time.perf_counter() - t


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def packet_digests(root: Path, key: str) -> list[str]:
    """sha256 of every video packet of camera `key`, in episode order (file order, then pts)."""
    from lerobot_assets.format.episodes import read_episodes
    from lerobot_assets.format.info import DatasetInfo
    from lerobot_assets.format.templates import format_path

    info = DatasetInfo.load(root)
    rows = read_episodes(root).to_pylist()
    out: list[str] = []
    files: dict[tuple[int, int], list[dict]] = {}
    for r in rows:
        files.setdefault((r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]), []).append(r)
    for (c, f), eps in sorted(files.items()):
        assert info.video_path is not None
        with av.open(str(root / format_path(info.video_path, "video", c, f, key))) as container:
            stream = container.streams.video[0]
            tb = stream.time_base
            packets = sorted((p.pts, bytes(p)) for p in container.demux(stream) if p.size)
        for r in sorted(eps, key=lambda r: r[f"videos/{key}/from_timestamp"]):
            lo, hi = r[f"videos/{key}/from_timestamp"], r[f"videos/{key}/to_timestamp"]
            seg = [b for pts, b in packets if lo - 1e-6 <= float(pts * tb) < hi - 1e-6]
            assert len(seg) == r["length"], (root, key, r["episode_index"], len(seg), r["length"])
            out.extend(hashlib.sha256(b).hexdigest() for b in seg)
    return out


def data_rows(root: Path) -> Any:
    import pyarrow as pa

    tables = [pq.read_table(p) for p in sorted((root / "data").rglob("*.parquet"))]
    return pa.concat_tables(tables).sort_by("index").drop_columns(["task_index"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dataset", type=Path, default=None, help="generate the dataset here once and reuse it (default: a temp dir)")
    args = parser.parse_args()

    from lerobot_assets.format.info import DatasetInfo
    from lerobot_assets.loading import LeRobotV3Dataset
    from lerobot_assets.tools.delete import delete_episodes
    from lerobot_assets.tools.merge import merge_to_new
    from lerobot_assets.tools.split import split_dataset

    with tempfile.TemporaryDirectory(prefix="bench-edit-") as tmp_s:
        tmp = Path(tmp_s)
        src = args.dataset.absolute() if args.dataset else tmp / "src"
        t = 0.0
        if not (src / "meta/info.json").is_file():
            t, _ = timed(lambda: generate(src, args.episodes, args.frames))
        info = DatasetInfo.load(src)
        n_files = {k: len(list((src / "videos" / k).rglob("*.mp4"))) for k in info.video_keys}
        size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
        print(f"dataset: {info.total_episodes} episodes, {info.total_frames} frames, {size / 1e6:.1f} MB, "
              f"video files {n_files}, data files {len(list((src / 'data').rglob('*.parquet')))} (generated in {t:.1f} s)")

        drop = list(range(0, args.episodes, 10))
        cp, cp_sync, dele, split, merge = [], [], [], [], []
        for i in range(args.repeat):
            order = [0, 1] if i % 2 == 0 else [1, 0]
            for which in order:
                if which == 0:
                    cp.append(cp_r(src, tmp / f"copy{i}"))
                    shutil.rmtree(tmp / f"copy{i}")
                    cp_sync.append(cp_r(src, tmp / f"copy{i}", sync=True))
                    shutil.rmtree(tmp / f"copy{i}")
                else:
                    os.sync()
                    secs, _ = timed(lambda i=i: delete_episodes(src, drop, tmp / f"del{i}"))
                    dele.append(secs)
            os.sync()
            secs, _ = timed(lambda i=i: split_dataset(src, {"train": 0.8, "val": 0.2}, tmp / f"split{i}"))
            split.append(secs)
            os.sync()
            secs, _ = timed(lambda i=i: merge_to_new([tmp / f"split{i}" / "train", tmp / f"split{i}" / "val"], tmp / f"back{i}"))
            merge.append(secs)
            if i < args.repeat - 1:
                for d in (f"del{i}", f"split{i}", f"back{i}"):
                    shutil.rmtree(tmp / d)

        last = args.repeat - 1
        # Checks: stream copy, not re-encode; nothing lost or changed by split + merge back.
        for key in info.video_keys:
            src_packets = packet_digests(src, key)
            kept = [h for e, part in enumerate(np.array_split(src_packets, args.episodes)) if e not in set(drop) for h in part]
            assert packet_digests(tmp / f"del{last}", key) == kept, f"delete changed {key} packets"
            assert packet_digests(tmp / f"back{last}", key) == src_packets, f"split + merge changed {key} packets"
        a, b = data_rows(src), data_rows(tmp / f"back{last}")
        assert a.drop_columns(["index"]).equals(b.drop_columns(["index"])), "split + merge changed data rows"
        ds_a, ds_b = LeRobotV3Dataset(src), LeRobotV3Dataset(tmp / f"back{last}")
        for idx in (0, len(ds_a) // 2, len(ds_a) - 1):
            for key in info.video_keys:
                assert np.array_equal(np.asarray(ds_a[idx][key]), np.asarray(ds_b[idx][key])), (idx, key)

        med = {k: statistics.median(v) for k, v in {"cp": cp, "cp_sync": cp_sync, "delete": dele, "split": split, "merge": merge}.items()}
        result = {
            "episodes": args.episodes,
            "frames": info.total_frames,
            "dataset_mb": round(size / 1e6, 1),
            "cp_r_s": round(med["cp"], 3),
            "delete_10pct_s": round(med["delete"], 3),
            "cp_r_sync_s": round(med["cp_sync"], 3),
            "delete_vs_cp": round(med["delete"] / med["cp"], 2),
            "delete_vs_cp_sync": round(med["delete"] / med["cp_sync"], 2),
            "split_80_20_s": round(med["split"], 3),
            "split_vs_cp": round(med["split"] / med["cp"], 2),
            "merge_back_s": round(med["merge"], 3),
            "merge_vs_cp": round(med["merge"] / med["cp"], 2),
            "identical_after_split_merge": True,
        }
        print(f"cp -r {med['cp']:.2f} s, cp -r + sync {med['cp_sync']:.2f} s | delete 10% {med['delete']:.2f} s = "
              f"{result['delete_vs_cp']}x cp -r (goal <= 1.5x), {result['delete_vs_cp_sync']}x cp -r + sync | "
              f"split 80/20 {med['split']:.2f} s = {result['split_vs_cp']}x | merge back {med['merge']:.2f} s = {result['merge_vs_cp']}x")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
