"""Remote vs local data home: the demo graph on a local home, then on an S3 home (moto on loopback).

The graph (in process, an ephemeral instance each, the same settings on both homes): M PushT sim
sessions (raw_episodes -> session_dataset, with session_dataset_valid), one run each; then one run of
lerobot_dataset -> dataset_stats -> byte_index -> the SQL models -> curated_dataset -> dataset_splits
with every check of those assets (training is left out).

Reported:
- wall time of each home and the ratio remote / local: `--remote-rounds` rounds (default 2) of one
  run on each home, the order alternating (local first, then remote first), each run on a fresh home;
  the best round of each home counts (every module is imported before the first clock starts);
  `remote_extra_step_s`: the steps whose time grew most on the remote home (from the event log);
- bytes, from one more remote run, the *metered* one (its S3 endpoint is a byte-counting TCP proxy,
  its own process, in front of moto; the proxy slows each request down, so this run is not one of the
  timed ones):
  - `transfer`: `lerobot_assets.home.remote.PROCESS_TRANSFER`, the files steps pulled and published:
    uploaded and downloaded cross the client's link; server_copied (unchanged files of a new version
    copied remote-to-remote) does not, and is reported apart. It does not count pointer writes, the
    pointer and metadata reads outside a workspace pull (e.g. the SQL models' discovery of the home),
    listings, HEADs or HTTP headers;
  - `link`: what the client's link carried each way, per phase, all of that included (the proxy's
    counts); `s3_requests`: the requests moto served per phase, by kind (its access log);
  - the baseline, "a perfect implementation: each produced file written once". The bucket has S3
    versioning on, so every object ever written to it is still listed afterwards, deleted or
    superseded ones included (as noncurrent versions). A file's *home path* is its key with the
    `v-<n>/` version directory removed (`datasets/lerobot_dataset/v-000002/meta/info.json` ->
    `datasets/lerobot_dataset/meta/info.json`); the baseline is the sum of the sizes of the distinct
    (home path, content) pairs over every object version written, content told apart by ETag (MD5 of
    the object: the files here are under the multipart threshold). So a file carried unchanged into
    the next version of a dataset counts once, a file a step changed counts once per content it had,
    a pointer (`current.json`) or plain object (validation records, previews) once per content.
  - bytes_ratio = (uploaded + downloaded) / baseline, goal <= 1.2; link_ratio = (bytes to the server
    + bytes to the client) / baseline;
  - also `listing_bytes`: the sum of the sizes of the objects on the bucket after the run (every kept
    version's files, superseded versions still kept included, each once, plus the plain objects), the
    looser baseline of "list the bucket afterwards": it counts files a new version carried over from
    the previous one again, and misses versions already deleted (`bytes_ratio_vs_listing`).

moto runs as its own process (`moto_server`), not a thread of this one, so serving requests does not
take this process's GIL; it still shares the machine's cores with the pipeline, and it closes the
connection after each response (HTTP/1.0), so every request opens one.
The last line printed is a JSON object.

    .venv/bin/python benchmarks/bench_remote_home.py [--remote-sessions 3] [--remote-episodes 2] [--remote-max-steps 40]
        [--remote-image-size 64] [--remote-rounds 2]
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SVT_LOG", "1")

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))

BUCKET = "lerobot"
PREFIX = "home"
VERSION_DIR = re.compile(r"/v-\d{6,}/")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def moto_server_process(tmp: Path) -> Iterator[tuple[str, str, Any]]:
    """`moto_server` on a free loopback port in its own process, BUCKET created with versioning on,
    and a byte-counting TCP proxy in front of it (`proxy_main`, a process too); yields (the proxy's
    endpoint URL, moto's, a function returning the proxy's counts so far), and sets dummy credentials
    and AWS_ENDPOINT_URL (moto's) for the block."""
    import boto3
    from distributed_support import free_port, stop_process, wait_for_port

    saved = {k: os.environ.get(k) for k in [*CREDENTIALS, "AWS_ENDPOINT_URL"]}
    port, proxy_port, control_port = free_port(), free_port(), free_port()
    log = open(tmp / "moto.log", "wb")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    proxy = subprocess.Popen(
        [sys.executable, "-c", f"import bench_remote_home as b; b.proxy_main({proxy_port}, {port}, {control_port})"],
        cwd=Path(__file__).parent,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def wire() -> dict[str, int]:
        import socket

        with socket.create_connection(("127.0.0.1", control_port), timeout=30) as conn:
            data = b"".join(iter(lambda: conn.recv(65536), b""))
        return json.loads(data)  # type: ignore[no-any-return]

    try:
        wait_for_port(port, 60, proc, "moto_server")  # type: ignore[arg-type]
        wait_for_port(proxy_port, 60, proxy, "proxy")  # type: ignore[arg-type]
        wait_for_port(control_port, 60, proxy, "proxy")  # type: ignore[arg-type]
        os.environ.update(CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint})
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield f"http://127.0.0.1:{proxy_port}", endpoint, wire
    finally:
        stop_process(proxy)  # type: ignore[arg-type]
        stop_process(proc)  # type: ignore[arg-type]
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def proxy_main(listen: int, target: int, control: int) -> None:
    """A TCP proxy 127.0.0.1:listen -> 127.0.0.1:target counting the bytes each way (HTTP headers,
    listings and every other request included: what the client's link carries); a connection to
    127.0.0.1:control gets the counts as JSON."""
    import asyncio

    counts = {"to_server": 0, "to_client": 0, "connections": 0}

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: str) -> None:
        try:
            while data := await reader.read(1 << 16):
                counts[key] += len(data)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        counts["connections"] += 1
        server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pipe(client_r, server_w, "to_server"), pipe(server_r, client_w, "to_client"))

    async def report(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(json.dumps(counts).encode())
        await writer.drain()
        writer.close()

    async def serve() -> None:
        proxy = await asyncio.start_server(handle, "127.0.0.1", listen)
        reporter = await asyncio.start_server(report, "127.0.0.1", control)
        async with proxy, reporter:
            await asyncio.gather(proxy.serve_forever(), reporter.serve_forever())

    asyncio.run(serve())


def graph_defs() -> tuple[list[Any], list[Any]]:
    """(session run's defs, downstream run's defs)."""
    from lerobot_assets.defs.curation.assets import curation_assets
    from lerobot_assets.defs.curation.checks import curation_checks
    from lerobot_assets.defs.datasets.assets import byte_index, dataset_stats, lerobot_dataset
    from lerobot_assets.defs.datasets.checks import dataset_checks
    from lerobot_assets.defs.ingest.assets import raw_episodes, session_build
    from lerobot_assets.defs.ingest.checks import session_checks
    from lerobot_assets.defs.sql.assets import build_sql_defs

    sql_assets, sql_checks = build_sql_defs()
    sessions = [raw_episodes, session_build, *session_checks]
    downstream = [lerobot_dataset, dataset_stats, byte_index, *sql_assets, *curation_assets, *dataset_checks, *sql_checks, *curation_checks]
    return sessions, downstream


def run_graph(home: Any, keys: list[str], sim: dict[str, Any], mark: Any = None) -> dict[str, Any]:
    """The demo graph on `home` (a DataHome); returns wall times and what each run materialized.
    `mark(phase)` is called when the sessions phase ends and when the downstream run ends."""
    import dagster as dg

    from lerobot_assets.defs.resources import SimSourceResource, SqlVarsResource, VideoEncoderResource

    resources = {"home": home, "encoder": VideoEncoderResource(), "sim": SimSourceResource(**sim), "sql": SqlVarsResource()}
    sessions, downstream = graph_defs()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    out: dict[str, Any] = {}
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("sessions", keys)
        t = time.perf_counter()
        results = [
            dg.materialize(sessions, partition_key=key, instance=instance, resources=resources, run_config=quiet, raise_on_error=False)
            for key in keys
        ]
        sessions_s = time.perf_counter() - t
        if mark is not None:
            mark("sessions")
        t = time.perf_counter()
        results.append(dg.materialize(downstream, instance=instance, resources=resources, run_config=quiet, raise_on_error=False))
        downstream_s = time.perf_counter() - t
        if mark is not None:
            mark("downstream")
        for result in results:
            assert result.success, f"a run failed on {home.root}: {result.run_id}"
        steps: dict[str, float] = {}
        for result in results:
            add_step_times(steps, instance, result.run_id)
    out["sessions_s"], out["downstream_s"], out["wall_s"] = round(sessions_s, 2), round(downstream_s, 2), round(sessions_s + downstream_s, 2)
    out["materialized"] = sorted({e.asset_key.to_user_string() for r in results for e in r.get_asset_materialization_events()})
    out["failed_checks"] = sorted({e.check_name for r in results for e in r.get_asset_check_evaluations() if not e.passed})
    out["step_s"] = {k: round(v, 2) for k, v in steps.items()}
    return out


def add_step_times(steps: dict[str, float], instance: Any, run_id: str) -> None:
    """Each step's own time (STEP_START to STEP_SUCCESS) in the run, added by step name (the session
    runs' steps sum over the sessions)."""
    import dagster as dg

    start: dict[str, float] = {}
    for e in instance.all_logs(run_id):
        event = e.dagster_event
        if event is None or not e.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            start[e.step_key] = e.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS and e.step_key in start:
            name = e.step_key.split("[")[0]
            steps[name] = steps.get(name, 0.0) + e.timestamp - start[e.step_key]


def bucket_bytes(endpoint: str, prefix: str) -> dict[str, int]:
    """What the bucket holds after the run: every object version written (versioning is on), the
    baseline over them (see the module docstring) and the plain listing of current objects."""
    import boto3
    import s3fs

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    versions: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        versions += page.get("Versions", [])
    distinct: dict[tuple[str, str], int] = {}
    for v in versions:
        distinct[(VERSION_DIR.sub("/", "/" + v["Key"]), v["ETag"])] = int(v["Size"])
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, client_kwargs={"region_name": "us-east-1"}, skip_instance_cache=True)
    listing = fs.find(f"{BUCKET}/{prefix}", detail=True)
    return {
        "baseline_bytes": sum(distinct.values()),
        "baseline_files": len(distinct),
        "object_versions_written": len(versions),
        "object_versions_bytes": sum(int(v["Size"]) for v in versions),
        "listing_bytes": sum(int(f["size"]) for f in listing.values() if f.get("type") == "file"),
        "listing_files": sum(1 for f in listing.values() if f.get("type") == "file"),
    }


def s3_requests(log: Path, offset: int) -> dict[str, int]:
    """Requests moto served (its access log from byte `offset` on), by kind: GET of an object, LIST (a
    GET of the bucket: a listing), HEAD, PUT (uploads and server-side copies), DELETE, POST."""
    out: dict[str, int] = {}
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    for line in text.splitlines():
        m = re.search(r'"(GET|PUT|HEAD|DELETE|POST) (\S+) HTTP', line)
        if m is None or "/moto-api/" in m.group(2):
            continue
        method, target = m.groups()
        path, _, query = target.partition("?")
        kind = "LIST" if method == "GET" and path.strip("/") == BUCKET else method
        out[kind] = out.get(kind, 0) + 1
    out["total"] = sum(out.values())
    return out


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def bench_remote_home(tmp: Path, sessions: int, episodes: int, sim: dict[str, Any], rounds: int = 2) -> dict[str, Any]:
    """Timing: `rounds` rounds of (local run, remote run), the order alternating (round 0 local first,
    round 1 remote first, ...) so that drift in the machine's load hits both homes alike, the remote
    runs straight to moto; the best round of each home counts. Bytes: one more remote run, through the
    byte-counting proxy (which slows requests down, so it is not timed with the others): PROCESS_TRANSFER,
    the link's bytes and requests per phase, and the bucket afterwards. Each run on a fresh home
    (local folder, or bucket prefix and local cache)."""
    from lerobot_assets.defs.definitions import defs  # noqa: F401 (imports every module before the clocks run)
    from lerobot_assets.defs.resources import DataHome
    from lerobot_assets.home import sim_session_keys
    from lerobot_assets.home.remote import PROCESS_TRANSFER

    tmp.mkdir(parents=True, exist_ok=True)
    keys = sim_session_keys(sessions, episodes)
    report: dict[str, Any] = {"sessions": sessions, "episodes": episodes, **sim, "rounds": rounds}
    local_runs: list[dict[str, Any]] = []
    remote_runs: list[dict[str, Any]] = []
    with moto_server_process(tmp) as (proxy_endpoint, moto_endpoint, wire):
        log = tmp / "moto.log"

        def local_run(r: int) -> None:
            home = tmp / f"local-home{r}"
            local_runs.append(run_graph(DataHome(root=str(home)), keys, sim) | {"home_bytes": tree_bytes(home)})
            print(f"round {r} local home: wall {local_runs[-1]['wall_s']} s", flush=True)

        def remote_run(r: int) -> None:
            os.environ["AWS_ENDPOINT_URL"] = moto_endpoint
            home = DataHome(root=f"s3://{BUCKET}/{PREFIX}{r}", local_dir=str(tmp / f"remote-local{r}"))
            remote_runs.append(run_graph(home, keys, sim))
            print(f"round {r} remote home: wall {remote_runs[-1]['wall_s']} s", flush=True)

        for r in range(rounds):
            for run_one in (local_run, remote_run) if r % 2 == 0 else (remote_run, local_run):
                run_one(r)

        # The metered run.
        os.environ["AWS_ENDPOINT_URL"] = proxy_endpoint
        before, offsets, wire_before = PROCESS_TRANSFER.as_dict(), [log.stat().st_size], [wire()]
        requests: dict[str, dict[str, int]] = {}
        link: dict[str, dict[str, int]] = {}

        def mark(phase: str) -> None:  # the requests and link bytes of each phase
            link[phase] = {k: v - wire_before[-1][k] for k, v in wire().items()}
            wire_before.append(wire())
            time.sleep(0.2)  # moto writes its access log line after the response
            requests[phase] = s3_requests(log, offsets[-1])
            offsets.append(log.stat().st_size)

        prefix = f"{PREFIX}-metered"
        metered = run_graph(DataHome(root=f"s3://{BUCKET}/{prefix}", local_dir=str(tmp / "remote-local-metered")), keys, sim, mark)
        moved = {k: v - before[k] for k, v in PROCESS_TRANSFER.as_dict().items()}
        bucket = bucket_bytes(moto_endpoint, prefix)
        print(f"metered remote run: wall {metered['wall_s']} s (through the proxy), transfer {moved}", flush=True)
    for run in [*local_runs, *remote_runs, metered]:
        assert run["materialized"] == local_runs[0]["materialized"], (run["materialized"], local_runs[0]["materialized"])
    local = min(local_runs, key=lambda run: run["wall_s"])
    remote = min(remote_runs, key=lambda run: run["wall_s"])
    report["local"] = {k: v for k, v in local.items() if k not in ("step_s", "materialized")}
    report["materialized"] = local["materialized"]
    report["remote"] = {k: v for k, v in remote.items() if k not in ("step_s", "materialized")}
    report["local_wall_s_rounds"] = [run["wall_s"] for run in local_runs]
    report["remote_wall_s_rounds"] = [run["wall_s"] for run in remote_runs]
    report["metered_remote_wall_s"] = metered["wall_s"]
    report["wall_ratio_remote_local"] = round(remote["wall_s"] / local["wall_s"], 2)
    extra = {k: round(v - local["step_s"].get(k, 0.0), 2) for k, v in remote["step_s"].items()}
    report["remote_extra_step_s"] = dict(sorted(extra.items(), key=lambda kv: -kv[1])[:8])  # where the gap is
    report["remote_extra_step_s_total"] = round(sum(extra.values()), 2)
    report["transfer"] = moved
    report["s3_requests"] = requests
    report["bucket"] = bucket
    baseline = bucket["baseline_bytes"]
    report["bytes_ratio"] = round((moved["uploaded"] + moved["downloaded"]) / baseline, 3)
    report["uploaded_ratio"] = round(moved["uploaded"] / baseline, 3)
    report["downloaded_ratio"] = round(moved["downloaded"] / baseline, 3)
    report["server_copied_ratio"] = round(moved["server_copied"] / baseline, 3)
    report["bytes_ratio_vs_listing"] = round((moved["uploaded"] + moved["downloaded"]) / bucket["listing_bytes"], 3)
    total = {k: sum(phase[k] for phase in link.values()) for k in ("to_server", "to_client", "connections")}
    report["link"] = link | {"total": total}
    report["link_ratio"] = round((total["to_server"] + total["to_client"]) / baseline, 3)
    report["link_up_ratio"] = round(total["to_server"] / baseline, 3)
    report["link_down_ratio"] = round(total["to_client"] / baseline, 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-remote-home-"))
    try:
        report = bench_remote_home(tmp, args.remote_sessions, args.remote_episodes, sim_settings(args), args.remote_rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of this benchmark (bench_scale.py offers them too)."""
    parser.add_argument("--remote-sessions", type=int, default=3, help="PushT sessions of the demo graph")
    parser.add_argument("--remote-episodes", type=int, default=2, help="episodes per session")
    parser.add_argument("--remote-max-steps", type=int, default=40)
    parser.add_argument("--remote-image-size", type=int, default=64)
    parser.add_argument("--remote-rounds", type=int, default=2, help="rounds of (local run, remote run), the order alternating")


def sim_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_steps": args.remote_max_steps, "image_size": args.remote_image_size, "top_camera": False}


if __name__ == "__main__":
    main()
