"""The distributed path, run for real: the Dagster instance on PostgreSQL (deploy/celery/dagster.yaml),
`session_job_celery` on dagster-celery with a Redis broker and two Celery worker processes, a local
data home shared by the workers.

- Three PushT sessions run as three concurrent runs; their steps are picked up by both workers (the
  worker name in dagster-celery's engine event and the PID on every step event say which), then
  `dataset_job` merges them. The merged dataset equals the one an in-process run builds from the same
  sessions (episodes metadata, every data row, every decoded pixel) and passes validation.
- The worker process running a step killed (SIGKILL, as the OOM killer does) in the middle of it: the
  run fails naming the lost worker (Celery's WorkerLostError), a re-run completes, the session is
  valid, and nothing published before the kill changed.

Each worker is `dagster-celery worker start ... -- --concurrency=1`: a celery main process and one
pool process that runs the steps (so a step's events carry the pool process's PID, a child of the
worker's main process).

Services come from tests/distributed_support.py (own ports and temp dirs, stopped on any exit).
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from distributed_support import postgres_bin, postgres_dagster_home, postgres_server, redis_available, redis_server
from test_defs_support import TINY_SIM, materialize_dataset, materialize_session, tree

pytest.importorskip("dagster_celery")
pytest.importorskip("dagster_postgres")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not redis_available() or postgres_bin() is None, reason="needs redis-server and postgresql (make sysdeps)"),
]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SESSIONS = ["sim-s0000-0001", "sim-s0002-0003", "sim-s0004-0005"]
KILLED = "sim-s0006-0008"


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    pidfile: Path
    log: Path

    @property
    def pid(self) -> int:
        """PID of the celery worker's main process (its pool process runs the steps)."""
        return int(self.pidfile.read_text().strip())


def _parent(pid: int) -> int:
    """Parent PID of a live process (the worker's main process, for a pool process)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise ValueError(pid)


@dataclass
class Cluster:
    env: dict[str, str]
    home: Path
    run_config: Path
    workers: list[Worker]
    runs: dict[str, str] = field(default_factory=dict)  # session -> run id

    def instance(self) -> dg.DagsterInstance:
        os.environ["DAGSTER_POSTGRES_URL"] = self.env["DAGSTER_POSTGRES_URL"]
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])


def _execution_config(redis_url: str) -> dict[str, Any]:
    """deploy/celery/run_config.yaml's executor config, pointed at the test's Redis."""
    config = yaml.safe_load((REPO / "deploy" / "celery" / "run_config.yaml").read_text())["execution"]
    config["config"]["broker"] = f"{redis_url}/0"
    config["config"]["backend"] = f"{redis_url}/1"
    return config


def _start_worker(name: str, tmp: Path, env: dict[str, str], run_config: Path) -> Worker:
    pidfile, log = tmp / f"{name}.pid", tmp / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(run_config), "-n", name,
             "--", "--concurrency=1", f"--pidfile={pidfile}"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Worker(name, proc, pidfile, log)


def _wait_ready(workers: list[Worker], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    for w in workers:
        while " ready." not in w.log.read_text(errors="replace"):
            if w.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker {w.name} did not start:\n{w.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)


def _stop_worker(w: Worker) -> None:
    if w.proc.poll() is None:
        # The group is the dagster-celery CLI and the celery worker it started (own session, by PID).
        os.killpg(w.proc.pid, signal.SIGTERM)
        try:
            w.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(w.proc.pid, signal.SIGKILL)
            w.proc.wait(10)


def _launch(cluster: Cluster, session: str, run_config: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "dagster"), "job", "execute", "-m", "definitions", "-j", "session_job_celery",
         "--tags", json.dumps({"dagster/partition": session}), "-c", str(run_config or cluster.run_config)],
        cwd=REPO, env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _run_of(instance: dg.DagsterInstance, session: str) -> list[Any]:
    runs = instance.get_runs(dg.RunsFilter(job_name="session_job_celery", tags={"dagster/partition": session}))
    return sorted(runs, key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)  # type: ignore[union-attr]


def _placement(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[str, set[int]]]:
    """{step: (celery worker name of its last delivery, PIDs that emitted its step events)}."""
    out: dict[str, tuple[str, set[int]]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        worker, pids = out.get(event.step_key, ("", set()))
        if event.event_type == dg.DagsterEventType.ENGINE_EVENT and "in celery worker" in (event.message or ""):
            worker = str(event.engine_event_data.metadata["Celery worker"].value)
        if event.event_type in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS) and event.pid is not None:
            pids = pids | {event.pid}
        out[event.step_key] = (worker, pids)
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("distributed")
    home = tmp / "home"
    with redis_server() as redis_url, postgres_server() as postgres_url:
        # The data home's instance dir holds the deploy dagster.yaml, so the CLI commands use PostgreSQL too.
        env = os.environ | postgres_dagster_home(home / "dagster", postgres_url, REPO / "deploy" / "celery" / "dagster.yaml")
        env |= {
            "LEROBOT_ASSETS_HOME": str(home),
            "SDL_VIDEODRIVER": "dummy",
            "SVT_LOG": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery runs `celery` from PATH
        }
        run_config = tmp / "run_config.yaml"
        run_config.write_text(
            yaml.safe_dump({"execution": _execution_config(redis_url), "resources": {"home": {"config": {"root": str(home)}}, "sim": {"config": TINY_SIM}}})
        )
        workers: list[Worker] = []
        try:
            workers += [_start_worker(name, tmp, env, run_config) for name in ("w1", "w2")]
            _wait_ready(workers)
            yield Cluster(env, home, run_config, workers)
        finally:
            for w in workers:
                _stop_worker(w)
            os.environ.pop("DAGSTER_POSTGRES_URL", None)


def _cli(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{args[:4]} failed:\n{out[-4000:]}"
    return out


def _frames(root: Path) -> list[dict[str, Any]]:
    from lerobot_assets.loading import LeRobotV3Dataset

    ds = LeRobotV3Dataset(root, return_uint8=True)
    return [ds[i] for i in range(len(ds))]


def _assert_same_dataset(got: Path, want: Path) -> None:
    from lerobot_assets.format import DatasetMeta

    a, b = DatasetMeta(got), DatasetMeta(want)
    assert (a.info.total_episodes, a.info.total_frames) == (b.info.total_episodes, b.info.total_frames)
    assert a.tasks == b.tasks
    columns = ["episode_index", "length", "tasks", "dataset_from_index", "dataset_to_index"]
    ea = pq.read_table(sorted((got / "meta" / "episodes").rglob("*.parquet"))).select(columns)
    eb = pq.read_table(sorted((want / "meta" / "episodes").rglob("*.parquet"))).select(columns)
    assert ea.equals(eb)
    da = pq.read_table(sorted((got / "data").rglob("*.parquet")))
    db = pq.read_table(sorted((want / "data").rglob("*.parquet")))
    assert da.equals(db)
    fa, fb = _frames(got), _frames(want)
    assert len(fa) == len(fb) == a.info.total_frames
    for i, (x, y) in enumerate(zip(fa, fb, strict=True)):
        assert x.keys() == y.keys()
        for key in x:
            if key == "task":
                assert x[key] == y[key]
            else:
                assert np.array_equal(np.asarray(x[key]), np.asarray(y[key])), f"frame {i}: {key} differs"


def test_sessions_on_two_celery_workers_then_merge(cluster: Cluster, tmp_path: Path) -> None:
    from lerobot_assets.checks import validate_dataset
    from lerobot_assets.defs.definitions import defs

    t0 = time.monotonic()
    _cli([str(BIN / "lerobot-assets"), "register-sim", "--home", str(cluster.home), "--sessions", "3", "--episodes", "2"], cluster.env)
    register_s, t0 = time.monotonic() - t0, time.monotonic()
    launched = {s: _launch(cluster, s) for s in SESSIONS}
    for s, proc in launched.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{s}:\n{out[-4000:]}"
    sessions_s = time.monotonic() - t0

    names = {f"{w.name}@{os.uname().nodename}": w.pid for w in cluster.workers}
    used_names: set[str] = set()
    used_pids: set[int] = set()
    with cluster.instance() as instance:
        for s in SESSIONS:
            [run] = _run_of(instance, s)
            assert run.status == dg.DagsterRunStatus.SUCCESS
            cluster.runs[s] = run.run_id
            placement = _placement(instance, run.run_id)
            T = dg.DagsterEventType
            stamps = {(e.dagster_event.event_type, e.step_key): e.timestamp for e in instance.all_logs(run.run_id) if e.dagster_event}
            steps = {k: stamps[(T.STEP_SUCCESS, k)] - stamps[(T.STEP_START, k)] for _, k in stamps if k and (T.STEP_SUCCESS, k) in stamps}
            wall = stamps[(T.RUN_SUCCESS, None)] - stamps[(T.RUN_START, None)]
            print(f"{s}: run {wall:.1f} s, steps " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))
            assert set(placement) >= {"raw_episodes", "session_build"}, placement
            for step, (worker, pids) in placement.items():
                # Every step ran in a celery worker, and its events came from that worker's process.
                assert worker in names, f"{s}/{step} ran in {worker!r}, not in {sorted(names)}"
                # ... one delivery, in one pool process, a child of that worker's main process.
                assert len(pids) == 1 and _parent(next(iter(pids))) == names[worker], f"{s}/{step}: {worker}, pids {pids}"
                used_names.add(worker)
                used_pids |= pids
        assert instance.get_materialized_partitions(dg.AssetKey("session_dataset")) == set(SESSIONS)
    assert used_names == set(names), f"steps ran only in {used_names}"
    assert {_parent(pid) for pid in used_pids} == set(names.values())

    # dataset_job: one in-process run on the same PostgreSQL instance, as `lerobot-assets demo` runs it.
    t0 = time.monotonic()
    with cluster.instance() as instance:
        result = defs.resolve_job_def("dataset_job").execute_in_process(
            instance=instance, run_config={"resources": {"home": {"config": {"root": str(cluster.home)}}}}, raise_on_error=False
        )
        assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    merged = cluster.home / "datasets" / "lerobot_dataset"
    report = validate_dataset(merged)
    assert report.ok, [str(p) for p in report.problems]
    dataset_s = time.monotonic() - t0

    # The oracle: the same sessions built in one process on a SQLite instance, then merged.
    t0 = time.monotonic()
    oracle = tmp_path / "oracle"
    with dg.instance_for_test() as instance:
        for s in SESSIONS:
            assert materialize_session(instance, oracle, s).success
        assert materialize_dataset(instance, oracle).success
    _assert_same_dataset(merged, oracle / "datasets" / "lerobot_dataset")
    print(
        f"register-sim {register_s:.1f} s; 3 sessions on 2 celery workers {sessions_s:.1f} s; dataset_job {dataset_s:.1f} s; "
        f"in-process oracle + comparison {time.monotonic() - t0:.1f} s"
    )


def _wait_for_step(cluster: Cluster, session: str, step: str, proc: subprocess.Popen[str], timeout: float = 120) -> tuple[str, str, int]:
    """(run id, worker name, pool process PID) once `step` of the session's latest run started in a worker."""
    deadline = time.monotonic() + timeout
    with cluster.instance() as instance:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"run ended before {step} started:\n{proc.communicate()[0][-3000:]}"
            runs = _run_of(instance, session)
            if runs:
                worker, pids = _placement(instance, runs[-1].run_id).get(step, ("", set()))
                if worker and pids:
                    return runs[-1].run_id, worker, next(iter(pids))
            time.sleep(0.05)
    raise TimeoutError(f"{step} of {session} did not start within {timeout} s")


def test_worker_killed_mid_step(cluster: Cluster, tmp_path: Path) -> None:
    from lerobot_assets.checks import validate_dataset
    from lerobot_assets.format import DatasetMeta

    if not cluster.runs:
        pytest.skip("needs the sessions of test_sessions_on_two_celery_workers_then_merge")
    published = {p: tree(p) for p in [*(cluster.home / "sessions" / s for s in SESSIONS), cluster.home / "datasets" / "lerobot_dataset"]}
    with cluster.instance() as instance:
        instance.add_dynamic_partitions("sessions", [KILLED])

    # Bigger frames and longer episodes than the tiny sessions, so session_build lasts seconds and
    # the kill lands inside it.
    config = yaml.safe_load(cluster.run_config.read_text())
    config["resources"]["sim"]["config"] |= {"max_steps": 100, "image_size": 96}
    killed_config = tmp_path / "run_config_killed.yaml"
    killed_config.write_text(yaml.safe_dump(config))
    proc = _launch(cluster, KILLED, killed_config)
    run_id, worker_name, pid = _wait_for_step(cluster, KILLED, "session_build", proc)
    [victim] = [w for w in cluster.workers if worker_name.startswith(f"{w.name}@")]
    assert _parent(pid) == victim.pid
    os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic()
    out, _ = proc.communicate(timeout=180)
    print(f"killed the pool process {pid} of {victim.name} in session_build; the run ended {time.monotonic() - t_kill:.1f} s later")
    with cluster.instance() as instance:
        events = [e.dagster_event for e in instance.all_logs(run_id) if e.dagster_event]
        build = [e for e in events if e.step_key == "session_build"]
        # The kill hit the step mid-way: it started in the killed process and never finished there.
        assert [e.pid for e in build if e.event_type == dg.DagsterEventType.STEP_START] == [pid]
        assert not any(e.event_type == dg.DagsterEventType.STEP_SUCCESS for e in build)
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
        assert KILLED not in instance.get_materialized_partitions(dg.AssetKey("session_dataset"))
    # The run's failure names the lost worker process (Celery's WorkerLostError).
    assert proc.returncode != 0 and "Worker exited prematurely: signal 9 (SIGKILL)" in out, out[-3000:]

    # Nothing published changed, and a re-run (the victim's main process forked a new pool process) completes.
    for root, before in published.items():
        assert tree(root) == before, f"{root} changed while a worker was killed"
    rerun = _launch(cluster, KILLED, killed_config)
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out[-4000:]
    with cluster.instance() as instance:
        assert KILLED in instance.get_materialized_partitions(dg.AssetKey("session_dataset"))
    session = cluster.home / "sessions" / KILLED
    assert validate_dataset(session).ok
    assert DatasetMeta(session).info.total_episodes == 3
    # No half-built dataset left beside the sessions (only the swap locks of each session).
    assert sorted(p.name for p in session.parent.iterdir() if not p.name.endswith(".swap.lock")) == sorted([*SESSIONS, KILLED])
    for root, before in published.items():
        assert tree(root) == before
