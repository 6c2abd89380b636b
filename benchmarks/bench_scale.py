"""Scale of the Dagster side: many registered sessions, the session job on Celery workers, the UI's
asset page over many sessions, and a remote (S3) data home against a local one.

Four parts, each selectable (`--only PART ...`, `--skip PART ...`; default: all four):

1. `registry` (`--registry N`, default 1,000 sessions; 0 skips it), on a SQLite instance and on a
   PostgreSQL one in the same run, timing what the code location does with them:
   - register: N sim sessions as `register-sim` does (list the registered, check seed overlaps, add
     the partitions in one call);
   - sensor tick: `inbox_sensor` over an inbox of N complete sessions, first tick (all new; plus
     adding the partitions its result requests, as the daemon does) and a steady tick (nothing new,
     2N registered), the one that repeats every 15 s;
   - materializations: N `session_dataset` materialization events (what N session runs write at
     least), the per-event cost of the storage;
   - merge plan: what `lerobot_dataset` computes before merging (registered and materialized
     partitions from the instance, then `merge_plan` over the home: 2N registered, N built).
2. `throughput` (`--sessions M`, default 6; `--skip-throughput` = `--skip throughput`): the session job
   over M PushT sessions (sim -> raw episodes -> session dataset -> validation),
   - `in_process_sqlite` / `in_process_postgres`: one process runs them one after another
     (`session_job.execute_in_process`, as `lerobot-assets demo` does) on each storage;
   - `celery_2_workers`: `session_job_celery` on two Celery workers (concurrency 1 each, Redis
     broker, PostgreSQL instance), one `dagster job execute` per session, all launched at once.
   Reports sessions per minute (wall, first launch to last run done) and the overhead per step
   from the event log (see `summarize`).
3. `ui` (`--ui-sessions N`, default 1,000; `--ui-materialized`, default N/2; `--ui-repeats`, default 7):
   the asset page of `session_dataset` through the webserver's GraphQL endpoint, on SQLite and on
   PostgreSQL in the same run. N sessions registered, N/2 with a (runless) materialization; then
   `dagster-webserver -w workspace.yaml` (as tests/test_ui_browser.py starts it) on that instance and
   the page's main queries (`UI_QUERIES`: definition, live state with partition stats and latest
   materialization, partition health with every partition key, recent events), each timed alone:
   a cold first round, then the median of the repeats per query and of a whole round (the queries
   one after another). A PROXY for the page load: the browser sends these and about ten smaller ones,
   in two or three concurrent bursts, and then renders; `ping` (a `{ version }` request) is the bare
   round trip. When Chromium and playwright are installed (`make browser`), the page itself too:
   the time from navigation to its last GraphQL response, median of the repeats, for the Overview and
   Partitions tabs of session_dataset and, as the baseline, the Overview of lerobot_dataset (not
   partitioned). Ratios: PostgreSQL / SQLite per query and page, a round / ping, and the session_dataset
   page / the unpartitioned one.
4. `remote` (benchmarks/bench_remote_home.py, which also runs alone; `--remote-sessions 3`
   `--remote-episodes 2` `--remote-max-steps 40` `--remote-image-size 64` `--remote-rounds 2`): the demo graph (sessions
   -> lerobot_dataset -> dataset_stats -> byte_index -> SQL models -> curated_dataset ->
   dataset_splits, with their checks; no training) on a local home, then on an S3 home (moto on
   loopback). Wall time remote / local; bytes uploaded + downloaded / the bytes a perfect
   implementation writes (each produced file once; definition in that module), server-side copies
   apart; the S3 requests by kind.

Redis and PostgreSQL are started on loopback in temp directories (tests/distributed_support.py), only
for the parts that need them, and stopped at the end. The last line printed is a JSON object.

    .venv/bin/python benchmarks/bench_scale.py [--only registry throughput ui remote] [--skip PART ...]
        [--registry 1000] [--sessions 6] [--episodes 2] [--max-steps 100] [--top-camera]
        [--skip-throughput] [--ui-sessions 1000] [--ui-materialized 500] [--ui-repeats 7]
        [--remote-sessions 3] [--remote-episodes 2] [--remote-max-steps 40] [--remote-image-size 64]
        [--remote-rounds 2]
"""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SVT_LOG", "1")

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))

import dagster as dg  # noqa: E402
import yaml  # noqa: E402
from distributed_support import postgres_dagster_home, postgres_server, redis_server  # noqa: E402

TELEMETRY_OFF = "telemetry:\n  enabled: false\n"


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def create_database(postgres_url: str, name: str) -> str:
    import psycopg2

    conn = psycopg2.connect(postgres_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def instance_at(kind: str, root: Path, postgres_url: str | None) -> Iterator[tuple[dg.DagsterInstance, dict[str, str]]]:
    """A Dagster instance on SQLite (a plain DAGSTER_HOME) or on PostgreSQL (deploy/celery/dagster.yaml)."""
    if kind == "sqlite":
        root.mkdir(parents=True)
        (root / "dagster.yaml").write_text(TELEMETRY_OFF)
        env = {"DAGSTER_HOME": str(root)}
    else:
        assert postgres_url is not None
        env = postgres_dagster_home(root, postgres_url, REPO / "deploy" / "celery" / "dagster.yaml")
    os.environ.update(env)
    with dg.DagsterInstance.from_config(str(root)) as instance:
        yield instance, env


# --- 1. registry ---------------------------------------------------------------------------------


def bench_registry(instance: dg.DagsterInstance, home: Path, n: int) -> dict[str, float]:
    from lerobot_assets.defs.ingest.partitions import SESSIONS
    from lerobot_assets.defs.ingest.sensors import inbox_sensor
    from lerobot_assets.defs.resources import DataHome
    from lerobot_assets.home import HomeLayout, next_free_seed, overlapping_sim_sessions, sim_session_keys
    from lerobot_assets.home.validation import merge_plan
    from lerobot_assets.sources.inbox import COMPLETE_MARKER

    out: dict[str, float] = {}

    def register() -> list[str]:  # what `lerobot-assets register-sim --sessions n --episodes 1` does
        existing = list(instance.get_dynamic_partitions(SESSIONS))
        keys = [k for k in sim_session_keys(n, 1, next_free_seed(existing)) if k not in existing]
        assert not any(overlapping_sim_sessions(existing, k) for k in keys)
        instance.add_dynamic_partitions(SESSIONS, keys)
        return keys

    sim_keys, out["register_s"] = timed(register)

    # An inbox of n complete sessions (the sensor only lists folders and looks for the marker).
    for i in range(n):
        folder = home / "inbox" / f"rec{i:05d}"
        folder.mkdir(parents=True)
        (folder / COMPLETE_MARKER).touch()
    resources = {"home": DataHome(root=str(home))}

    def tick(cursor: str | None) -> dg.SensorResult:
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
            return inbox_sensor(context)  # type: ignore[return-value]

    first, out["sensor_first_tick_s"] = timed(tick, None)
    [request] = first.dynamic_partitions_requests
    _, out["sensor_add_partitions_s"] = timed(instance.add_dynamic_partitions, SESSIONS, list(request.partition_keys))
    steady, out["sensor_steady_tick_s"] = timed(tick, first.cursor)
    assert not steady.run_requests and not steady.dynamic_partitions_requests

    def materialize() -> None:
        for key in sim_keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="session_dataset", partition=key))

    _, seconds = timed(materialize)
    out["materialization_events_s"] = seconds
    out["per_event_ms"] = 1000 * seconds / n

    layout = HomeLayout(home)
    for key in sim_keys:  # built sessions as merge_plan sees them (info.json present, no failed check)
        (layout.session(key) / "meta").mkdir(parents=True)
        (layout.session(key) / "meta" / "info.json").write_text("{}")

    def plan() -> tuple[list[str], dict[str, str]]:  # what lerobot_dataset computes before merging
        registered = instance.get_dynamic_partitions(SESSIONS)
        built = instance.get_materialized_partitions(dg.AssetKey("session_dataset"))
        return merge_plan(layout, registered, built)

    (chosen, skipped), out["merge_plan_s"] = timed(plan)
    assert len(chosen) == n and len(skipped) == n, (len(chosen), len(skipped))
    return {k: round(v, 3) for k, v in out.items()}


# --- 2. throughput -------------------------------------------------------------------------------


def run_stats(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float, int]:
    """(run wall s, steps' own s, steps) from the event log."""
    T = dg.DagsterEventType
    stamps: dict[tuple[Any, str | None], float] = {}
    for e in instance.all_logs(run_id):
        if e.dagster_event is not None:
            stamps.setdefault((e.dagster_event.event_type, e.step_key), e.timestamp)
    steps = [k for (t, k) in stamps if t == T.STEP_SUCCESS and k]
    own = sum(stamps[(T.STEP_SUCCESS, k)] - stamps[(T.STEP_START, k)] for k in steps)
    end = stamps.get((T.RUN_SUCCESS, None)) or stamps.get((T.RUN_FAILURE, None)) or 0.0
    return end - stamps[(T.RUN_START, None)], own, len(steps)


def summarize(instance: dg.DagsterInstance, run_ids: list[str], wall: float, workers: int) -> dict[str, float]:
    """Throughput and overhead. `worker_overhead_per_step_s`: worker time not spent inside a step,
    per step ((workers x wall - steps' own time) / steps: dispatch, run and step bookkeeping, event
    writes, idle workers, run processes starting). `run_overhead_per_step_s`: run wall time minus its
    steps' own time, per step (for Celery it includes the wait for a free worker)."""
    stats = [run_stats(instance, r) for r in run_ids]
    runs, own, steps = sum(s[0] for s in stats), sum(s[1] for s in stats), sum(s[2] for s in stats)
    return {
        "wall_s": round(wall, 2),
        "sessions_per_min": round(60 * len(run_ids) / wall, 2),
        "steps": steps,
        "step_s_total": round(own, 2),
        "worker_overhead_per_step_s": round((workers * wall - own) / steps, 3),
        "run_overhead_per_step_s": round((runs - own) / steps, 3),
    }


def bench_in_process(instance: dg.DagsterInstance, home: Path, keys: list[str], sim: dict[str, Any]) -> dict[str, float]:
    from lerobot_assets.defs.definitions import defs

    instance.add_dynamic_partitions("sessions", keys)
    job = defs.resolve_job_def("session_job")
    config = {"resources": {"home": {"config": {"root": str(home)}}, "sim": {"config": sim}}}
    t, run_ids = time.perf_counter(), []
    for key in keys:
        result = job.execute_in_process(partition_key=key, instance=instance, run_config=config)
        assert result.success
        run_ids.append(result.run_id)
    return summarize(instance, run_ids, time.perf_counter() - t, workers=1)


def bench_celery(
    instance: dg.DagsterInstance, env: dict[str, str], home: Path, keys: list[str], sim: dict[str, Any], redis_url: str, tmp: Path
) -> dict[str, float]:
    execution = yaml.safe_load((REPO / "deploy" / "celery" / "run_config.yaml").read_text())["execution"]
    execution["config"] |= {"broker": f"{redis_url}/0", "backend": f"{redis_url}/1"}
    run_config = tmp / "celery_run.yaml"
    run_config.write_text(yaml.safe_dump({"execution": execution, "resources": {"home": {"config": {"root": str(home)}}, "sim": {"config": sim}}}))
    env = os.environ | env | {"LEROBOT_ASSETS_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    instance.add_dynamic_partitions("sessions", keys)
    workers = []
    try:
        for name in ("w1", "w2"):
            log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed with the worker)
            # -i definitions: the code location is imported at start, as the in-process side has it.
            args = [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(run_config), "-n", name,
                    "-i", "definitions", "--", "--concurrency=1"]  # fmt: skip
            workers.append((subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), log))
        deadline = time.monotonic() + 120
        for name in ("w1", "w2"):
            while " ready." not in (tmp / f"{name}.log").read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"celery worker {name} did not start: {(tmp / f'{name}.log').read_text()[-2000:]}")
                time.sleep(0.2)
        t = time.perf_counter()
        procs = [
            subprocess.Popen(
                [str(BIN / "dagster"), "job", "execute", "-m", "definitions", "-j", "session_job_celery",
                 "--tags", json.dumps({"dagster/partition": key}), "-c", str(run_config)],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            for key in keys
        ]
        for key, run in zip(keys, procs):
            out, _ = run.communicate(timeout=1800)
            if run.returncode != 0:
                raise RuntimeError(f"{key}: session_job_celery failed:\n{out[-3000:]}")
        wall = time.perf_counter() - t
    finally:
        for worker, log in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, 15)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, 9)
                    worker.wait()
            log.close()
    run_ids = [r.run_id for r in instance.get_runs(dg.RunsFilter(job_name="session_job_celery"))]
    return summarize(instance, run_ids, wall, workers=2)


# --- 3. UI: the asset page of session_dataset -----------------------------------------------------

# The GraphQL queries the asset page of `session_dataset` issues when it opens (trimmed copies of the
# UI 1.13 bundle's AssetViewDefinitionQuery, AssetGraphLiveQuery, PartitionHealthQuery and
# RecentAssetEventsQuery; the page issues a few smaller ones too, e.g. the asset's checks and runs).
UI_QUERIES = {
    "definition": """query AssetViewDefinitionQuery($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) { ... on Asset {
    id key { path } hasDefinitionOrRecord
    assetMaterializations(limit: 1) { timestamp runId }
    definition { id groupName isExecutable opVersion description
      partitionDefinition { description dimensionTypes { type dynamicPartitionsDefinitionName } }
      partitionKeysByDimension { name }
      opTags { key value } kinds
      metadataEntries { label }
      dependencyKeys { path } dependedByKeys { path } }
  } } }""",
    "live": """query AssetGraphLiveQuery($assetKeys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $assetKeys, loadMaterializations: true) {
    id opNames assetKey { path }
    assetMaterializations(limit: 1) { timestamp runId stepKey }
    assetObservations(limit: 1) { timestamp runId stepKey }
    assetChecksOrError { ... on AssetChecks { checks { name canExecuteIndividually
      executionForLatestMaterialization { id runId status timestamp stepKey evaluation { severity } } } } }
    partitionStats { numMaterialized numMaterializing numPartitions numFailed }
  }
  assetsLatestInfo(assetKeys: $assetKeys) { id unstartedRunIds inProgressRunIds latestRun { id status endTime } }
}""",
    "partition_health": """query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) { ... on AssetNode {
    id
    partitionKeysByDimension { name type partitionKeys }
    assetPartitionStatuses {
      ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
    }
  } } }""",
    "events": """query RecentAssetEventsQuery($assetKey: AssetKeyInput!, $limit: Int!) {
  assetOrError(assetKey: $assetKey) { ... on Asset {
    id
    assetEventHistory(limit: $limit, eventTypeSelectors: [MATERIALIZATION, FAILED_TO_MATERIALIZE, OBSERVATION]) {
      results { ... on MaterializationEvent { partition timestamp runId stepKey metadataEntries { label description } } }
      cursor
    }
  } } }""",
}


def graphql(base: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    import urllib.request

    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(f"{base}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        out = json.loads(response.read())
    if out.get("errors"):
        raise RuntimeError(f"GraphQL errors: {json.dumps(out['errors'])[:2000]}")
    return out["data"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def webserver(env: dict[str, str], home: Path, log_path: Path) -> Iterator[str]:
    """`dagster-webserver -w workspace.yaml` (as tests/test_ui_browser.py starts it) on the instance of
    `env`; yields its URL once the code location answers."""
    import urllib.request

    from distributed_support import free_port

    port = free_port()
    log = open(log_path, "w")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO, env=os.environ | env | {"LEROBOT_ASSETS_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(OSError, RuntimeError, KeyError, TypeError):
                with urllib.request.urlopen(f"{base}/server_info", timeout=2):
                    pass
                if graphql(base, "{ assetNodes { id } }", {})["assetNodes"]:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"webserver did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, 2)  # SIGINT to the group: the webserver and its code server
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


CHROMIUM = "/usr/bin/chromium"
# The pages timed in the browser: session_dataset's Overview (the page as it opens) and Partitions
# tabs, and the baseline: the Overview of lerobot_dataset (not partitioned, never materialized).
PAGE_VIEWS = {
    "overview": "session_dataset",
    "partitions": "session_dataset?view=partitions",
    "unpartitioned_overview": "lerobot_dataset",
}


def browser_page_loads(base: str, materialized: int, repeats: int) -> dict[str, Any]:
    """The asset page in headless Chromium (when it and playwright are installed, as for
    tests/test_ui_browser.py): per page of PAGE_VIEWS, one warm-up load, then the median over `repeats`
    loads (a full navigation each: the app starts again, its scripts come from the browser's cache) of
    the time from navigation to the last GraphQL response of the page's first burst (network idle for
    0.5 s after it), and the number of GraphQL requests the load sent."""
    import statistics

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "playwright not installed"}
    if not Path(CHROMIUM).exists():
        return {"skipped": f"{CHROMIUM} not installed (make browser)"}
    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.add_init_script("localStorage.setItem('communityNux', JSON.stringify('1'))")
            page = context.new_page()
            done: list[tuple[float, str]] = []  # (when, URL: /graphql?op=<operation name>) of each response
            page.on("requestfinished", lambda r: done.append((time.perf_counter(), r.url)) if "/graphql" in r.url else None)
            for view, path in PAGE_VIEWS.items():
                loads, requests = [], []
                for _ in range(repeats + 1):
                    done.clear()
                    t = time.perf_counter()
                    page.goto(f"{base}/assets/{path}", wait_until="domcontentloaded")
                    # The page's own query first (networkidle alone can come before the app has started).
                    while not any("op=AssetViewDefinitionQuery" in url for _, url in done):
                        if time.perf_counter() - t > 120:
                            raise TimeoutError(f"{view}: no AssetViewDefinitionQuery response in 120 s")
                        page.wait_for_timeout(20)
                    page.wait_for_load_state("networkidle", timeout=120_000)
                    if view == "partitions":  # the partitions tab counts them when it has loaded
                        page.get_by_text(f"{materialized:,}").first.wait_for(timeout=60_000)
                        page.wait_for_load_state("networkidle", timeout=120_000)
                    loads.append(max(when for when, _ in done) - t)
                    requests.append(len(done))
                out[f"{view}_ms"] = round(1000 * statistics.median(loads[1:]), 1)
                out[f"{view}_graphql_requests"] = int(statistics.median(requests[1:]))
        finally:
            browser.close()
    out["overview_vs_unpartitioned"] = round(out["overview_ms"] / out["unpartitioned_overview_ms"], 2)
    return out


def bench_ui(instance: dg.DagsterInstance, env: dict[str, str], tmp: Path, n: int, materialized: int, repeats: int) -> dict[str, Any]:
    """n registered sessions, `materialized` of them with a session_dataset materialization; then the
    asset page's queries through the webserver: the first round (cold caches) and the median of
    `repeats` rounds of each query and of a whole round (the queries one after another; the browser
    sends them concurrently, so a round is an upper bound of the queries' share of the page load)."""
    import statistics

    from lerobot_assets.defs.ingest.partitions import SESSIONS
    from lerobot_assets.home import sim_session_keys

    keys = sim_session_keys(n, 1)
    instance.add_dynamic_partitions(SESSIONS, keys)
    t = time.perf_counter()
    for i, key in enumerate(keys[:materialized]):  # metadata like a session build's (a few entries)
        metadata = {"episodes": 1, "frames": 100 + i % 50, "size_mb": 1.5, "path": f"sessions/{key}",
                    "tasks": dg.MetadataValue.json(["Push the T-shaped block onto the T-shaped target."])}  # fmt: skip
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="session_dataset", partition=key, metadata=metadata))
    events_s = time.perf_counter() - t
    key_var = {"path": ["session_dataset"]}
    variables = {
        "definition": {"assetKey": key_var},
        "live": {"assetKeys": [key_var]},
        "partition_health": {"assetKey": key_var},
        "events": {"assetKey": key_var, "limit": 100},
    }
    home = tmp / "home"
    t = time.perf_counter()
    with webserver(env, home, tmp / "webserver.log") as base:
        start_s = time.perf_counter() - t
        rounds: list[dict[str, float]] = []
        for _ in range(repeats + 1):
            times: dict[str, float] = {}
            for name, query in UI_QUERIES.items():
                data, times[name] = timed(graphql, base, query, variables[name])
                if name == "live":
                    stats = data["assetNodes"][0]["partitionStats"]
                    assert (stats["numPartitions"], stats["numMaterialized"]) == (n, materialized), stats
                if name == "partition_health":
                    node = data["assetNodeOrError"]
                    assert len(node["partitionKeysByDimension"][0]["partitionKeys"]) == n
                    assert len(node["assetPartitionStatuses"]["materializedPartitions"]) == materialized
            times["round"] = sum(times.values())
            _, times["ping"] = timed(graphql, base, "{ version }", {})  # a bare request: the floor
            rounds.append(times)
        browser = browser_page_loads(base, materialized, repeats)
    first, rest = rounds[0], rounds[1:]
    return {
        "browser": browser,
        "registered": n,
        "materialized": materialized,
        "materialization_events_s": round(events_s, 2),
        "webserver_start_s": round(start_s, 1),
        "first_round_ms": {k: round(1000 * v, 1) for k, v in first.items()},
        "median_ms": {k: round(1000 * statistics.median(r[k] for r in rest), 1) for k in first},
    }


PARTS = ("registry", "throughput", "ui", "remote")


def main() -> None:
    import bench_remote_home

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=PARTS, help="run only these parts (default: every part)")
    parser.add_argument("--skip", nargs="+", choices=PARTS, default=[], help="parts not to run")
    parser.add_argument("--registry", type=int, default=1000, help="registered sessions for the registry timings (0: skip)")
    parser.add_argument("--sessions", type=int, default=6, help="sessions for the throughput timings")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--top-camera", action="store_true", help="also record the 480x640 top camera (heavier steps)")
    parser.add_argument("--skip-throughput", action="store_true", help="the same as --skip throughput")
    parser.add_argument("--ui-sessions", type=int, default=1000, help="registered sessions for the UI timings")
    parser.add_argument("--ui-materialized", type=int, default=None, help="of which materialized (default: half)")
    parser.add_argument("--ui-repeats", type=int, default=7, help="timed rounds of the asset page's queries (after one cold round)")
    bench_remote_home.add_arguments(parser)
    args = parser.parse_args()
    parts = set(args.only or PARTS) - set(args.skip) - ({"throughput"} if args.skip_throughput else set())
    if not args.registry:
        parts.discard("registry")

    from lerobot_assets.home import sim_session_keys

    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    report: dict[str, Any] = {"parts": [p for p in PARTS if p in parts]}
    try:
        with contextlib.ExitStack() as services:
            redis_url = services.enter_context(redis_server()) if "throughput" in parts else ""
            needs_postgres = parts & {"registry", "throughput", "ui"}
            postgres_url = services.enter_context(postgres_server()) if needs_postgres else ""
            if "registry" in parts:
                report["registry_sessions"] = args.registry
                for kind in ("sqlite", "postgres"):
                    url = create_database(postgres_url, "registry") if kind == "postgres" else None
                    with instance_at(kind, tmp / f"registry-{kind}", url) as (instance, _):
                        report[f"registry_{kind}"] = bench_registry(instance, tmp / f"home-registry-{kind}", args.registry)
                    print(f"registry {kind}: {report[f'registry_{kind}']}", flush=True)
            if "throughput" in parts:
                sim = {"max_steps": args.max_steps, "top_camera": args.top_camera}
                keys = sim_session_keys(args.sessions, args.episodes)
                report["throughput"] = {"sessions": args.sessions, "episodes": args.episodes, **sim}
                for mode in ("in_process_sqlite", "in_process_postgres", "celery_2_workers"):
                    kind = "sqlite" if mode.endswith("sqlite") else "postgres"
                    url = create_database(postgres_url, mode) if kind == "postgres" else None
                    with instance_at(kind, tmp / f"dagster-{mode}", url) as (instance, env):
                        home = tmp / f"home-{mode}"
                        if mode == "celery_2_workers":
                            report[mode] = bench_celery(instance, env, home, keys, sim, redis_url, tmp)
                        else:
                            report[mode] = bench_in_process(instance, home, keys, sim)
                    print(f"{mode}: {report[mode]}", flush=True)
                report["celery_speedup"] = round(
                    report["celery_2_workers"]["sessions_per_min"] / report["in_process_postgres"]["sessions_per_min"], 2
                )
            if "ui" in parts:
                materialized = args.ui_sessions // 2 if args.ui_materialized is None else args.ui_materialized
                for kind in ("sqlite", "postgres"):
                    url = create_database(postgres_url, "ui") if kind == "postgres" else None
                    work = tmp / f"ui-{kind}"
                    work.mkdir()
                    with instance_at(kind, work / "dagster", url) as (instance, env):
                        report[f"ui_{kind}"] = bench_ui(instance, env, work, args.ui_sessions, materialized, args.ui_repeats)
                    print(f"ui {kind}: {report[f'ui_{kind}']}", flush=True)
                sqlite, postgres = report["ui_sqlite"]["median_ms"], report["ui_postgres"]["median_ms"]
                report["ui_postgres_vs_sqlite"] = {k: round(postgres[k] / sqlite[k], 2) for k in sqlite}
                pages = report["ui_sqlite"]["browser"], report["ui_postgres"]["browser"]
                for view in PAGE_VIEWS:
                    if f"{view}_ms" in pages[0] and f"{view}_ms" in pages[1]:
                        report["ui_postgres_vs_sqlite"][f"browser_{view}"] = round(pages[1][f"{view}_ms"] / pages[0][f"{view}_ms"], 2)
                report["ui_round_vs_ping"] = {kind: round(report[f"ui_{kind}"]["median_ms"]["round"] / report[f"ui_{kind}"]["median_ms"]["ping"], 1) for kind in ("sqlite", "postgres")}  # fmt: skip
        if "remote" in parts:
            report["remote_home"] = bench_remote_home.bench_remote_home(
                tmp / "remote", args.remote_sessions, args.remote_episodes, bench_remote_home.sim_settings(args), args.remote_rounds
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
