"""A data home on object storage (lerobot_assets.home.remote), on a real S3-compatible server (moto on
loopback):

- publication: a directory becomes `v-<n>/` beside a `current.json` written last; unchanged files of
  the next version are copied on the server, only changed ones uploaded; current + previous are kept;
- a publication that dies half-way (an upload error, or the process SIGKILLed) leaves the pointer and
  what readers see unchanged, a half version without meta/info.json, removed by the next publication
  or `collect_garbage`;
- the local version cache: a second pull moves no byte, a fresh cache downloads exactly the published
  bytes, a file changed in place through the cache's hard link is uploaded, not copied;
- PublishConflict; symlinks recorded in the pointer; pointers and paths that would leave the home;
- Dagster end to end: sessions, the merged dataset, stats, byte index and the SQL models on an S3
  home give the same dataset as on a local home, an append re-uploads only what changed, and a
  failed step publishes nothing.

"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest
from helpers import assert_frames_equal
from sql_fixtures import moto_s3
from test_defs_support import (
    FIXTURE,
    add_sessions,
    checks,
    dataset_defs,
    failure_messages,
    materialized,
    metadata,
    resources,
    session_defs,
)

from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.format.versions import POINTER, POINTER_FORMAT, Pointer, PointerError, follow_pointer
from lerobot_assets.home.remote import CLAIM, PROCESS_TRANSFER, PublishConflict, RemoteHome, Transfer, check_rel

s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

REL = "datasets/tiny"


# --------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_s3() as ep:
        yield ep


@dataclass
class S3Home:
    endpoint: str
    url: str  # s3://lerobot/<unique prefix>
    root: str  # lerobot/<unique prefix>
    fs: Any  # a filesystem of our own, without s3fs's listing cache: what any other reader sees
    tmp: Path

    def home(self, local: str = "local") -> RemoteHome:
        return RemoteHome(self.url, local_dir=self.tmp / local)

    def listing(self, rel: str) -> dict[str, int]:
        """{path relative to rel: size} of every object under rel, but each version's claim record
        (`.publish.json`, the publisher's, not the dataset's)."""
        base = f"{self.root}/{rel}".rstrip("/")
        found = self.fs.find(base, detail=True)
        return {
            name[len(base) + 1 :]: int(info["size"])
            for name, info in found.items()
            if info.get("type") == "file" and not name.endswith("/" + CLAIM)
        }

    def claims(self, rel: str) -> list[str]:
        """The versions under rel that hold a claim record."""
        base = f"{self.root}/{rel}".rstrip("/")
        return sorted(name[len(base) + 1 :].split("/", 1)[0] for name in self.fs.find(base) if name.endswith("/" + CLAIM))

    def digests(self, rel: str) -> dict[str, str]:
        return {name: sha(self.fs.cat_file(f"{self.root}/{rel}/{name}")) for name in self.listing(rel)}

    def versions(self, rel: str) -> list[str]:
        return sorted({name.split("/", 1)[0] for name in self.listing(rel) if name.startswith("v-")})

    def pointer(self, rel: str) -> Pointer:
        return Pointer.model_validate_json(self.fs.cat_file(f"{self.root}/{rel}/{POINTER}"))


@pytest.fixture
def s3(endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3Home:
    """A fresh home prefix on the module's moto server; AWS_ENDPOINT_URL points RemoteHome/DataHome at it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.delenv("FSSPEC_S3_ENDPOINT_URL", raising=False)
    prefix = f"home-{uuid.uuid4().hex[:10]}"
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True, use_listings_cache=False)
    return S3Home(endpoint, f"s3://lerobot/{prefix}", f"lerobot/{prefix}", fs, tmp_path)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local_files(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def local_digests(root: Path) -> dict[str, str]:
    return {rel: sha((root / rel).read_bytes()) for rel in local_files(root)}


def fixture_copy(dest: Path) -> Path:
    shutil.copytree(FIXTURE, dest)
    return dest


def replace_file(path: Path, data: bytes) -> None:
    """Write as every writer of the project does: a new file renamed over the old (breaks the hard link)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_in_place(path: Path, data: bytes) -> None:
    """Overwrite the start of `path` through its inode (the hard link into the cache is kept)."""
    time.sleep(0.02)  # a later mtime even on kernels with coarse file timestamps
    with open(path, "r+b") as f:
        f.write(data)


def delta(before: Transfer, after: Transfer) -> dict[str, int]:
    return {k: getattr(after, k) - getattr(before, k) for k in before.as_dict()}


def snapshot(t: Transfer) -> Transfer:
    return Transfer(**t.as_dict())


# ------------------------------------------------------------------------------------------ publication


def test_publish_versions_server_copy_and_keep_two(s3: S3Home) -> None:
    home = s3.home()
    want = local_files(FIXTURE)
    assert "meta/info.json" in want and len(want) >= 6

    before = snapshot(home.transfer)
    p1 = home.publish(REL, fixture_copy(s3.tmp / "src"))
    assert (p1.version, p1.previous, p1.files, p1.bytes, p1.links) == ("v-000001", None, len(want), sum(want.values()), {})
    assert s3.pointer(REL) == p1
    assert p1.format == POINTER_FORMAT and p1.published_at.endswith("Z")
    assert s3.listing(REL) == {POINTER: s3.listing(REL)[POINTER]} | {f"v-000001/{k}": v for k, v in want.items()}
    assert s3.digests(f"{REL}/v-000001") == local_digests(FIXTURE)
    d = delta(before, home.transfer)
    assert (d["uploaded"], d["files_uploaded"], d["server_copied"], d["files_copied"], d["downloaded"]) == (
        sum(want.values()), len(want), 0, 0, 0
    )

    # Second version: one file replaced in a workspace pulled from v-000001.
    new_stats = b'{"changed": true}\n' * 3
    before = snapshot(home.transfer)
    with home.workspace("second") as ws:
        assert ws.pull(REL)
        replace_file(ws.layout.root / REL / "meta/stats.json", new_stats)
        ws.write(REL)
    d = delta(before, home.transfer)
    unchanged = {k: v for k, v in want.items() if k != "meta/stats.json"}
    assert d == {
        "uploaded": len(new_stats),
        "downloaded": 0,
        "server_copied": sum(unchanged.values()),
        "files_uploaded": 1,
        "files_downloaded": 0,
        "files_copied": len(unchanged),
        "cache_hits": 1,  # v-000001 was adopted into the cache when it was published
    }
    p2 = s3.pointer(REL)
    assert (p2.version, p2.previous, p2.files, p2.bytes) == ("v-000002", "v-000001", len(want), sum(unchanged.values()) + len(new_stats))
    assert s3.digests(f"{REL}/v-000002") == local_digests(FIXTURE) | {"meta/stats.json": sha(new_stats)}
    assert s3.versions(REL) == ["v-000001", "v-000002"]  # the previous version stays for readers mid-read

    # Third version: a file added; v-000001 (neither current nor previous) is deleted.
    with home.workspace("third") as ws:
        ws.pull(REL)
        (ws.layout.root / REL / "meta/extra.txt").write_text("more")
        ws.write(REL)
    p3 = s3.pointer(REL)
    assert (p3.version, p3.previous, p3.files) == ("v-000003", "v-000002", len(want) + 1)
    assert s3.versions(REL) == ["v-000002", "v-000003"]
    assert s3.fs.cat_file(f"{s3.root}/{REL}/v-000003/meta/extra.txt") == b"more"
    assert s3.digests(f"{REL}/v-000003")["meta/stats.json"] == sha(new_stats)
    # Readers that follow the pointer read the third version.
    meta = DatasetMeta(f"{s3.url}/{REL}", storage_options={"endpoint_url": s3.endpoint})
    assert meta.version == "v-000003"
    assert meta.info.total_episodes == DatasetMeta(FIXTURE).info.total_episodes


def test_plain_file_is_one_object_and_transfer_counts_it(s3: S3Home) -> None:
    home = s3.home()
    record = s3.tmp / "rec.json"
    record.write_text(json.dumps({"passed": True}))
    before = snapshot(PROCESS_TRANSFER)
    with home.workspace("plain") as ws:
        target = ws.layout.root / "checks" / "s.json"
        target.parent.mkdir(parents=True)
        shutil.copy(record, target)
        ws.write("checks/s.json")
        ws.write("previews/absent.png")  # nothing produced there: nothing published, no error
    assert s3.listing("") == {"checks/s.json": record.stat().st_size}
    d = delta(before, PROCESS_TRANSFER)  # the process-wide counters move with the home's
    assert (d["uploaded"], d["files_uploaded"]) == (record.stat().st_size, 1)
    with s3.home("other").workspace("read") as ws:
        assert ws.pull("checks/s.json")
        assert json.loads((ws.layout.root / "checks/s.json").read_text()) == {"passed": True}
        assert not ws.pull("checks/missing.json")


# ------------------------------------------------------------------------------- killed publications


def _assert_readers_see_fixture(s3: S3Home, version: str) -> None:
    meta = DatasetMeta(f"{s3.url}/{REL}", storage_options={"endpoint_url": s3.endpoint})
    fixture = DatasetMeta(FIXTURE)
    assert meta.version == version
    assert (meta.info.total_episodes, meta.info.total_frames) == (fixture.info.total_episodes, fixture.info.total_frames)
    assert meta.tasks == fixture.tasks
    assert follow_pointer(s3.fs, f"{s3.root}/{REL}") == f"{s3.root}/{REL}/{version}"
    cached = s3.home(f"reader-{uuid.uuid4().hex[:6]}").fetch(REL)
    assert cached is not None and cached.version == version
    assert local_digests(cached.path) == local_digests(FIXTURE)


def test_publish_failing_mid_upload_changes_nothing_readers_see(s3: S3Home, monkeypatch: pytest.MonkeyPatch) -> None:
    home = s3.home()
    home.publish(REL, fixture_copy(s3.tmp / "v1"))
    real = home.fs._put_file
    uploaded: list[str] = []
    done: list[str] = []

    async def lose_network(lpath: str, rpath: str, *args: Any, **kwargs: Any) -> Any:
        if len(uploaded) < 2:
            uploaded.append(rpath)
            result = await real(lpath, rpath, *args, **kwargs)
            done.append(rpath)
            return result
        while len(done) < 2:  # the two uploads above complete first
            await asyncio.sleep(0.01)
        raise ConnectionError("simulated network loss")

    for attempt in (1, 2):
        src = fixture_copy(s3.tmp / f"broken{attempt}")
        replace_file(src / "meta/stats.json", b"{}")  # a different dataset, so nothing is a copy
        uploaded.clear()
        done.clear()
        with monkeypatch.context() as m, pytest.raises(ConnectionError, match="simulated"):
            m.setattr(home.fs, "_put_file", lose_network)
            home.publish(REL, src)
        assert s3.pointer(REL).version == "v-000001"
        _assert_readers_see_fixture(s3, "v-000001")
        half = s3.listing(f"{REL}/v-000002")
        assert set(half) == {u.split("/v-000002/", 1)[1] for u in uploaded} and len(half) == 2
        assert "meta/info.json" not in half  # uploaded last: a plain reader of v-000002 finds no dataset
        if attempt == 1:
            # Claimed a moment ago, it may be a publication in flight: kept by default...
            assert home.collect_garbage(REL) == [] and "v-000002" in s3.versions(REL)
            # ...and collected once old enough (here: no minimum age).
            assert home.collect_garbage(REL, min_age_s=0) == ["v-000002"]
            assert s3.versions(REL) == ["v-000001"]
            assert home.collect_garbage(REL, min_age_s=0) == []

    # The next successful publication removes the half version and takes the next number.
    p = home.publish(REL, fixture_copy(s3.tmp / "v3"))
    assert (p.version, p.previous) == ("v-000003", "v-000001")
    assert s3.versions(REL) == ["v-000001", "v-000003"]
    _assert_readers_see_fixture(s3, "v-000003")


CHILD = """
import asyncio, sys
from pathlib import Path
from lerobot_assets.home.remote import RemoteHome
url, local, src, marker = sys.argv[1:5]
home = RemoteHome(url, local_dir=Path(local))
real = home.fs._put_file
async def put_file(lpath, rpath, *args, **kwargs):
    if rpath.endswith("meta/info.json"):  # every other file is up: wait here to be killed
        Path(marker).write_text("uploading info.json")
        await asyncio.sleep(600)
    return await real(lpath, rpath, *args, **kwargs)
home.fs._put_file = put_file
home.publish(sys.argv[5], Path(src))
"""


def _killed_publish(s3: S3Home, src: Path) -> None:
    """Publish `src` as REL in a child process, SIGKILLed while it uploads meta/info.json."""
    marker = s3.tmp / f"marker-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, s3.url, str(s3.tmp / "child"), str(src), str(marker), REL],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None, f"child exited early:\n{proc.stdout.read().decode() if proc.stdout else ''}"
            assert time.monotonic() < deadline, "child never reached meta/info.json"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def test_publish_sigkilled_mid_upload(s3: S3Home) -> None:
    home = s3.home()
    home.publish(REL, fixture_copy(s3.tmp / "v1"))
    src = fixture_copy(s3.tmp / "killed")
    (src / "extra").mkdir()
    (src / "extra/leftover.bin").write_bytes(b"from the killed publish")
    _killed_publish(s3, src)

    assert s3.pointer(REL).version == "v-000001"
    _assert_readers_see_fixture(s3, "v-000001")
    half = s3.listing(f"{REL}/v-000002")
    assert set(half) == set(local_files(src)) - {"meta/info.json"}  # everything but the entry point
    # A reader given the half version's prefix finds no dataset.
    with pytest.raises(FileNotFoundError):
        DatasetMeta(f"{s3.url}/{REL}/v-000002", storage_options={"endpoint_url": s3.endpoint})

    with home.workspace("after-kill") as ws:
        ws.pull(REL)
        replace_file(ws.layout.root / REL / "meta/stats.json", b'{"after": "kill"}')
        ws.write(REL)
    p = s3.pointer(REL)
    assert (p.version, p.previous) == ("v-000003", "v-000001")
    assert s3.versions(REL) == ["v-000001", "v-000003"]
    assert set(s3.listing(f"{REL}/v-000003")) == set(local_files(FIXTURE))


def test_publish_after_other_process_was_killed_with_a_cached_listing(s3: S3Home) -> None:
    home = s3.home()
    home.publish(REL, fixture_copy(s3.tmp / "v1"))
    assert home.collect_garbage(REL) == []  # lists the prefix in this process (s3fs caches the listing)
    src = fixture_copy(s3.tmp / "killed")
    (src / "extra").mkdir()
    (src / "extra/leftover.bin").write_bytes(b"from the killed publish")
    _killed_publish(s3, src)
    assert "extra/leftover.bin" in s3.listing(f"{REL}/v-000002")

    p = home.publish(REL, fixture_copy(s3.tmp / "next"))
    published = s3.listing(f"{REL}/{p.version}")
    assert set(published) == set(local_files(FIXTURE)), f"{p.version} holds {sorted(set(published) - set(local_files(FIXTURE)))} too"
    assert len(published) == p.files


# ------------------------------------------------------------------------------------------------ cache


def test_cache_hits_fresh_downloads_and_in_place_change(s3: S3Home) -> None:
    p1 = s3.home().publish(REL, fixture_copy(s3.tmp / "src"))

    # The same local_dir (another RemoteHome, as another step of the same machine): no byte moves.
    home = s3.home()
    before = snapshot(home.transfer)
    with home.workspace("a") as ws1, home.workspace("b") as ws2:
        assert ws1.pull(REL) and ws2.pull(REL)
        for rel in local_files(FIXTURE):
            assert (ws1.layout.root / REL / rel).samefile(ws2.layout.root / REL / rel)  # both hard links into the cache
        assert local_digests(ws1.layout.root / REL) == local_digests(FIXTURE)
    d = delta(before, home.transfer)
    assert (d["downloaded"], d["files_downloaded"], d["cache_hits"], d["uploaded"]) == (0, 0, 2, 0)

    # A fresh local_dir downloads exactly the published bytes, once.
    fresh = s3.home("fresh")
    before = snapshot(fresh.transfer)
    with fresh.workspace("c") as ws:
        ws.pull(REL)
        assert local_digests(ws.layout.root / REL) == local_digests(FIXTURE)
    with fresh.workspace("d") as ws:
        ws.pull(REL)
    d = delta(before, fresh.transfer)
    assert (d["downloaded"], d["files_downloaded"], d["cache_hits"]) == (p1.bytes, p1.files, 1)

    # A file written in place through the hard link is uploaded (its content changed), never copied.
    sizes = local_files(FIXTURE)
    target = "data/chunk-000/file-000.parquet"
    before = snapshot(fresh.transfer)
    with fresh.workspace("e") as ws:
        ws.pull(REL)
        write_in_place(ws.layout.root / REL / target, b"CHANGED!")
        ws.write(REL)
    d = delta(before, fresh.transfer)
    assert (d["uploaded"], d["files_uploaded"]) == (sizes[target], 1)
    assert (d["server_copied"], d["files_copied"]) == (p1.bytes - sizes[target], p1.files - 1)
    got = s3.fs.cat_file(f"{s3.root}/{REL}/v-000002/{target}")
    assert got[:8] == b"CHANGED!" and got[8:] == (FIXTURE / target).read_bytes()[8:]
    # v-000001 itself is untouched on the remote.
    assert s3.digests(f"{REL}/v-000001") == local_digests(FIXTURE)


def test_failed_step_writing_in_place_does_not_poison_the_cache(s3: S3Home) -> None:
    home = s3.home()
    home.publish(REL, fixture_copy(s3.tmp / "src"))
    target = "meta/stats.json"
    with pytest.raises(RuntimeError, match="step failed"), home.workspace("fails") as ws:
        ws.pull(REL)
        write_in_place(ws.layout.root / REL / target, b"XXXX")
        ws.write(REL)
        raise RuntimeError("step failed")
    assert s3.pointer(REL).version == "v-000001"
    with home.workspace("next") as ws:
        ws.pull(REL)
        replace_file(ws.layout.root / REL / "meta/other.txt", b"new")
        ws.write(REL)
        assert (ws.layout.root / REL / target).read_bytes() == (FIXTURE / target).read_bytes()
    assert s3.digests(f"{REL}/v-000002")[target] == sha((FIXTURE / target).read_bytes())


def test_refetch_after_in_place_change_serves_published_bytes(s3: S3Home, monkeypatch: pytest.MonkeyPatch) -> None:
    home = s3.home()
    p1 = home.publish(REL, fixture_copy(s3.tmp / "src"))
    target = "meta/stats.json"

    def network_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("network down")

    with monkeypatch.context() as m, pytest.raises(ConnectionError), home.workspace("fails") as ws:
        ws.pull(REL)
        write_in_place(ws.layout.root / REL / target, b"XXXX")
        ws.write(REL)
        m.setattr(home.fs, "put", network_down)  # publication fails after the change was seen
    before = snapshot(home.transfer)
    cached = home.fetch(REL)
    assert cached is not None and cached.version == "v-000001"
    assert delta(before, home.transfer)["downloaded"] == p1.bytes  # the manifest was dropped: downloaded again
    assert (cached.path / target).read_bytes() == (FIXTURE / target).read_bytes()


# --------------------------------------------------------------------------------------------- conflict


def test_publish_conflict_keeps_the_first_publication(s3: S3Home) -> None:
    s3.home().publish(REL, fixture_copy(s3.tmp / "src"))
    first, second = s3.home("one"), s3.home("two")
    with pytest.raises(PublishConflict) as err, second.workspace("w2") as ws2:
        ws2.pull(REL)
        replace_file(ws2.layout.root / REL / "meta/stats.json", b'{"by": "second"}')
        ws2.write(REL)
        work = ws2.layout.root
        with first.workspace("w1") as ws1:  # pulls the same version, and finishes first
            ws1.pull(REL)
            replace_file(ws1.layout.root / REL / "meta/stats.json", b'{"by": "first"}')
            ws1.write(REL)
    message = str(err.value)
    assert f"{s3.url}/{REL}" in message and "v-000001" in message and "v-000002" in message
    p = s3.pointer(REL)
    assert (p.version, p.previous) == ("v-000002", "v-000001")
    assert s3.fs.cat_file(f"{s3.root}/{REL}/v-000002/meta/stats.json") == b'{"by": "first"}'
    assert s3.versions(REL) == ["v-000001", "v-000002"]  # the loser uploaded nothing
    assert not work.exists()  # its workspace is removed all the same


def test_overlapping_publications_leave_a_complete_version(s3: S3Home, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.home().publish(REL, fixture_copy(s3.tmp / "src"))
    a_home, b_home = s3.home("a"), s3.home("b")
    outcomes: dict[str, str] = {}
    with a_home.workspace("a") as a, b_home.workspace("b") as b:
        a.pull(REL)
        b.pull(REL)
        (a.layout.root / REL / "meta/a.txt").write_text("A")
        (b.layout.root / REL / "meta/b.txt").write_text("B")
        real_put = a_home.fs.put
        state = {"b_ran": False}

        def put_while_b_publishes(*args: Any, **kwargs: Any) -> Any:
            if not state["b_ran"]:  # A has copied its unchanged files; B publishes now, then A goes on
                state["b_ran"] = True
                try:
                    b_home.publish(REL, b.layout.root / REL, b._bases[REL])
                    outcomes["b"] = "published"
                except PublishConflict:
                    outcomes["b"] = "conflict"
            return real_put(*args, **kwargs)

        with monkeypatch.context() as m:
            m.setattr(a_home.fs, "put", put_while_b_publishes)
            try:
                a_home.publish(REL, a.layout.root / REL, a._bases[REL])
                outcomes["a"] = "published"
            except PublishConflict:
                outcomes["a"] = "conflict"
    p = s3.pointer(REL)
    published = set(s3.listing(f"{REL}/{p.version}"))
    assert len(published) == p.files, f"the pointer names {p.version}, which holds {sorted(published)}"
    assert sorted(outcomes.values()) == ["conflict", "published"], outcomes
    winner = "meta/a.txt" if outcomes["a"] == "published" else "meta/b.txt"
    assert published == set(local_files(FIXTURE)) | {winner}


def test_cleanup_of_a_version_already_removed_does_not_fail_the_publish(s3: S3Home, monkeypatch: pytest.MonkeyPatch) -> None:
    home = s3.home()
    home.publish(REL, fixture_copy(s3.tmp / "src"))
    s3.fs.pipe_file(f"{s3.root}/{REL}/v-000002/data/half.parquet", b"half")  # a killed publish's leftover
    real_put = home.fs.put
    collected: list[list[str]] = []

    def put_while_collecting(*args: Any, **kwargs: Any) -> Any:
        if not collected:  # once, before this publication uploads anything
            collected.append(s3.home("gc").collect_garbage(REL))
        return real_put(*args, **kwargs)

    monkeypatch.setattr(home.fs, "put", put_while_collecting)
    try:
        p = home.publish(REL, fixture_copy(s3.tmp / "next"))
    finally:
        assert collected == [["v-000002"]]
        assert s3.pointer(REL).version == "v-000003"  # the switch happened either way
        assert s3.versions(REL) == ["v-000001", "v-000003"]
    assert p.version == "v-000003"


# --------------------------------------------------------------------------------------- links, paths


def test_relative_symlinks_round_trip(s3: S3Home) -> None:
    src = s3.tmp / "run"
    (src / "checkpoints/000010").mkdir(parents=True)
    (src / "checkpoints/000005").mkdir(parents=True)
    (src / "checkpoints/000010/model.safetensors").write_bytes(b"weights-10")
    (src / "checkpoints/000005/model.safetensors").write_bytes(b"weights-5")
    (src / "checkpoints/last").symlink_to("000010")
    (src / "best.safetensors").symlink_to("checkpoints/000005/model.safetensors")
    p = s3.home().publish("training/run", src)
    assert p.links == {"checkpoints/last": "000010", "best.safetensors": "checkpoints/000005/model.safetensors"}
    assert p.files == 2 and p.bytes == len(b"weights-10") + len(b"weights-5")
    # Object stores have no links: only the targets are objects.
    assert set(s3.listing("training/run/v-000001")) == {"checkpoints/000010/model.safetensors", "checkpoints/000005/model.safetensors"}

    cached = s3.home("fresh").fetch("training/run")
    assert cached is not None
    assert os.readlink(cached.path / "checkpoints/last") == "000010"
    assert (cached.path / "checkpoints/last/model.safetensors").read_bytes() == b"weights-10"
    assert os.readlink(cached.path / "best.safetensors") == "checkpoints/000005/model.safetensors"
    assert (cached.path / "best.safetensors").read_bytes() == b"weights-5"
    # ... and republishing the fetched copy keeps them.
    with s3.home("fresh").workspace("again") as ws:
        ws.pull("training/run")
        (ws.layout.root / "training/run/checkpoints/000010/extra.txt").write_text("x")
        ws.write("training/run")
    assert s3.pointer("training/run").links == p.links


def test_symlink_leaving_the_directory_is_not_published(s3: S3Home) -> None:
    src = s3.tmp / "run"
    src.mkdir()
    (s3.tmp / "outside.bin").write_bytes(b"secret")
    (src / "escape").symlink_to("../outside.bin")
    with pytest.raises(ValueError, match="leaves"):
        s3.home().publish("training/run", src)
    assert s3.listing("training") == {}


@pytest.mark.parametrize(
    ("name", "pointer", "message"),
    [
        ("bad-json", b"{not json", "not JSON"),
        ("escaping-version", json.dumps({"format": POINTER_FORMAT, "version": "../x"}).encode(), "'../x'"),
        ("escaping-previous", json.dumps({"format": POINTER_FORMAT, "version": "v-000001", "previous": "../../etc"}).encode(), "'../../etc'"),
        ("escaping-link", json.dumps({"format": POINTER_FORMAT, "version": "v-000001", "links": {"last": "../../x"}}).encode(), "leaves"),
        ("absolute-link", json.dumps({"format": POINTER_FORMAT, "version": "v-000001", "links": {"last": "/etc/passwd"}}).encode(), "leaves"),
        ("parent-link-name", json.dumps({"format": POINTER_FORMAT, "version": "v-000001", "links": {"../up": "x"}}).encode(), "leaves"),
        ("wrong-format", json.dumps({"format": "other@1", "version": "v-000001"}).encode(), "format"),
    ],
)
def test_bad_pointer_is_refused_naming_current_json(s3: S3Home, name: str, pointer: bytes, message: str) -> None:
    rel = f"datasets/{name}"
    s3.fs.pipe_file(f"{s3.root}/{rel}/v-000001/meta/info.json", b"{}")
    s3.fs.pipe_file(f"{s3.root}/{rel}/{POINTER}", pointer)
    home = s3.home()
    for read in (lambda: home.fetch(rel), lambda: home.pointer(rel), lambda: follow_pointer(s3.fs, f"{s3.root}/{rel}")):
        with pytest.raises(PointerError, match=POINTER) as err:
            read()
        assert message in str(err.value)
    with pytest.raises(PointerError, match=POINTER), home.workspace("pull") as ws:
        ws.pull(rel)
    assert not (home.local / "cache" / rel).exists() or not any((home.local / "cache" / rel).iterdir())


def test_paths_leaving_the_home_are_refused(s3: S3Home) -> None:
    assert check_rel("a//b/./c/") == "a/b/c"
    for bad in ("../x", "a/../../x", "a/..", "/etc/passwd", "", ".", "./"):
        with pytest.raises(ValueError, match="not a path inside the data home"):
            check_rel(bad)
    home = s3.home()
    with home.workspace("paths") as ws:
        for bad in ("../x", "/abs/path"):
            with pytest.raises(ValueError):
                ws.pull(bad)
            with pytest.raises(ValueError):
                ws.write(bad)
    with pytest.raises(ValueError):
        home.publish("../escape", s3.tmp)
    with pytest.raises(ValueError):
        home.remote("/abs")


# ---------------------------------------------------------------------------------- Dagster end to end

SESSIONS = ["sim-s0000-0001", "sim-s0002-0003", "sim-s0004-0005"]
APPENDED = "sim-s0006-0007"
MERGED = "datasets/lerobot_dataset"


def remote_resources(s3: S3Home) -> dict[str, Any]:
    from lerobot_assets.defs.resources import DataHome

    return resources(s3.tmp) | {"home": DataHome(root=s3.url, local_dir=str(s3.tmp / "dagster-local"))}


def run_sessions(instance: dg.DagsterInstance, res: dict[str, Any], keys: list[str]) -> None:
    add_sessions(instance, keys)
    for key in keys:
        r = dg.materialize(session_defs(), partition_key=key, instance=instance, resources=res, raise_on_error=False)
        assert r.success, failure_messages(r)
        assert checks(r) == {"session_dataset_valid": True}


def run_merged(instance: dg.DagsterInstance, res: dict[str, Any], downstream: list[Any]) -> dg.ExecuteInProcessResult:
    from lerobot_assets.defs.datasets.assets import byte_index

    r = dg.materialize([*dataset_defs(), byte_index, *downstream], instance=instance, resources=res, raise_on_error=False)
    assert r.success, failure_messages(r)
    evaluations = checks(r)
    assert evaluations and all(evaluations.values()), {k: v for k, v in evaluations.items() if not v}
    return r


def decoded_frames(root: Path) -> list[dict[str, Any]]:
    from lerobot_assets.loading import LeRobotV3Dataset

    ds = LeRobotV3Dataset(root, return_uint8=True)
    return [ds[i] for i in range(len(ds))]


def assert_same_dataset(got: Path, want: Path) -> None:
    """Same totals, tasks, data rows, episodes metadata and decoded pixels (as test_distributed does)."""
    a, b = DatasetMeta(got), DatasetMeta(want)
    keys = ("total_episodes", "total_frames", "total_tasks", "fps", "features", "robot_type")
    assert {k: getattr(a.info, k) for k in keys} == {k: getattr(b.info, k) for k in keys}
    assert a.tasks == b.tasks
    ea = pq.read_table(sorted((got / "meta" / "episodes").rglob("*.parquet")))
    eb = pq.read_table(sorted((want / "meta" / "episodes").rglob("*.parquet")))
    assert ea.column_names == eb.column_names
    columns = [c for c in ea.column_names if "path" not in c]
    assert len(columns) > 10
    assert ea.select(columns).equals(eb.select(columns))
    da = pq.read_table(sorted((got / "data").rglob("*.parquet")))
    db = pq.read_table(sorted((want / "data").rglob("*.parquet")))
    assert da.num_rows == a.info.total_frames and da.equals(db)
    fa, fb = decoded_frames(got), decoded_frames(want)
    assert len(fa) == len(fb) == a.info.total_frames
    assert_frames_equal(fa, fb)


def assert_remote_layout(s3: S3Home, sessions: list[str]) -> None:
    everything = s3.listing("")
    for s in sessions:
        for rel in (f"sessions/{s}", f"raw/{s}"):
            assert f"{rel}/{POINTER}" in everything
        record = json.loads(s3.fs.cat_file(f"{s3.root}/checks/{s}.json"))
        assert record["session"] == s and record["passed"] is True
        for png in (f"previews/raw_episodes/{s}.png", f"previews/session_dataset/{s}.png", f"previews/session_videos/{s}/observation.image.png"):
            assert s3.fs.cat_file(f"{s3.root}/{png}")[:8] == b"\x89PNG\r\n\x1a\n", png
    assert s3.fs.cat_file(f"{s3.root}/previews/lerobot_dataset.png")[:4] == b"\x89PNG"
    pointers = sorted(k[: -len(POINTER) - 1] for k in everything if k.endswith(f"/{POINTER}"))
    assert MERGED in pointers
    for prefix in pointers:
        p = s3.pointer(prefix)
        versions = s3.versions(prefix)
        assert set(versions) <= {p.version, p.previous} and p.version in versions, (prefix, versions, p)
        current = s3.listing(f"{prefix}/{p.version}")
        assert (len(current), sum(current.values())) == (p.files, p.bytes), prefix
        if prefix.startswith(("sessions/", "datasets/")):
            for v in versions:
                assert f"{prefix}/{v}/meta/info.json" in everything, f"{prefix}/{v} has no meta/info.json"
    # Nothing but pointers, versions and plain objects (checks, previews) in the home.
    for key in everything:
        top = key.split("/", 1)[0]
        assert top in {"raw", "sessions", "datasets", "checks", "previews"}, key
        if top in ("checks", "previews"):
            assert "/v-" not in key and not key.endswith(POINTER), key


TRANSFER_LOG = re.compile(
    r"uploaded (\d+) B in (\d+) files, downloaded (\d+) B in (\d+) files, copied on the server (\d+) B in (\d+) files"
)


def transfer_logs(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, tuple[int, int]]]:
    """step -> {uploaded, downloaded, copied: (bytes, files)} from DataHome.workspace's log line."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for entry in instance.all_logs(run_id):
        m = TRANSFER_LOG.search(entry.user_message or "")
        if m and entry.step_key:
            n = [int(g) for g in m.groups()]
            out[entry.step_key] = {"uploaded": (n[0], n[1]), "downloaded": (n[2], n[3]), "copied": (n[4], n[5])}
    return out


def previews_size(s3: S3Home) -> int:
    return s3.listing("previews")["lerobot_dataset.png"]


@dataclass
class Publication:
    rel: str
    pointer: Pointer
    moved: dict[str, int]


@pytest.mark.slow
def test_dagster_on_s3_home_equals_local_home(s3: S3Home, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> None:
    from lerobot_assets.defs.sql.assets import build_sql_defs

    publications: list[Publication] = []
    plain: list[int] = []
    real_publish, real_put_file = RemoteHome.publish, RemoteHome.put_file

    def publish(self: RemoteHome, rel: str, local: Path, base: Any = None) -> Pointer:
        before = snapshot(PROCESS_TRANSFER)
        pointer = real_publish(self, rel, local, base)
        publications.append(Publication(rel, pointer, delta(before, PROCESS_TRANSFER)))
        return pointer

    def put_file(self: RemoteHome, rel: str, local: Path) -> None:
        plain.append(local.stat().st_size)
        real_put_file(self, rel, local)

    monkeypatch.setattr(RemoteHome, "publish", publish)
    monkeypatch.setattr(RemoteHome, "put_file", put_file)
    start = snapshot(PROCESS_TRANSFER)

    res = remote_resources(s3)
    sql_assets, sql_checks = build_sql_defs()
    run_sessions(instance, res, SESSIONS)
    r = run_merged(instance, res, [*sql_assets, *sql_checks])
    assert (metadata(r, "lerobot_dataset")["mode"], metadata(r, "lerobot_dataset")["sessions_added"]) == ("rebuild", SESSIONS)
    assert {"lerobot_dataset", "dataset_stats", "byte_index", "episode_quality", "dataset_summary"} <= materialized(r)
    # The SQL models read the published versions on S3: the merged dataset and the three sessions.
    rows = {m: metadata(r, m)["dagster/row_count"] for m in ("dataset_summary", "stg_episodes", "stg_frames")}
    assert rows == {"dataset_summary": 4, "stg_episodes": 2 * 6, "stg_frames": 2 * 72}
    assert f"{s3.url}/datasets/lerobot_dataset/v-" in metadata(r, "dataset_summary")["preview"]  # (truncated there)
    assert_remote_layout(s3, SESSIONS)
    merged = s3.pointer(MERGED)
    assert merged.version == "v-000003"  # merge, stats, byte index: one version each
    files = s3.listing(f"{MERGED}/{merged.version}")
    assert "meta/stats.json" in files and any(k.startswith("meta/byte_index/") for k in files)

    # The same sessions on a local home give the same dataset.
    local_home = s3.tmp / "local-home"
    local_res = resources(local_home)
    with dg.instance_for_test() as local_instance:
        run_sessions(local_instance, local_res, SESSIONS)
        run_merged(local_instance, local_res, [])
        fetched = s3.home("reader").fetch(MERGED)
        assert fetched is not None and fetched.version == merged.version
        assert_same_dataset(fetched.path, local_home / MERGED)
        remote_meta = DatasetMeta(f"{s3.url}/{MERGED}", storage_options={"endpoint_url": s3.endpoint})
        assert remote_meta.version == merged.version
        assert remote_meta.info.total_frames == DatasetMeta(local_home / MERGED).info.total_frames

        # Append a 4th session on both homes: the new merged version copies unchanged files on the server.
        run_sessions(instance, res, [APPENDED])
        run_sessions(local_instance, local_res, [APPENDED])
        before_append = len(publications)
        r = run_merged(instance, res, [])
        run_merged(local_instance, local_res, [])
    assert metadata(r, "lerobot_dataset")["mode"] == "append"
    assert metadata(r, "lerobot_dataset")["sessions_added"] == [APPENDED]
    merges = [p for p in publications[before_append:] if p.rel == MERGED]
    assert [p.pointer.version for p in merges] == ["v-000004", "v-000005", "v-000006"]
    assert all(p.pointer.previous == f"v-{int(p.pointer.version[2:]) - 1:06d}" for p in merges)
    for p in merges:  # each step re-uploads only what it changed
        assert p.moved["server_copied"] > 0 and p.moved["files_copied"] > 0, p
        assert p.moved["uploaded"] + p.moved["server_copied"] == p.pointer.bytes, p
    # The steps' log lines say the same: stats and byte index upload their own files only.
    final = s3.home("reader2").fetch(MERGED)
    assert final is not None and final.version == "v-000006"
    sizes = local_files(final.path)
    logged = transfer_logs(instance, r.run_id)
    assert set(logged) == {"lerobot_dataset", "dataset_stats", "byte_index"}
    assert logged["dataset_stats"]["uploaded"] == (sizes["meta/stats.json"], 1)
    index_files = {k: v for k, v in sizes.items() if k.startswith("meta/byte_index/")}
    assert logged["byte_index"]["uploaded"] == (sum(index_files.values()), len(index_files))
    unchanged = sum(v for k, v in sizes.items() if k.startswith(("data/", "videos/", "meta/episodes/")))
    for step in ("dataset_stats", "byte_index"):
        assert logged[step]["downloaded"] == (0, 0)  # the merge step's version, from the cache
        assert logged[step]["copied"][0] >= unchanged
    assert merges[0].moved["uploaded"] == logged["lerobot_dataset"]["uploaded"][0] - previews_size(s3)
    assert sorted(m.moved["uploaded"] for m in merges[1:]) == sorted(logged[s]["uploaded"][0] for s in ("dataset_stats", "byte_index"))
    assert_remote_layout(s3, [*SESSIONS, APPENDED])
    assert_same_dataset(final.path, local_home / MERGED)
    assert DatasetMeta(final.path).info.total_episodes == 8

    # Over the whole run, uploads stay close to what the steps produced.
    produced = sum(p.pointer.bytes for p in publications) + sum(plain)
    total = delta(start, PROCESS_TRANSFER)
    assert total["uploaded"] <= 1.2 * produced
    copied = sum(p.moved["server_copied"] for p in publications)
    assert total["uploaded"] + copied == produced


def test_failed_session_build_leaves_the_published_session(
    s3: S3Home, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lerobot_assets.defs.ingest.assets as ingest

    res = remote_resources(s3)
    session = "sim-s0000-0001"
    run_sessions(instance, res, [session])
    rel = f"sessions/{session}"
    pointer = s3.pointer(rel)
    published = s3.digests(rel)
    previews = s3.digests("previews")
    raw = s3.digests(f"raw/{session}")
    real_build = ingest.build_session_dataset

    def build_then_fail(summary: Any, root: Path, **kwargs: Any) -> Any:
        assert (root.parents[1] / f"raw/{session}").is_dir()  # the workspace pulled the raw episodes
        real_build(summary, root, **kwargs)  # a whole new dataset in the workspace ...
        replace_file(root / "meta/stats.json", b"{}")  # ... then damaged, and the step dies
        (root / "data/chunk-000/file-000.parquet").unlink()
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(ingest, "build_session_dataset", build_then_fail)
    r = dg.materialize(
        session_defs(),
        selection=dg.AssetSelection.assets("session_dataset", "session_videos"),
        partition_key=session,
        instance=instance,
        resources=res,
        raise_on_error=False,
    )
    assert not r.success
    assert any("encoder crashed" in m for m in failure_messages(r))
    assert s3.pointer(rel) == pointer
    assert s3.digests(rel) == published
    assert s3.digests("previews") == previews
    assert s3.digests(f"raw/{session}") == raw
    work = s3.tmp / "dagster-local" / "work"
    assert not work.exists() or list(work.iterdir()) == []  # the failed step's workspace is gone
    # A reader still gets the complete session.
    meta = DatasetMeta(f"{s3.url}/{rel}", storage_options={"endpoint_url": s3.endpoint})
    assert meta.version == pointer.version and meta.info.total_episodes == 2


def test_the_version_cache_keeps_to_its_size_dropping_the_least_recently_used(s3: S3Home) -> None:
    fixture_bytes = sum(local_files(FIXTURE).values())
    writer = s3.home("writer")
    for name in ("a", "b", "c"):
        writer.publish(f"datasets/{name}", fixture_copy(s3.tmp / name))
    # Room for two copies of the fixture: the third version read drops the least recently used.
    reader = RemoteHome(s3.url, local_dir=s3.tmp / "reader", cache_max_bytes=int(2.5 * fixture_bytes))
    a = reader.fetch("datasets/a")
    reader.fetch("datasets/b")
    assert a is not None and reader.fetch("datasets/a") is not None  # a is now more recent than b
    before = snapshot(reader.transfer)
    reader.fetch("datasets/c")
    cached = sorted(p.parent.name for p in (s3.tmp / "reader" / "cache").rglob("*.files.json"))
    assert cached == ["a", "c"]  # b, least recently used, was dropped; a and c stay
    assert delta(before, reader.transfer)["downloaded"] == fixture_bytes
    before = snapshot(reader.transfer)
    assert reader.fetch("datasets/b") is not None  # downloaded again, and a (now oldest) dropped
    assert delta(before, reader.transfer)["downloaded"] == fixture_bytes
    assert sorted(p.parent.name for p in (s3.tmp / "reader" / "cache").rglob("*.files.json")) == ["b", "c"]
    # A version larger than the whole cache is still kept while it is the one just read.
    tiny = RemoteHome(s3.url, local_dir=s3.tmp / "tiny", cache_max_bytes=1)
    got = tiny.fetch("datasets/a")
    assert got is not None and (got.path / "meta" / "info.json").is_file()
