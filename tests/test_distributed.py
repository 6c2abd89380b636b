"""The distributed path, run for real: the Dagster instance on PostgreSQL (deploy/celery/dagster.yaml),
`session_job_celery` on dagster-celery with a Redis broker and two Celery worker processes, and the
data home on an S3-compatible server (moto on loopback, `s3://lerobot/distributed`).

The workers share no data on the local disk: each has its own LEROBOT_ASSETS_LOCAL (workspaces and
version cache) and its own DAGSTER_HOME directory (the same PostgreSQL dagster.yaml); they reach the
S3 server through AWS_ENDPOINT_URL and dummy credentials in their environment, as a worker on another
machine would. A session whose `raw_episodes` ran in one worker and `session_build` in the other
moved its raw episodes through S3 only. (Dagster's captured step logs still go under the run's
DAGSTER_HOME path, which the run hands the workers in its instance ref: written, never read by a step.)

- Three PushT sessions run as three concurrent runs; their steps are picked up by both workers (the
  worker name in dagster-celery's engine event and the PID on every step event say which), then
  `dataset_job` merges them on the remote home. The published merged dataset (the version its
  `current.json` names) equals the one an in-process run on a local home builds from the same sessions
  (episodes metadata, every data row, every decoded pixel, read through the remote pointer), and passes
  validation (on a byte-for-byte copy of the published prefix: `validate_dataset` reads local paths).
- Kills land inside a publication, deterministically: the S3 server holds the uploads of the killed
  session's `sessions/<s>/v-<n>/` after the first one (tests/distributed_support.py's UploadGate), so
  the kill leaves a half-written version without `meta/info.json` and without a pointer.
  1. The worker's pool process running `session_build` killed (SIGKILL, as the OOM killer does): the
     run fails naming the lost worker (Celery's WorkerLostError); the half-written version is there,
     unreferenced; nothing published before (pointers and every object of the other sessions, their
     raw episodes and the merged dataset) changed.
  2. The re-run, with the worker's *main* process killed (SIGKILL) in its `session_build`: the pool
     process dies with it (Celery sets PR_SET_PDEATHSIG), the step stays unacknowledged in Redis, and
     a replacement worker (a fresh machine: new local dir) started with a 1 s `visibility_timeout`
     hands it out again at start-up (in production that happens after the deploy config's 7,200 s);
     the step runs again from scratch in another worker and the re-run completes. Its publication
     deleted both half-written versions, the session is valid, nothing published before changed.

Each worker is `dagster-celery worker start ... -- --concurrency=1`: a celery main process and one
pool process that runs the steps (so a step's events carry the pool process's PID, a child of the
worker's main process).

Services come from tests/distributed_support.py (own ports and temp dirs, stopped on any exit).
"""

import json
import os
import posixpath
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest
import yaml
from distributed_support import (
    S3_CREDENTIALS,
    UploadGate,
    postgres_bin,
    postgres_dagster_home,
    postgres_server,
    redis_available,
    redis_server,
    s3_server,
)
from helpers import assert_frames_equal
from test_defs_support import TINY_SIM, materialize_dataset, materialize_session

pytest.importorskip("dagster_celery")
pytest.importorskip("dagster_postgres")
pytest.importorskip("s3fs")
pytest.importorskip("moto.server")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not redis_available() or postgres_bin() is None, reason="needs redis-server and postgresql (make sysdeps)"),
]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
INSTANCE_YAML = REPO / "deploy" / "celery" / "dagster.yaml"
BUCKET, PREFIX = "lerobot", "distributed"
HOME = f"s3://{BUCKET}/{PREFIX}"
MERGED = "datasets/lerobot_dataset"
SESSIONS = ["sim-s0000-0001", "sim-s0002-0003", "sim-s0004-0005"]
KILLED = "sim-s0006-0008"
# The uploads the gate holds: the killed session's versions (its raw episodes go through).
KILLED_VERSIONS = f"/{BUCKET}/{PREFIX}/sessions/{KILLED}/v-"
# DataHome.workspace's line per step (lerobot_assets/defs/resources.py)
TRANSFER_LINE = re.compile(
    r"remote home \S+: uploaded (\d+) B in \d+ files, downloaded (\d+) B in \d+ files, .* (\d+) cached versions reused"
)


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    pidfile: Path
    log: Path
    local: Path  # its LEROBOT_ASSETS_LOCAL

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


def _gone(pid: int) -> bool:
    """The process ended (no such process, or a zombie its parent has not reaped yet)."""
    try:
        state = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state.split()[1] in ("Z", "X")


def _wait_gone(*pids: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not all(_gone(p) for p in pids):
        assert time.monotonic() < deadline, f"processes {[p for p in pids if not _gone(p)]} still alive"
        time.sleep(0.02)


@dataclass
class Cluster:
    env: dict[str, str]  # of the run processes (and the base of the workers')
    tmp: Path
    postgres_url: str
    endpoint: str
    gate: UploadGate
    run_config: Path
    workers: list[Worker]
    runs: dict[str, str] = field(default_factory=dict)  # session -> run id

    def instance(self) -> dg.DagsterInstance:
        os.environ["DAGSTER_POSTGRES_URL"] = self.env["DAGSTER_POSTGRES_URL"]
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])

    def fs(self) -> Any:
        """The home's filesystem with no listing cached (s3fs caches listings per instance)."""
        from lerobot_assets.home.remote import home_filesystem

        fs, _ = home_filesystem(HOME)
        fs.invalidate_cache()
        return fs


def _remote(rel: str) -> str:
    return f"{BUCKET}/{PREFIX}/{rel}"


def _execution_config(redis_url: str) -> dict[str, Any]:
    """deploy/celery/run_config.yaml's executor config, pointed at the test's Redis."""
    config = yaml.safe_load((REPO / "deploy" / "celery" / "run_config.yaml").read_text())["execution"]
    config["config"]["broker"] = f"{redis_url}/0"
    config["config"]["backend"] = f"{redis_url}/1"
    return config


def _home_config(local_dir: Path | None = None) -> dict[str, Any]:
    """deploy/celery/run_config.yaml's home, at the test's bucket (its endpoint comes from AWS_ENDPOINT_URL)."""
    config = yaml.safe_load((REPO / "deploy" / "celery" / "run_config.yaml").read_text())["resources"]["home"]["config"]
    assert config["root"].startswith("s3://"), config
    return config | {"root": HOME} | ({"local_dir": str(local_dir)} if local_dir else {})


def _start_worker(cluster_env: dict[str, str], tmp: Path, postgres_url: str, name: str, run_config: Path) -> Worker:
    """A worker as on a machine of its own: its DAGSTER_HOME dir (the same PostgreSQL instance config)
    and its LEROBOT_ASSETS_LOCAL; the home is reached through S3 only."""
    root = tmp / name
    env = cluster_env | postgres_dagster_home(root / "dagster", postgres_url, INSTANCE_YAML) | {"LEROBOT_ASSETS_LOCAL": str(root / "local")}
    pidfile, log = root / "celery.pid", root / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(run_config), "-n", name,
             "--", "--concurrency=1", f"--pidfile={pidfile}"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Worker(name, proc, pidfile, log, root / "local")


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


def _launch(cluster: Cluster, session: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "dagster"), "job", "execute", "-m", "definitions", "-j", "session_job_celery",
         "--tags", json.dumps({"dagster/partition": session}), "-c", str(cluster.run_config)],
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


def _step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """{step: seconds from its start to its success, "(run)": the run's}, in the order they started."""
    T = dg.DagsterEventType
    stamps = {(e.dagster_event.event_type, e.step_key): e.timestamp for e in instance.all_logs(run_id) if e.dagster_event}
    out = {
        k: stamps[(T.STEP_SUCCESS, k)] - stamps[(T.STEP_START, k)]
        for t, k in stamps
        if k and t == T.STEP_START and (T.STEP_SUCCESS, k) in stamps
    }
    if (T.RUN_SUCCESS, None) in stamps:
        out["(run)"] = stamps[(T.RUN_SUCCESS, None)] - stamps[(T.RUN_START, None)]
    return out


def _transfers(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[int, int, int]]:
    """{step: (bytes uploaded, bytes downloaded, cached versions reused)} from the steps' own log lines."""
    out: dict[str, tuple[int, int, int]] = {}
    for entry in instance.all_logs(run_id):
        m = TRANSFER_LINE.search(entry.user_message or "")
        if m and entry.step_key:
            out[entry.step_key] = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("distributed")
    with redis_server() as redis_url, postgres_server() as postgres_url, s3_server(BUCKET) as (endpoint, gate):
        # The run processes' instance; every worker gets a DAGSTER_HOME of its own with the same config.
        env = os.environ | postgres_dagster_home(tmp / "dagster", postgres_url, INSTANCE_YAML)
        env |= S3_CREDENTIALS | {
            "AWS_ENDPOINT_URL": endpoint,
            "LEROBOT_ASSETS_HOME": HOME,
            "LEROBOT_ASSETS_LOCAL": str(tmp / "runs-local"),
            "SDL_VIDEODRIVER": "dummy",
            "SVT_LOG": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery runs `celery` from PATH
        }
        run_config = tmp / "run_config.yaml"
        run_config.write_text(
            yaml.safe_dump(
                {"execution": _execution_config(redis_url), "resources": {"home": {"config": _home_config()}, "sim": {"config": TINY_SIM}}}
            )
        )
        # The first process that opens the empty database creates Dagster's tables; two workers starting
        # at once both try, and one fails (`type "concurrency_slots" already exists`).
        os.environ["DAGSTER_POSTGRES_URL"] = env["DAGSTER_POSTGRES_URL"]
        dg.DagsterInstance.from_config(env["DAGSTER_HOME"]).dispose()
        workers: list[Worker] = []
        try:
            workers += [_start_worker(env, tmp, postgres_url, name, run_config) for name in ("w1", "w2")]
            _wait_ready(workers)
            yield Cluster(env, tmp, postgres_url, endpoint, gate, run_config, workers)
        finally:
            for w in workers:
                _stop_worker(w)
            os.environ.pop("DAGSTER_POSTGRES_URL", None)


def _cli(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{args[:4]} failed:\n{out[-4000:]}"
    return out


def _frames(root: str, **kwargs: Any) -> list[dict[str, Any]]:
    from lerobot_assets.loading import LeRobotV3Dataset

    ds = LeRobotV3Dataset(root, return_uint8=True, **kwargs)
    return [ds[i] for i in range(len(ds))]


def _mirror(cluster: Cluster, rel: str, dest: Path) -> str:
    """Copy the published prefix `rel` as it is on the server (its pointer and the version it names)
    to `dest`; returns the version."""
    from lerobot_assets.format.versions import POINTER, follow_pointer

    fs = cluster.fs()
    version = follow_pointer(fs, _remote(rel))
    assert version != _remote(rel), f"{rel} has no pointer"
    dest.mkdir(parents=True)
    fs.get_file(posixpath.join(_remote(rel), POINTER), str(dest / POINTER))
    fs.get(version + "/", str(dest / posixpath.basename(version)) + "/", recursive=True)
    return posixpath.basename(version)


def _assert_same_dataset(cluster: Cluster, got: Path, want: Path) -> None:
    """`got` (the local copy of the published merged dataset) equals `want`; the frames are read from the
    remote prefix itself, through its pointer."""
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
    fa = _frames(f"{HOME}/{MERGED}", storage_options={"endpoint_url": cluster.endpoint})
    fb = _frames(str(want))
    assert len(fa) == len(fb) == a.info.total_frames
    assert_frames_equal(fa, fb)


def test_sessions_on_two_celery_workers_then_merge(cluster: Cluster, tmp_path: Path) -> None:
    from lerobot_assets.checks import validate_dataset
    from lerobot_assets.defs.definitions import defs
    from lerobot_assets.format import DatasetMeta
    from lerobot_assets.format.versions import POINTER

    t0 = time.monotonic()
    # On a remote home, the CLI registers into $DAGSTER_HOME's instance (here: PostgreSQL).
    _cli([str(BIN / "lerobot-assets"), "register-sim", "--home", HOME, "--sessions", "3", "--episodes", "2"], cluster.env)
    with cluster.instance() as instance:
        assert set(instance.get_dynamic_partitions("sessions")) == set(SESSIONS)
    register_s, t0 = time.monotonic() - t0, time.monotonic()
    launched = {s: _launch(cluster, s) for s in SESSIONS}
    for s, proc in launched.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{s}:\n{out[-4000:]}"
    sessions_s = time.monotonic() - t0

    names = {f"{w.name}@{os.uname().nodename}": w.pid for w in cluster.workers}
    used_names: set[str] = set()
    used_pids: set[int] = set()
    crossed = 0
    with cluster.instance() as instance:
        for s in SESSIONS:
            [run] = _run_of(instance, s)
            assert run.status == dg.DagsterRunStatus.SUCCESS
            cluster.runs[s] = run.run_id
            placement = _placement(instance, run.run_id)
            steps = _step_seconds(instance, run.run_id)
            wall = steps.pop("(run)")
            print(
                f"{s}: run {wall:.1f} s, steps " + ", ".join(f"{k} {v:.1f} s ({placement[k][0].split('@')[0]})" for k, v in steps.items())
            )
            assert set(placement) >= {"raw_episodes", "session_build"}, placement
            for step, (worker, pids) in placement.items():
                # Every step ran in a celery worker, and its events came from that worker's process.
                assert worker in names, f"{s}/{step} ran in {worker!r}, not in {sorted(names)}"
                # ... one delivery, in one pool process, a child of that worker's main process.
                assert len(pids) == 1 and _parent(next(iter(pids))) == names[worker], f"{s}/{step}: {worker}, pids {pids}"
                used_names.add(worker)
                used_pids |= pids
            # The raw episodes reach session_build through S3 when another worker wrote them, from
            # the worker's version cache (no bytes moved) when the same one did.
            moved = _transfers(instance, run.run_id)
            assert moved["raw_episodes"][0] > 0, moved
            _, downloaded, reused = moved["session_build"]
            if placement["raw_episodes"][0] != placement["session_build"][0]:
                crossed += 1
                assert downloaded > 0 and reused == 0, moved
            else:
                assert downloaded == 0 and reused == 1, moved
        assert instance.get_materialized_partitions(dg.AssetKey("session_dataset")) == set(SESSIONS)
    assert used_names == set(names), f"steps ran only in {used_names}"
    assert {_parent(pid) for pid in used_pids} == set(names.values())
    # Each worker worked in its own local dir (workspaces removed after the steps, the cache kept),
    # and the sessions are on the server, published.
    for w in cluster.workers:
        [local] = list(w.local.iterdir())
        assert not any((local / "work").iterdir()) and any((local / "cache").iterdir()), w.name
    fs = cluster.fs()
    for s in SESSIONS:
        for rel in (f"sessions/{s}", f"raw/{s}"):
            assert fs.isfile(posixpath.join(_remote(rel), POINTER)), rel

    # dataset_job: one in-process run on the same PostgreSQL instance and remote home, as `lerobot-assets demo` runs it.
    t0 = time.monotonic()
    with cluster.instance() as instance:
        result = defs.resolve_job_def("dataset_job").execute_in_process(
            instance=instance,
            run_config={"resources": {"home": {"config": _home_config(cluster.tmp / "test-local")}}},
            raise_on_error=False,
        )
        assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
        print("dataset_job steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in _step_seconds(instance, result.run_id).items()))
    dataset_s = time.monotonic() - t0

    # The published merged dataset: validated as published (pointer and version, copied byte for
    # byte), read through its remote pointer, and equal to the oracle's.
    t0 = time.monotonic()
    mirror = tmp_path / "published"
    version = _mirror(cluster, MERGED, mirror)
    report = validate_dataset(mirror)  # follows the copied pointer
    assert report.ok and report.root == (mirror / version).absolute(), [str(p) for p in report.problems]
    remote_meta = DatasetMeta(f"{HOME}/{MERGED}", storage_options={"endpoint_url": cluster.endpoint})
    assert remote_meta.version == version and remote_meta.info.total_episodes == 6

    # The oracle: the same sessions built in one process on a SQLite instance and a local home, then merged.
    oracle = tmp_path / "oracle"
    with dg.instance_for_test() as instance:
        for s in SESSIONS:
            assert materialize_session(instance, oracle, s).success
        assert materialize_dataset(instance, oracle).success
    _assert_same_dataset(cluster, mirror / version, oracle / "datasets" / "lerobot_dataset")
    print(
        f"register-sim {register_s:.1f} s; 3 sessions on 2 celery workers {sessions_s:.1f} s ({crossed} of 3 moved raw episodes between "
        f"workers through S3); dataset_job on the S3 home {dataset_s:.1f} s; validation, in-process oracle and "
        f"comparison {time.monotonic() - t0:.1f} s"
    )


def _listing(cluster: Cluster, rel: str) -> dict[str, tuple[int, str]]:
    """Every object under `rel` on the server: path relative to it -> (size, ETag)."""
    root = _remote(rel)
    found = cluster.fs().find(root, detail=True)
    return {posixpath.relpath(k, root): (int(v["size"]), str(v.get("ETag"))) for k, v in found.items() if v.get("type") == "file"}


def _published(cluster: Cluster) -> dict[str, tuple[bytes, dict[str, tuple[int, str]]]]:
    """What was published before the kills: each prefix's pointer bytes and every object under it."""
    from lerobot_assets.format.versions import POINTER

    fs = cluster.fs()
    rels = [*(f"sessions/{s}" for s in SESSIONS), *(f"raw/{s}" for s in SESSIONS), MERGED]
    return {rel: (fs.cat_file(posixpath.join(_remote(rel), POINTER)), _listing(cluster, rel)) for rel in rels}


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


def _wait_for_upload(cluster: Cluster, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    """Until the gate stored the first object of the killed session's new version and holds another:
    the step is then stuck inside its publication."""
    deadline = time.monotonic() + timeout
    while not (cluster.gate.stored.wait(0.05) and cluster.gate.held > 0):
        assert proc.poll() is None, f"run ended before publishing:\n{proc.communicate()[0][-3000:]}"
        assert time.monotonic() < deadline, f"session_build of {KILLED} did not publish within {timeout} s"


def _versions(listing: dict[str, tuple[int, str]]) -> set[str]:
    return {k.split("/")[0] for k in listing if k.startswith("v-")}


def _step_publishing(cluster: Cluster, proc: subprocess.Popen[str]) -> tuple[str, str, Worker, int]:
    """(run id, worker name, worker, pool-process PID) of KILLED's session_build once its upload is held mid-way by
    the gate: the moment to kill it."""
    _wait_for_upload(cluster, proc)
    run_id, worker_name, pid = _wait_for_step(cluster, KILLED, "session_build", proc)
    [victim] = [w for w in cluster.workers if worker_name.startswith(f"{w.name}@")]
    assert _parent(pid) == victim.pid
    return run_id, worker_name, victim, pid


def test_pool_process_killed_mid_publication(cluster: Cluster) -> None:
    if not cluster.runs:
        pytest.skip("needs the sessions of test_sessions_on_two_celery_workers_then_merge")
    published = _published(cluster)
    with cluster.instance() as instance:
        instance.add_dynamic_partitions("sessions", [KILLED])

    cluster.gate.arm(KILLED_VERSIONS)
    proc = _launch(cluster, KILLED)
    try:
        run_id, _, victim, pid = _step_publishing(cluster, proc)
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
    finally:
        cluster.gate.release()  # the held uploads of the dead process are answered 503, never stored
    t_kill = time.monotonic()
    out, _ = proc.communicate(timeout=180)
    print(f"killed the pool process {pid} of {victim.name} publishing session_build ({cluster.gate.held} uploads held); "
          f"the run ended {time.monotonic() - t_kill:.1f} s later")  # fmt: skip
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

    # On the server: a half-written version (no info.json), no pointer; nothing published before changed.
    left = _listing(cluster, f"sessions/{KILLED}")
    assert cluster.gate.held > 0 and left and _versions(left) == {"v-000001"}, left
    assert "current.json" not in left and not any(k.endswith("meta/info.json") for k in left), left
    assert _published(cluster) == published


def test_worker_main_process_killed_then_rerun_completes(cluster: Cluster, tmp_path: Path) -> None:
    from lerobot_assets.checks import validate_dataset
    from lerobot_assets.format import DatasetMeta
    from lerobot_assets.format.versions import read_pointer

    if not cluster.runs:
        pytest.skip("needs the sessions of test_sessions_on_two_celery_workers_then_merge")
    published = _published(cluster)
    before = _versions(_listing(cluster, f"sessions/{KILLED}"))  # v-000001, left by the pool-process kill
    with cluster.instance() as instance:
        if not instance.has_dynamic_partition("sessions", KILLED):
            instance.add_dynamic_partitions("sessions", [KILLED])

    # The re-run; its session_build is killed with its worker's main process while publishing.
    cluster.gate.arm(KILLED_VERSIONS)
    rerun = _launch(cluster, KILLED)
    try:
        run_id, worker_name, victim, pid = _step_publishing(cluster, rerun)
        main = victim.pid
        os.kill(main, signal.SIGKILL)
        _wait_gone(main, pid)  # the pool process dies with its main process (PR_SET_PDEATHSIG)
    finally:
        cluster.gate.release()
    half_written = _versions(_listing(cluster, f"sessions/{KILLED}"))
    assert len(half_written - before) == 1 and before <= half_written, (before, half_written)
    t_kill = time.monotonic()

    # A replacement worker (a new machine: its own local dir) whose Redis transport hands out, when it
    # starts, the steps left unacknowledged for over 1 s, and never scans again (a short timeout on a
    # long-lived worker would hand out steps that are still running).
    config = yaml.safe_load(cluster.run_config.read_text())
    config["execution"]["config"]["config_source"]["broker_transport_options"] |= {
        "visibility_timeout": 1,
        "unacked_restore_interval": 3600,
    }
    replacement_config = tmp_path / "run_config_replacement.yaml"
    replacement_config.write_text(yaml.safe_dump(config))
    replacement = _start_worker(cluster.env, cluster.tmp, cluster.postgres_url, "w3", replacement_config)
    cluster.workers.append(replacement)
    _wait_ready([replacement])
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, out[-4000:]
    print(f"killed the main process {main} of {victim.name} (and its pool process {pid}) publishing session_build; "
          f"the re-run completed {time.monotonic() - t_kill:.1f} s later")  # fmt: skip

    live = {f"{w.name}@{os.uname().nodename}": w.pid for w in cluster.workers if w is not victim}
    with cluster.instance() as instance:
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS  # type: ignore[union-attr]
        assert KILLED in instance.get_materialized_partitions(dg.AssetKey("session_dataset"))
        events = [e.dagster_event for e in instance.all_logs(run_id) if e.dagster_event and e.step_key == "session_build"]
        T = dg.DagsterEventType
        delivered = [
            str(e.engine_event_data.metadata["Celery worker"].value)
            for e in events
            if e.event_type == T.ENGINE_EVENT and "in celery worker" in (e.message or "")
        ]
        starts = [e.pid for e in events if e.event_type == T.STEP_START]
        [done] = [e.pid for e in events if e.event_type == T.STEP_SUCCESS]
        # Delivered twice: to the killed worker, then (redelivered by Redis) to a live one, where it ran again.
        assert delivered[0] == worker_name and delivered[1] in live and len(delivered) == 2, delivered
        assert done is not None and starts == [pid, done] and _parent(done) == live[delivered[1]], (starts, done)

    # The publication of the re-run deleted both half-written versions; the session is valid.
    left = _listing(cluster, f"sessions/{KILLED}")
    pointer = read_pointer(cluster.fs(), _remote(f"sessions/{KILLED}"))
    assert pointer is not None and pointer.previous is None and pointer.version not in half_written
    assert _versions(left) == {pointer.version}, sorted(left)
    mirror = tmp_path / "session"
    _mirror(cluster, f"sessions/{KILLED}", mirror)
    assert validate_dataset(mirror).ok
    assert DatasetMeta(mirror).info.total_episodes == 3
    # Nothing published before the kills changed.
    assert _published(cluster) == published
