"""Data loading for training: map-style (shuffled DataLoader) vs StreamingDataset, local vs S3.

The benchmark makes its own PushT datasets (two cameras: the 96x96 `observation.image` and the
480x640 `observation.images.top`, AV1 as recorded): `--base-episodes` simulated episodes are
recorded once, then merged (stream copy) into datasets of `--episodes` episodes and of each
`--rss-episodes` size, each with its byte index. Everything is kept under
benchmarks/out/dataloading/ for later runs (`--rebuild` starts over).

Each leg runs in a fresh process (its peak RSS is that process tree's, DataLoader workers
included), reads `--warmup` + `--batches` batches of `--batch-size` and reports:
samples/s and decoded frames/s (steady batches), peak RSS, p50/p95/p99 batch latency, fetch vs
decode seconds (streaming counters), shuffle randomness (distinct episodes per batch / batch size).

Streaming legs use `--pool` episodes (default 64, the pool size of the randomness goal). A pool
larger than what a leg reads makes almost every sample the first of a new episode: over S3 that
measures the pool filling (one segment fetch per sample), not the steady state, in which one
episode enters per episode length of samples.

Throughput legs (run `--repeats` times in alternating order, the best run of each kept: the
machine is shared, and load only ever slows a leg down): map-style vs streaming with 0 and 2
workers (local); streaming over S3 (a moto server on
loopback) through the byte index with 0 and 2 workers; world size 2 (two processes, torch.distributed
gloo on CPU, one worker each); streaming RSS at each --rss-episodes size; one full epoch over S3 on
`--s3-epoch-episodes` episodes for the bytes-fetched ratio (bytes fetched / bytes of the emitted
episodes' segments + file headers); randomness of the streaming order for several pool sizes
over a whole epoch (computed from the order itself, no decoding).

    .venv/bin/python benchmarks/bench_dataloading.py [--episodes 500] [--rss-episodes 200,2000]
        [--batches 16] [--batch-size 32] [--pool 64] [--repeats 2] [--skip-s3] [--skip-dist] [--rebuild]

Every figure is printed with the baseline it is a ratio of; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("SVT_LOG", "1")  # silence SVT-AV1's banner

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "out" / "dataloading"
BUCKET = "bench-dataloading"
CAMERAS = 2


# ---------------------------------------------------------------------------------- datasets
def build_datasets(args: argparse.Namespace) -> dict[int, Path]:
    """{episodes: root} for the main size and every RSS size (built once, then reused)."""
    from lerobot_assets.byteindex import build_byte_index
    from lerobot_assets.sources.pusht.config import PushTSourceConfig
    from lerobot_assets.sources.pusht.record import record_pusht
    from lerobot_assets.tools.merge import merge_to_new

    if args.rebuild and OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True, exist_ok=True)
    base = OUT / f"base_{args.base_episodes}x{args.max_steps}"
    if not (base / "meta" / "info.json").exists():
        t0 = time.perf_counter()
        record_pusht(base, PushTSourceConfig(episodes=args.base_episodes, max_steps=args.max_steps))
        print(f"recorded {args.base_episodes} PushT episodes in {time.perf_counter() - t0:.0f}s", flush=True)
    sizes = sorted({args.episodes, *args.rss_episodes})
    roots: dict[int, Path] = {}
    for n in sizes:
        root = OUT / f"pusht_{n}_from_{base.name}"
        if not (root / "meta" / "byte_index").exists():
            if root.exists():
                shutil.rmtree(root)
            t0 = time.perf_counter()
            # From the largest smaller dataset built already, when it divides n (fewer, bigger copies).
            smaller = [m for m in roots if n % m == 0]
            source, copies = (roots[max(smaller)], n // max(smaller)) if smaller else (base, n // args.base_episodes)
            if copies * (args.base_episodes if source == base else max(smaller)) != n:
                raise SystemExit(f"--episodes/--rss-episodes must be multiples of --base-episodes ({n})")
            merge_to_new([source] * copies, root)
            build_byte_index(root)
            print(f"built {root.name} ({n} episodes) in {time.perf_counter() - t0:.0f}s", flush=True)
        roots[n] = root
    return roots


# ---------------------------------------------------------------------------------- RSS
def tree_rss_bytes() -> int:
    """RSS of this process and all its descendants (DataLoader workers)."""
    page = os.sysconf("SC_PAGE_SIZE")
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total


class PeakRSS:
    def __init__(self, interval_s: float = 0.25) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes())
            self._stop.wait(interval_s)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_bytes())


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[round(p / 100 * (len(ordered) - 1))] if ordered else float("nan")


# ---------------------------------------------------------------------------------- one leg
def run_leg(cfg: dict[str, Any]) -> dict[str, Any]:
    """One measurement in this process; returns its figures."""
    import torch
    from torch.utils.data import DataLoader

    from lerobot_assets.loading import LeRobotV3Dataset, StreamingDataset, streaming_collate

    torch.set_num_threads(1)
    if cfg.get("distributed"):
        import torch.distributed as dist

        dist.init_process_group("gloo")
    workers, bs = cfg["workers"], cfg["batch_size"]
    options = cfg.get("storage_options")
    with PeakRSS() as rss:
        t_open = time.perf_counter()
        if cfg["kind"] == "map":
            ds: Any = LeRobotV3Dataset(cfg["root"], storage_options=options)
            loader = DataLoader(ds, batch_size=bs, shuffle=True, num_workers=workers,
                                generator=torch.Generator().manual_seed(0), persistent_workers=False)
        else:
            ds = StreamingDataset(cfg["root"], episode_pool_size=cfg["pool"], seed=0, storage_options=options,
                                  episodes=cfg.get("episodes"), prefetch_bytes=cfg.get("prefetch_bytes", 128 << 20),
                                  episode_cache_bytes=cfg.get("cache_bytes", 256 << 20))
            loader = DataLoader(ds, batch_size=bs, num_workers=workers, collate_fn=streaming_collate)
        open_s = time.perf_counter() - t_open
        latencies, distinct, emitted = [], [], set()
        samples = 0
        t_first = None
        t0 = t_prev = time.perf_counter()
        steady_start, steady_samples = None, 0
        limit = None if cfg.get("full_epoch") else cfg["warmup"] + cfg["batches"]
        for b, batch in enumerate(loader):
            now = time.perf_counter()
            if t_first is None:
                t_first = now - t0
            n = len(batch["episode_index"])
            eps = batch["episode_index"].tolist()
            emitted.update(eps)
            distinct.append(len(set(eps)) / n)
            samples += n
            if b >= cfg["warmup"]:
                if steady_start is None:
                    steady_start = t_prev
                latencies.append(now - t_prev)
                steady_samples += n
            t_prev = now
            if limit is not None and b + 1 >= limit:
                break
        steady_s = (t_prev - steady_start) if steady_start is not None else float("nan")
        stats = ds.stats() if cfg["kind"] == "stream" else {}
        del loader
    out = {
        "leg": cfg["name"], "kind": cfg["kind"], "workers": workers, "batch_size": bs,
        "rank": getattr(ds, "rank", 0), "world_size": getattr(ds, "world_size", 1),
        "samples": samples, "samples_per_s": steady_samples / steady_s if steady_s > 0 else float("nan"),
        "decoded_frames_per_s": CAMERAS * steady_samples / steady_s if steady_s > 0 else float("nan"),
        "first_batch_s": t_first, "open_s": open_s, "peak_rss_mb": rss.peak / 2**20,
        "p50_batch_ms": 1000 * pct(latencies, 50), "p95_batch_ms": 1000 * pct(latencies, 95),
        "p99_batch_ms": 1000 * pct(latencies, 99), "randomness": float(np.mean(distinct)) if distinct else None,
        "stats": stats, "emitted_episodes": sorted(emitted),
    }
    if cfg.get("distributed"):
        import torch.distributed as dist

        everyone: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, out)
        dist.destroy_process_group()
        if dist_rank() != 0:
            return {}
        return {"ranks": everyone}
    return out


def dist_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def spawn_leg(cfg: dict[str, Any], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--leg", json.dumps(cfg)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


def leg(cfg: dict[str, Any]) -> dict[str, Any]:
    proc = spawn_leg(cfg)
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"leg {cfg['name']} failed (exit {proc.returncode})")
    result = json.loads(stdout.strip().splitlines()[-1])
    show(result)
    return result


def show(r: dict[str, Any]) -> None:
    s = r.get("stats") or {}
    fetch = f"fetch {s.get('fetch_s', 0):.1f}s decode {s.get('decode_s', 0):.1f}s" if s else "fetch/decode n/a"
    print(f"  {r['leg']:<22} {r['samples_per_s']:7.1f} samples/s {r['decoded_frames_per_s']:7.1f} frames/s  "
          f"rss {r['peak_rss_mb']:6.0f} MB  p50/p95/p99 {r['p50_batch_ms']:.0f}/{r['p95_batch_ms']:.0f}/"
          f"{r['p99_batch_ms']:.0f} ms  randomness {r['randomness']:.2f}  {fetch}  first batch {r['first_batch_s']:.1f}s",
          flush=True)


# ---------------------------------------------------------------------------------- S3
def start_s3(roots: list[Path]) -> tuple[Any, dict[str, Any]]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                client.upload_file(str(path), BUCKET, f"{root.name}/{path.relative_to(root).as_posix()}")
    options = {"key": "testing", "secret": "testing",
               "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    return server, options


def segment_bytes(root: Path, episodes: list[int]) -> tuple[int, int]:
    """(segment bytes of these episodes, header bytes of the files they touch), every camera."""
    from lerobot_assets.byteindex import ByteIndex

    index = ByteIndex.load(root)
    segments, headers = 0, {}
    for key in index.video_keys:
        for e in episodes:
            seg = index.segment(key, e)
            segments += seg.payload_bytes
            headers[seg.path] = seg.header_bytes
    return segments, sum(headers.values())


def order_randomness(root: Path, pools: list[int], batch_size: int, workers: int) -> dict[int, float]:
    """Distinct episodes per batch / batch size over a whole epoch of the streaming order."""
    from lerobot_assets.loading import StreamingDataset
    from lerobot_assets.loading.streaming.order import consumer_stream

    out = {}
    ds = StreamingDataset(root)
    for pool in pools:
        scores = []
        for worker, episodes in enumerate(ds.assignment(workers)):
            eps = [ev[1].position for ev in consumer_stream(episodes, pool_size=pool, shuffle=True, seed=0, epoch=0,
                                                            rank=0, worker=worker) if ev[0] == "sample"]
            for i in range(0, len(eps) - batch_size + 1, batch_size):
                scores.append(len(set(eps[i:i + batch_size])) / batch_size)
        out[pool] = float(np.mean(scores))
    return out


# ---------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--rss-episodes", default="200,2000", help="comma-separated dataset sizes for the RSS figure")
    parser.add_argument("--base-episodes", type=int, default=10, help="simulated episodes, copied to make the sizes")
    parser.add_argument("--max-steps", type=int, default=50, help="steps per simulated episode")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=16, help="measured batches per leg (after --warmup)")
    parser.add_argument("--warmup", type=int, default=4, help="batches before measuring (the pool fills)")
    parser.add_argument("--pool", type=int, default=64, help="episode_pool_size of the streaming legs")
    parser.add_argument("--s3-epoch-episodes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each throughput leg (best kept)")
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-dist", action="store_true")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--leg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.leg:
        result = run_leg(json.loads(args.leg))
        if result:
            print(json.dumps(result))
        return
    args.rss_episodes = [int(x) for x in args.rss_episodes.split(",") if x]
    t_start = time.perf_counter()
    roots = build_datasets(args)
    root = roots[args.episodes]
    common = {"batch_size": args.batch_size, "batches": args.batches, "warmup": args.warmup, "pool": args.pool}
    print(f"dataset: {root.name} ({args.episodes} episodes, {CAMERAS} cameras); batch {args.batch_size}, "
          f"{args.warmup} warm-up + {args.batches} measured batches per leg", flush=True)
    results: dict[str, Any] = {}
    server, options, url = None, None, ""
    if not args.skip_s3:
        server, options = start_s3([root])
        url = f"s3://{BUCKET}/{root.name}"
    # The throughput legs, run --repeats times in alternating order; each keeps its best run
    # (load from other processes only ever slows a leg down).
    legs: dict[str, dict[str, Any]] = {}
    for workers in (0, 2):
        legs[f"map_w{workers}"] = {**common, "name": f"map w{workers}", "kind": "map", "root": str(root),
                                   "workers": workers}
        legs[f"stream_w{workers}"] = {**common, "name": f"stream local w{workers}", "kind": "stream",
                                      "root": str(root), "workers": workers}
        if server is not None:
            legs[f"s3_w{workers}"] = {**common, "name": f"stream s3 w{workers}", "kind": "stream", "root": url,
                                      "workers": workers, "storage_options": options}
    names = list(legs)
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            got = leg(legs[name])
            if name not in results or got["samples_per_s"] > results[name]["samples_per_s"]:
                results[name] = got
    if server is not None:
        subset = list(range(args.s3_epoch_episodes))
        epoch = leg({**common, "name": f"stream s3 epoch({len(subset)} eps)", "kind": "stream", "root": url,
                     "workers": 0, "storage_options": options, "episodes": subset, "full_epoch": True})
        segs, headers = segment_bytes(root, epoch["emitted_episodes"])
        fetched = epoch["stats"]["video_bytes_fetched"]
        results["s3_epoch"] = {**epoch, "segment_bytes": segs, "header_bytes": headers,
                               "bytes_ratio": fetched / (segs + headers)}
    if not args.skip_dist:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cfg = {**common, "name": "stream local ws2", "kind": "stream", "root": str(root), "workers": 1,
               "distributed": True}
        procs = [spawn_leg(cfg, {"RANK": str(r), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                                 "MASTER_PORT": str(port)}) for r in range(2)]
        outs = [p.communicate()[0] for p in procs]
        if any(p.returncode for p in procs):
            raise SystemExit("world-size-2 leg failed")
        ranks = json.loads(outs[0].strip().splitlines()[-1])["ranks"]
        for r in ranks:
            r["leg"] = f"ws2 rank {r['rank']}"
            show(r)
        results["ws2"] = {"samples_per_s": sum(r["samples_per_s"] for r in ranks),
                          "peak_rss_mb": sum(r["peak_rss_mb"] for r in ranks), "ranks": ranks}
    for n in args.rss_episodes:
        results[f"rss_{n}"] = leg({**common, "name": f"stream rss {n} eps", "kind": "stream", "root": str(roots[n]),
                                   "workers": 0})
    randomness = {w: order_randomness(root, [16, 64, 256, 1024], args.batch_size, w) for w in (1, 2)}
    if server is not None:
        server.stop()

    # ------------------------------------------------------------------ figures and ratios
    def ratio(a: str, b: str) -> float:
        return results[a]["samples_per_s"] / results[b]["samples_per_s"]

    figures: dict[str, Any] = {"episodes": args.episodes, "batch_size": args.batch_size, "pool": args.pool}
    print("\nfigures (goal in brackets):")
    for w in (0, 2):
        figures[f"stream_vs_map_w{w}"] = ratio(f"stream_w{w}", f"map_w{w}")
        print(f"  streaming local / map-style, {w} workers: {figures[f'stream_vs_map_w{w}']:.2f} "
              f"({results[f'stream_w{w}']['samples_per_s']:.1f} / {results[f'map_w{w}']['samples_per_s']:.1f} "
              "samples/s) [>= 0.90]")
    if "s3_w0" in results:
        for w in (0, 2):
            figures[f"s3_vs_local_w{w}"] = ratio(f"s3_w{w}", f"stream_w{w}")
            print(f"  streaming S3 (byte index) / streaming local, {w} workers: {figures[f's3_vs_local_w{w}']:.2f} "
                  f"({results[f's3_w{w}']['samples_per_s']:.1f} / {results[f'stream_w{w}']['samples_per_s']:.1f}) "
                  "[>= 0.70]")
        e = results["s3_epoch"]
        figures["s3_bytes_ratio"] = e["bytes_ratio"]
        print(f"  S3 video bytes fetched / (emitted episodes' segments + headers), one epoch of "
              f"{len(e['emitted_episodes'])} episodes: {e['bytes_ratio']:.3f} ({e['stats']['video_bytes_fetched']} / "
              f"{e['segment_bytes']} + {e['header_bytes']}) [<= 1.10]")
        for w in (0, 2):
            s = results[f"s3_w{w}"]["stats"]
            figures[f"s3_fetch_s_w{w}"], figures[f"s3_decode_s_w{w}"] = s["fetch_s"], s["decode_s"]
            print(f"  S3 {w} workers: fetch {s['fetch_s']:.2f}s vs decode {s['decode_s']:.2f}s, "
                  f"{s['video_bytes_fetched'] / 2**20:.1f} MiB video + {s['data_bytes_fetched'] / 2**20:.2f} MiB data, "
                  f"{s['episodes_admitted']} episodes admitted, {s['retries']} retries")
    if "ws2" in results:
        figures["ws2_vs_ws1"] = results["ws2"]["samples_per_s"] / results["stream_w0"]["samples_per_s"]
        print(f"  world size 2 (gloo, 1 worker each) / world size 1 (0 workers): {figures['ws2_vs_ws1']:.2f} "
              f"({results['ws2']['samples_per_s']:.1f} / {results['stream_w0']['samples_per_s']:.1f} samples/s; "
              "2 cores shared by both ranks)")
    if len(args.rss_episodes) >= 2:
        lo, hi = min(args.rss_episodes), max(args.rss_episodes)
        figures["rss_ratio"] = results[f"rss_{hi}"]["peak_rss_mb"] / results[f"rss_{lo}"]["peak_rss_mb"]
        print(f"  peak RSS at {hi} / at {lo} episodes: {figures['rss_ratio']:.3f} "
              f"({results[f'rss_{hi}']['peak_rss_mb']:.0f} / {results[f'rss_{lo}']['peak_rss_mb']:.0f} MB) [<= 1.15]")
    for w, by_pool in randomness.items():
        for pool, value in by_pool.items():
            figures[f"randomness_pool{pool}_consumers{w}"] = value
        print(f"  randomness over a whole epoch, {w} consumer(s): "
              + ", ".join(f"pool {p}: {v:.2f}" for p, v in by_pool.items())
              + " (map-style shuffled: " + f"{results['map_w0']['randomness']:.2f}) [>= 0.80 with pool >= 64]")
    for name, r in results.items():
        if "peak_rss_mb" in r and name.startswith(("map", "stream", "s3_w")):
            figures[f"{name}_samples_per_s"] = r["samples_per_s"]
            figures[f"{name}_peak_rss_mb"] = r["peak_rss_mb"]
            figures[f"{name}_p50_p95_p99_ms"] = [r["p50_batch_ms"], r["p95_batch_ms"], r["p99_batch_ms"]]
            figures[f"{name}_randomness"] = r["randomness"]
    figures["total_s"] = time.perf_counter() - t_start
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
