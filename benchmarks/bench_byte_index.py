"""Byte index vs LeRobot's way of reading one episode of a large multi-episode MP4 from S3.

Builds a dataset-like root whose video file is >= 100 MB (one encoded set of episodes, concatenated
by stream copy many times, like LeRobot appends episodes), serves it from a moto S3 server on
127.0.0.1, then for ~20 random episodes measures bytes fetched and time to the first decoded frame
and to all frames of the episode, cold (fresh reader / fresh file handle each time):

- index:   `EpisodeReader` — fetch the header + the episode's byte span (2 GETs), decode
           (torchcodec with custom frame mappings on a sparse file object). Also "warm": one reader
           kept across episodes, so the header is cached and each episode costs one GET.
- lerobot: `fsspec.open(url)` (s3fs defaults: readahead cache, 50 MiB blocks) +
           `VideoDecoder(f, seek_mode="approximate")` + `get_frames_played_at(from_timestamp + t)`,
           which is what LeRobot's `decode_video_frames_torchcodec` does.
- lerobot_1mib: the same with `cache_type="readahead", block_size=2**20` (LeRobot's streaming fork).

Bytes are counted where they leave S3 (every GetObject response body length, via s3fs), so both
paths are measured the same way. The last line printed is a JSON object with the ratios.

    .venv/bin/python benchmarks/bench_byte_index.py [--episodes 20] [--min-mb 100] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

DATASET_VERSION = 2  # bump when the generated dataset changes


def make_dataset(root: Path, min_mb: int, seed: int) -> dict:
    """Encode a handful of distinct 480x640 episodes, then concatenate copies up to >= min_mb."""
    from lerobot_assets.byteindex.testing import concat_mp4, encode_episode, write_minimal_dataset

    marker = root / "bench.json"
    if marker.exists():
        meta = json.loads(marker.read_text())
        if meta.get("min_mb") == min_mb and meta.get("seed") == seed and meta.get("version") == DATASET_VERSION:
            return meta
    shutil.rmtree(root, ignore_errors=True)
    parts_dir = root.parent / f"{root.name}-parts"
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True)
    rng = random.Random(seed)
    t0 = time.perf_counter()
    parts = []
    lengths = []
    for k in range(8):
        n = rng.choice([90, 120, 150, 180])
        part = parts_dir / f"ep{k}.mp4"
        encode_episode(
            part, n, codec="libx264", width=640, height=480, gop=30, seed=seed + k, noise=8,
            options={"g": "30", "crf": "23", "preset": "veryfast"},
        )
        parts.append(part)
        lengths.append(n)
    encode_s = time.perf_counter() - t0
    set_bytes = sum(p.stat().st_size for p in parts)
    copies = max(1, -(-min_mb * 1_000_000 // set_bytes))
    sequence = [(parts[i % len(parts)], lengths[i % len(parts)]) for i in range(copies * len(parts))]
    mp4 = root / "source.mp4"
    root.mkdir(parents=True, exist_ok=True)
    t1 = time.perf_counter()
    concat_mp4([p for p, _ in sequence], mp4, faststart=True)
    concat_s = time.perf_counter() - t1
    # Bounds the way LeRobot accumulates them: the sum of the previous episodes' durations.
    bounds, t = [], 0.0
    for _, n in sequence:
        bounds.append((t, t + n / 30))
        t += n / 30
    write_minimal_dataset(root, {"observation.images.cam": [(0, 0, mp4, list(range(len(sequence))), bounds)]})
    mp4.unlink()
    shutil.rmtree(parts_dir)
    meta = {
        "version": DATASET_VERSION,
        "min_mb": min_mb,
        "seed": seed,
        "episodes": len(sequence),
        "encode_s": encode_s,
        "concat_s": concat_s,
        "file_bytes": (root / "videos/observation.images.cam/chunk-000/file-000.mp4").stat().st_size,
    }
    marker.write_text(json.dumps(meta))
    return meta


class S3ByteCounter:
    """Counts the body bytes of every GetObject s3fs issues (both paths go through it)."""

    def __init__(self) -> None:
        import s3fs

        self.bytes = 0
        self.requests = 0
        self._orig = s3fs.S3FileSystem._call_s3
        counter = self

        async def counting(fs, method, *args, **kwargs):
            out = await counter._orig(fs, method, *args, **kwargs)
            if method == "get_object":
                counter.bytes += int(out.get("ContentLength", 0))
                counter.requests += 1
            return out

        s3fs.S3FileSystem._call_s3 = counting

    def reset(self) -> tuple[int, int]:
        out = (self.bytes, self.requests)
        self.bytes = self.requests = 0
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--min-mb", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="kept between runs (default: a temp dir)")
    args = parser.parse_args()

    import boto3
    import fsspec
    import torch
    from moto.server import ThreadedMotoServer
    from torchcodec.decoders import VideoDecoder

    from lerobot_assets.byteindex import ByteIndex, EpisodeReader, build_byte_index

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-byteindex-"))
    root = workdir / "dataset"
    meta = make_dataset(root, args.min_mb, args.seed)
    file_rel = "videos/observation.images.cam/chunk-000/file-000.mp4"
    file_bytes = (root / file_rel).stat().st_size
    print(f"dataset: {meta['episodes']} episodes in one {file_bytes / 1e6:.1f} MB H.264 640x480 file "
          f"(encode {meta['encode_s']:.1f} s, stream-copy concat {meta['concat_s']:.1f} s)")

    t0 = time.perf_counter()
    build = build_byte_index(root, workers=2, force=True)
    print(f"local index build: {build.stats.seconds * 1000:.0f} ms, header bytes read {build.stats.header_bytes_read}, "
          f"{build.stats.frames} frames, total {time.perf_counter() - t0:.2f} s")

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    t0 = time.perf_counter()
    for path in root.rglob("*"):
        if path.is_file() and path.name != "bench.json":
            client.upload_file(str(path), "bench", f"ds/{path.relative_to(root).as_posix()}")
    print(f"uploaded to moto S3 at {endpoint} in {time.perf_counter() - t0:.1f} s")
    url = "s3://bench/ds"
    counter = S3ByteCounter()

    t0 = time.perf_counter()
    index = ByteIndex.load(url, storage_options=options)
    load_s = time.perf_counter() - t0
    index_load_bytes, _ = counter.reset()
    print(f"index load from S3: {load_s * 1000:.0f} ms, {index_load_bytes} bytes (parquet tables, once per dataset)")

    rng = random.Random(args.seed + 1)
    key = "observation.images.cam"
    episodes = rng.sample(index.episodes(key), min(args.episodes, len(index.episodes(key))))
    fs = fsspec.filesystem("s3", **options)
    rows = []
    warm = EpisodeReader(index, url, storage_options=options)  # header cached after the first episode
    warm.decode(key, episodes[-1], [0])
    counter.reset()
    # ground truth: the local file decoded in torchcodec's exact mode (full scan, once)
    exact = VideoDecoder(str(root / file_rel), seek_mode="exact")
    for ep in episodes:
        seg = index.segment(key, ep)
        frames = index.frames(key, ep)
        row: dict = {"episode": ep, "n_frames": len(frames), "min_bytes": seg.min_fetch_bytes,
                     "segment_bytes": seg.payload_bytes, "header_bytes": seg.header_bytes}

        # index, cold: a fresh reader fetches header + segment, then decodes
        t0 = time.perf_counter()
        with EpisodeReader(index, url, storage_options=options) as reader:
            first = reader.decode(key, ep, [0]).data
        row["index_first_s"] = time.perf_counter() - t0
        row["index_first_bytes"], row["index_requests"] = counter.reset()
        t0 = time.perf_counter()
        with EpisodeReader(index, url, storage_options=options) as reader:
            everything = reader.decode(key, ep).data
        row["index_all_s"] = time.perf_counter() - t0
        row["index_all_bytes"], _ = counter.reset()
        row["index_equals_exact"] = bool(torch.equal(everything, exact.get_frames_played_at(frames.pts_s.tolist()).data))
        # index, warm header (a training loader keeps one reader)
        t0 = time.perf_counter()
        warm.decode(key, ep, [0])
        row["index_warm_first_s"] = time.perf_counter() - t0
        counter.reset()

        timestamps = (seg.from_timestamp + np.arange(len(frames)) / 30).tolist()
        for name, open_kwargs in (("lerobot", {}), ("lerobot_1mib", {"cache_type": "readahead", "block_size": 1 << 20})):
            fs.invalidate_cache()
            t0 = time.perf_counter()
            with fs.open(f"bench/ds/{file_rel}", "rb", **open_kwargs) as f:
                decoder = VideoDecoder(f, seek_mode="approximate")
                frame = decoder.get_frames_played_at(timestamps[:1]).data
                row[f"{name}_first_s"] = time.perf_counter() - t0
                row[f"{name}_first_bytes"], _ = counter.reset()
                rest = decoder.get_frames_played_at(timestamps).data
                row[f"{name}_all_s"] = time.perf_counter() - t0
                more, _ = counter.reset()
                row[f"{name}_all_bytes"] = row[f"{name}_first_bytes"] + more
            row[f"{name}_same_frames"] = bool(torch.equal(frame, first)) and bool(torch.equal(rest, everything))
        rows.append(row)
        print(
            f"ep {ep:4d} ({row['n_frames']} fr): min {row['min_bytes'] / 1e6:5.2f} MB | index "
            f"{row['index_first_bytes'] / 1e6:5.2f} MB, 1st frame {row['index_first_s'] * 1000:4.0f} ms "
            f"(warm {row['index_warm_first_s'] * 1000:4.0f}), all {row['index_all_s'] * 1000:4.0f} ms | lerobot "
            f"{row['lerobot_first_bytes'] / 1e6:6.2f}/{row['lerobot_all_bytes'] / 1e6:6.2f} MB "
            f"{row['lerobot_first_s'] * 1000:4.0f}/{row['lerobot_all_s'] * 1000:4.0f} ms | 1MiB "
            f"{row['lerobot_1mib_first_bytes'] / 1e6:5.2f}/{row['lerobot_1mib_all_bytes'] / 1e6:5.2f} MB "
            f"{row['lerobot_1mib_first_s'] * 1000:4.0f}/{row['lerobot_1mib_all_s'] * 1000:4.0f} ms"
        )
    warm.close()
    server.stop()

    def total(k: str) -> float:
        return float(sum(r[k] for r in rows))

    def median(k: str) -> float:
        return float(statistics.median(r[k] for r in rows))

    summary = {
        "file_mb": round(file_bytes / 1e6, 1),
        "episodes_in_file": meta["episodes"],
        "episodes_measured": len(rows),
        "index_bytes_ratio_vs_min": round(total("index_all_bytes") / total("min_bytes"), 4),
        "bytes_ratio_index_vs_lerobot_all_frames": round(total("index_all_bytes") / total("lerobot_all_bytes"), 4),
        "bytes_ratio_index_vs_lerobot_1mib_all_frames": round(
            total("index_all_bytes") / total("lerobot_1mib_all_bytes"), 4
        ),
        "bytes_ratio_index_vs_lerobot_first_frame": round(total("index_first_bytes") / total("lerobot_first_bytes"), 4),
        "bytes_ratio_index_vs_lerobot_1mib_first_frame": round(
            total("index_first_bytes") / total("lerobot_1mib_first_bytes"), 4
        ),
        "time_ratio_index_vs_lerobot_first_frame": round(total("index_first_s") / total("lerobot_first_s"), 4),
        "time_ratio_index_vs_lerobot_1mib_first_frame": round(
            total("index_first_s") / total("lerobot_1mib_first_s"), 4
        ),
        "time_ratio_index_warm_vs_lerobot_first_frame": round(
            total("index_warm_first_s") / total("lerobot_first_s"), 4
        ),
        "time_ratio_index_vs_lerobot_all_frames": round(total("index_all_s") / total("lerobot_all_s"), 4),
        "time_ratio_index_vs_lerobot_1mib_all_frames": round(total("index_all_s") / total("lerobot_1mib_all_s"), 4),
        "index_first_frame_ms_median": round(median("index_first_s") * 1000, 1),
        "index_warm_first_frame_ms_median": round(median("index_warm_first_s") * 1000, 1),
        "lerobot_first_frame_ms_median": round(median("lerobot_first_s") * 1000, 1),
        "lerobot_1mib_first_frame_ms_median": round(median("lerobot_1mib_first_s") * 1000, 1),
        "index_frames_equal_exact_decode": sum(r["index_equals_exact"] for r in rows),
        "lerobot_frames_equal_index": sum(r["lerobot_same_frames"] for r in rows),
        "index_requests_per_episode": total("index_requests") / len(rows),
        "index_load_bytes": index_load_bytes,
        "goal_bytes_le_1_2x_min": total("index_all_bytes") <= 1.2 * total("min_bytes"),
    }
    print(
        f"\nwhole episodes: index fetched {total('index_all_bytes') / 1e6:.2f} MB for {len(rows)} episodes "
        f"(minimum header+segment {total('min_bytes') / 1e6:.2f} MB, ratio {summary['index_bytes_ratio_vs_min']}); "
        f"LeRobot's way {total('lerobot_all_bytes') / 1e6:.1f} MB with s3fs defaults (50 MiB readahead), "
        f"{total('lerobot_1mib_all_bytes') / 1e6:.1f} MB with 1 MiB readahead"
    )
    print(
        f"first frame, median: index {summary['index_first_frame_ms_median']} ms cold / "
        f"{summary['index_warm_first_frame_ms_median']} ms with the header cached; LeRobot "
        f"{summary['lerobot_first_frame_ms_median']} ms, 1 MiB readahead {summary['lerobot_1mib_first_frame_ms_median']} ms. "
        f"Index frames equal a full exact-mode decode in {summary['index_frames_equal_exact_decode']}/{len(rows)} "
        f"episodes; LeRobot's (approximate mode) equal them in {summary['lerobot_frames_equal_index']}/{len(rows)}"
    )
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    np.set_printoptions(suppress=True)
    main()
