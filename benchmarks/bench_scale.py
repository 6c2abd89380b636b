"""Scale of the Dagster side: many registered sessions, and the session job on Celery workers.

1. Registry (`--registry N`, default 1,000 sessions), on a SQLite instance and on a PostgreSQL one in
   the same run, timing what the code location does with them:
   - register: N sim sessions as `register-sim` does (list the registered, check seed overlaps, add
     the partitions in one call);
   - sensor tick: `inbox_sensor` over an inbox of N complete sessions, first tick (all new; plus
     adding the partitions its result requests, as the daemon does) and a steady tick (nothing new,
     2N registered), the one that repeats every 15 s;
   - materializations: N `session_dataset` materialization events (what N session runs write at
     least), the per-event cost of the storage;
   - merge plan: what `lerobot_dataset` computes before merging (registered and materialized
     partitions from the instance, then `merge_plan` over the home: 2N registered, N built).
2. Throughput (`--sessions M`, default 6, skipped with `--skip-throughput`): the session job over M PushT
   sessions (sim -> raw episodes -> session dataset -> validation),
   - `in_process_sqlite` / `in_process_postgres`: one process runs them one after another
     (`session_job.execute_in_process`, as `lerobot-assets demo` does) on each storage;
   - `celery_2_workers`: `session_job_celery` on two Celery workers (concurrency 1 each, Redis
     broker, PostgreSQL instance), one `dagster job execute` per session, all launched at once.
   Reports sessions per minute (wall, first launch to last run done) and the overhead per step
   from the event log (see `summarize`).

Redis and PostgreSQL are started on loopback in temp directories (tests/distributed_support.py) and
stopped at the end. The last line printed is a JSON object.

    .venv/bin/python benchmarks/bench_scale.py [--registry 1000] [--sessions 6] [--episodes 2]
        [--max-steps 100] [--top-camera] [--skip-throughput]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", type=int, default=1000, help="registered sessions for the registry timings (0: skip)")
    parser.add_argument("--sessions", type=int, default=6, help="sessions for the throughput timings")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--top-camera", action="store_true", help="also record the 480x640 top camera (heavier steps)")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()

    from lerobot_assets.home import sim_session_keys

    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    report: dict[str, Any] = {"registry_sessions": args.registry}
    try:
        with redis_server() as redis_url, postgres_server() as postgres_url:
            if args.registry:
                for kind in ("sqlite", "postgres"):
                    url = create_database(postgres_url, "registry") if kind == "postgres" else None
                    with instance_at(kind, tmp / f"registry-{kind}", url) as (instance, _):
                        report[f"registry_{kind}"] = bench_registry(instance, tmp / f"home-registry-{kind}", args.registry)
                    print(f"registry {kind}: {report[f'registry_{kind}']}", flush=True)
            if not args.skip_throughput:
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
