"""Services for the distributed tests and benchmarks (this module holds no tests): a Redis broker, a
PostgreSQL 15 instance and an S3-compatible server (moto), each started on a free loopback port (Redis
and PostgreSQL in their own temp directory) and stopped (then removed) when the `with` block ends,
whether it ends normally or by an exception.

Debian's packages (`redis-server`, `postgresql`; `make test` installs them) provide the binaries.
PostgreSQL refuses to run as root, so as root initdb and pg_ctl run as the `postgres` user, and the
data directory lives under /tmp (pytest's tmp_path is private to root, so `postgres` could not enter it).
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from sql_fixtures import forget_s3_clients

REDIS_SERVER = "redis-server"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on 127.0.0.1:{port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; by PID only (never by name)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def redis_available() -> bool:
    return shutil.which(REDIS_SERVER) is not None


def postgres_bin() -> Path | None:
    import glob

    found = sorted(glob.glob(PG_BIN_GLOB))
    return Path(found[-1]) if found and (Path(found[-1]) / "initdb").is_file() else None


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server (no persistence) on a free port; yields its URL `redis://127.0.0.1:P`."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="lerobot-redis-"))
    log = open(workdir / "redis.log", "wb")  # noqa: SIM115 (closed in finally)
    # In the foreground (no --daemonize): the Popen is the server, so it is stopped by its own PID.
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port(port, 15, proc, "redis-server")
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _as_postgres(args: list[str]) -> list[str]:
    """Run as the `postgres` user when we are root (PostgreSQL refuses root), else as ourselves."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (trust auth, loopback only, fsync off); yields its URL
    `postgresql://postgres@127.0.0.1:P/postgres`. The cluster is stopped (immediate) and its
    directory removed when the block ends."""
    bindir = postgres_bin()
    if bindir is None:
        raise FileNotFoundError(f"no PostgreSQL binaries under {PG_BIN_GLOB} (apt-get install postgresql)")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="lerobot-pg-"))
    data, sock, log = workdir / "data", workdir / "sock", workdir / "postgres.log"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    started = False
    try:
        subprocess.run(
            _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        started = True  # from here on a stop is attempted, even if start fails half-way
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"]),
            check=True,
            capture_output=True,
            timeout=90,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as e:
        tail = log.read_text()[-2000:] if log.is_file() else ""
        raise RuntimeError(f"{e.cmd[-1] if e.cmd else 'postgres'} failed: {e.stderr.decode(errors='replace')[-2000:]}\n{tail}") from e
    finally:
        if started:
            subprocess.run(
                _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(workdir, ignore_errors=True)


def postgres_dagster_home(root: Path, postgres_url: str, template: Path) -> dict[str, str]:
    """A DAGSTER_HOME at `root` whose dagster.yaml is `template` (which reads the PostgreSQL URL from
    $DAGSTER_POSTGRES_URL); returns the environment variables a process needs to use it.

    The URL names the psycopg2 driver: SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3,
    which dagster-postgres does not install ("No module named 'psycopg'")."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, root / "dagster.yaml")
    url = postgres_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    return {"DAGSTER_HOME": str(root), "DAGSTER_POSTGRES_URL": url}


# Dummy credentials of the moto server: s3fs/botocore refuse to sign without some. A process using the
# server needs these and AWS_ENDPOINT_URL in its environment.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class UploadGate:
    """WSGI middleware in front of the S3 server that makes a kill land inside a publication.

    Armed with a path fragment (e.g. `/bucket/home/sessions/S/v-`), it lets the first upload (PUT or
    POST) under it through and holds every later one until `release()`, which answers them 503 without
    storing anything. A step killed while held so leaves exactly what a kill in the middle of uploading
    a version leaves: some objects of `v-<n>/`, no `meta/info.json`, no new pointer. Every other
    request, and every request while not armed, goes straight through.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._fragment: str | None = None
        self._passed = 0
        self._released = threading.Event()
        self.stored = threading.Event()  # set once the upload let through is stored
        self.held = 0  # uploads held since the last arm()

    def arm(self, fragment: str) -> None:
        with self._lock:
            self._fragment, self._passed, self.held = fragment, 0, 0
            self.stored.clear()
            self._released.clear()

    def release(self) -> None:
        with self._lock:
            self._fragment = None
            self._released.set()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        upload = environ.get("REQUEST_METHOD") in ("PUT", "POST")
        with self._lock:
            gated = upload and self._fragment is not None and self._fragment in environ.get("PATH_INFO", "")
            first = gated and self._passed == 0
            if gated and first:
                self._passed += 1
            elif gated:
                self.held += 1
        if gated and not first:
            self._released.wait(120)
            start_response("503 Slow Down", [("Content-Type", "application/xml")])
            return [b"<Error><Code>SlowDown</Code><Message>held by the test, then dropped</Message></Error>"]
        response = self.app(environ, start_response)  # moto stores the object before it answers
        if first:
            self.stored.set()
        return response


@contextlib.contextmanager
def s3_server(bucket: str) -> Iterator[tuple[str, UploadGate]]:
    """A moto S3 server on a free loopback port, in a thread of this process, with `bucket` created;
    yields (endpoint URL, the UploadGate in front of it). Other processes reach it over HTTP.

    moto keeps its buckets per process, not per server: the state is reset first, so objects an earlier
    test of this process uploaded do not show up. The dummy credentials (S3_CREDENTIALS) and
    AWS_ENDPOINT_URL are set in this process's environment for the duration."""
    import boto3
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:  # thousands of requests: no line each
            pass

    gate = UploadGate(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, gate, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    env = S3_CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint}
    environment = mock.patch.dict(os.environ, env)
    environment.start()
    try:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
        # region us-east-1: a create_bucket elsewhere needs a location constraint that moto checks
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        yield endpoint, gate
    finally:
        gate.release()
        server.shutdown()
        thread.join(30)
        forget_s3_clients()
        environment.stop()
