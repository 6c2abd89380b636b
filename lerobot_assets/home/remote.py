"""A data home on object storage (s3://, gs://, az://, ... through fsspec).

The library writes datasets on a local disk (encoders, stream-copy concatenation and parquet rewrites
need local files), so a step on a remote home works in a **workspace**: a local scratch directory laid
out like a home. It pulls what it reads from the remote home, runs the same code as on a local home,
and publishes what it wrote when it succeeds:

- a directory (a session's raw episodes, a session dataset, a merged, curated or split dataset, a
  checkpoint) is published as a new version beside a pointer written last (see
  `lerobot_assets.format.versions`): readers never see half of it, and a killed step leaves only an
  unreferenced version behind, which the next publication of that directory deletes;
- a single file (a validation record, a preview, an import spec) is one PUT, atomic by itself.

Published versions are immutable, so a local **cache** keeps each one it downloaded or published, keyed
by (home, path, version): a step reading what an earlier step on the same machine wrote moves no bytes,
and files a step did not change are server-side copied into the new version instead of uploaded again.
Workspace inputs are hard links into the cache; every writer in this project replaces files by
rename (`format.atomic`), which breaks the link, and a file changed in place anyway is detected
(its stat differs from the cache's record) and uploaded, and the cache entry dropped.

Pure library: no Dagster import.
"""

import hashlib
import json
import logging
import os
import posixpath
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lerobot_assets.format.atomic import make_temp_dir
from lerobot_assets.format.versions import POINTER, Pointer, read_pointer, version_name, version_number
from lerobot_assets.home.layout import HomeLayout

logger = logging.getLogger(__name__)

# Uploaded after every other file of a version: a plain reader given a `v-<n>/` prefix finds the
# dataset's entry point only once the files it names are there.
LAST_FILES = ("meta/info.json",)
# Versions of one directory kept on the remote: the current one and the one it replaced, which a
# reader that followed the old pointer may still be reading.
KEEP_VERSIONS = 2
CACHE_MANIFEST = "files.json"
# Created first in each new version prefix: who is publishing it (host, pid, time). A dotfile, so
# never part of the dataset (our readers skip dotfiles; LeRobot reads only the files info.json names).
CLAIM = ".publish.json"
LOCAL_ENV = "LEROBOT_ASSETS_LOCAL"
CACHE_ENV = "LEROBOT_ASSETS_CACHE_GB"


def home_filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """(fsspec filesystem, its path of the home) for a home URL.

    An S3-compatible endpoint comes from `storage_options['endpoint_url']`, else `AWS_ENDPOINT_URL` or
    `FSSPEC_S3_ENDPOINT_URL`, as for the SQL command line."""
    import fsspec.core

    options = dict(storage_options or {})
    protocol = url.split("://", 1)[0]
    if protocol in ("s3", "s3a") and "endpoint_url" not in options and "endpoint_url" not in options.get("client_kwargs", {}):
        endpoint = os.environ.get("FSSPEC_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
    fs, path = fsspec.core.url_to_fs(url, **options)
    return fs, path.rstrip("/")


def default_local_dir(url: str) -> Path:
    """Where a remote home's workspaces, cache and DuckDB catalog live on this machine:
    $LEROBOT_ASSETS_LOCAL, else ~/.cache/lerobot-assets; one subdirectory per home URL."""
    base = Path(os.environ.get(LOCAL_ENV) or Path.home() / ".cache" / "lerobot-assets")
    return base / hashlib.sha1(url.rstrip("/").encode()).hexdigest()[:16]


def check_rel(rel: str) -> str:
    """A path inside the home, as posix; refuses anything that would leave it."""
    parts = [p for p in rel.replace(os.sep, "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or rel.startswith("/"):
        raise ValueError(f"{rel!r} is not a path inside the data home")
    return "/".join(parts)


class PublishConflict(RuntimeError):
    """The directory was published by another step since this step pulled it."""


@dataclass
class Transfer:
    """Bytes this process moved to and from the remote home."""

    uploaded: int = 0
    downloaded: int = 0
    server_copied: int = 0  # copied remote-to-remote (unchanged files of a new version): no client bytes
    files_uploaded: int = 0
    files_downloaded: int = 0
    files_copied: int = 0
    cache_hits: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    def add(self, **amounts: int) -> None:
        for name, n in amounts.items():
            setattr(self, name, getattr(self, name) + n)
            setattr(PROCESS_TRANSFER, name, getattr(PROCESS_TRANSFER, name) + n)


# Everything every RemoteHome of this process moved (what benchmarks/bench_scale.py reports).
PROCESS_TRANSFER = Transfer()


@dataclass
class Cached:
    """A published version held in the local cache: `path` is the dataset, `files` their stats then."""

    rel: str
    version: str
    path: Path
    files: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # rel -> (size, mtime_ns, inode)


def _file_stats(root: Path) -> dict[str, tuple[int, int, int]]:
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):  # symlinks are not followed: see _links
        # Our temp files, locks and journals start with '.', and never belong to a published dataset.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.is_symlink():
                continue
            st = path.stat()
            out[path.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def _links(root: Path) -> dict[str, str]:
    """Relative symlinks under `root` that stay inside it (a checkpoint's `last`, a run's `current`):
    object stores have none, so the pointer records them and `fetch` makes them again."""
    out: dict[str, str] = {}
    top = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if not path.is_symlink() or name.startswith("."):
                continue
            target = os.readlink(path)
            if os.path.isabs(target) or not path.resolve().is_relative_to(top):
                raise ValueError(f"{path}: symlink to {target!r} leaves {root}; it cannot be published")
            out[path.relative_to(root).as_posix()] = target
    return out


class RemoteHome:
    """A data home at an fsspec URL: publication, the version cache and workspaces."""

    def __init__(
        self,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        local_dir: Path | None = None,
        cache_max_bytes: int | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = home_filesystem(self.url, self.storage_options)
        self.local = Path(local_dir or default_local_dir(self.url)).absolute()
        self.cache_dir = self.local / "cache"
        self.work_dir = self.local / "work"
        self.cache_max_bytes = cache_max_bytes if cache_max_bytes is not None else default_cache_max_bytes()
        self.transfer = Transfer()

    # -- paths --
    def remote(self, rel: str) -> str:
        return posixpath.join(self.root, check_rel(rel))

    def url_of(self, rel: str) -> str:
        return self.fs.unstrip_protocol(self.remote(rel))

    @property
    def catalog_path(self) -> Path:
        """The DuckDB catalog of a remote home is a local file (DuckDB writes in place)."""
        return self.local / "catalog" / "catalog.duckdb"

    def pointer(self, rel: str) -> Pointer | None:
        return read_pointer(self.fs, self.remote(rel))

    def exists(self, rel: str) -> bool:
        return bool(self.fs.exists(self.remote(rel)))

    # -- reading --
    def fetch(self, rel: str) -> Cached | None:
        """The published version of directory `rel` in the local cache (downloaded when missing);
        None when `rel` has no pointer."""
        rel = check_rel(rel)
        pointer = self.pointer(rel)
        if pointer is None:
            return None
        entry = self._cache_entry(rel, pointer.version)
        cached = self._load_cached(rel, pointer.version, entry)
        if cached is not None:
            self.transfer.add(cache_hits=1)
            _touch(entry.parent / f"{pointer.version}.{CACHE_MANIFEST}")  # recently used: trimmed last
            return cached
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(entry.parent, f".dl-{pointer.version}-")
        try:
            src = posixpath.join(self.remote(rel), pointer.version)
            # Dotfiles (the version's claim record) are the publisher's, not the dataset's.
            listing = [
                f for f in self.fs.find(src, detail=True).values()
                if f.get("type") == "file" and not any(p.startswith(".") for p in posixpath.relpath(f["name"], src).split("/"))
            ]
            rpaths = [f["name"] for f in listing]
            # check_rel: an object key holding `..` never lands outside the download.
            lpaths = [str(tmp / check_rel(posixpath.relpath(p, src))) for p in rpaths]
            for lp in lpaths:
                Path(lp).parent.mkdir(parents=True, exist_ok=True)
            if rpaths:
                self.fs.get(rpaths, lpaths)
            self.transfer.add(downloaded=sum(int(f.get("size") or 0) for f in listing), files_downloaded=len(listing))
            for link, target in sorted(pointer.links.items()):
                path = tmp / check_rel(link)
                path.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(target, path)
            return self._adopt(rel, pointer.version, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def download(self, rel: str, dest: Path) -> bool:
        """Copy a plain (unversioned) file or directory `rel` to `dest`; False when it does not exist."""
        src = self.remote(rel)
        if self.fs.isfile(src):
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(src, str(dest))
            _keep_mtime(self.fs.info(src), dest)
            self.transfer.add(downloaded=dest.stat().st_size, files_downloaded=1)
            return True
        if not self.fs.isdir(src):
            return False
        listing = [f for f in self.fs.find(src, detail=True).values() if f.get("type") == "file"]
        lpaths = [str(dest / check_rel(posixpath.relpath(f["name"], src))) for f in listing]
        for lp in lpaths:
            Path(lp).parent.mkdir(parents=True, exist_ok=True)
        if listing:
            self.fs.get([f["name"] for f in listing], lpaths)  # one batch: s3fs fetches concurrently
        for f, lp in zip(listing, lpaths):
            _keep_mtime(f, Path(lp))
        self.transfer.add(downloaded=sum(int(f.get("size") or 0) for f in listing), files_downloaded=len(listing))
        dest.mkdir(parents=True, exist_ok=True)
        return True

    # -- writing --
    def put_file(self, rel: str, local: Path) -> None:
        """One object, replaced whole (a single PUT is atomic)."""
        self.fs.put_file(str(local), self.remote(rel))
        self.transfer.add(uploaded=local.stat().st_size, files_uploaded=1)

    def publish(self, rel: str, local: Path, base: Cached | None = None) -> Pointer:
        """Publish directory `local` as the next version of `rel`, then point at it.

        `base` is the cached version the step started from: its files that the step left untouched are
        copied on the server instead of uploaded. Afterwards, versions older than the new one other than
        the one it replaced are deleted: superseded ones, and unreferenced ones a killed step left.

        Two publishers of one directory at once: each claims its own version number (a conditional
        create, so they never write into the same prefix), and the pointer is switched with a
        conditional PUT on the pointer the step read, so the one that switches second fails with
        PublishConflict instead of silently dropping the other's version (S3; on other stores the
        pointer is checked when the step starts publishing, not atomically at the switch).
        """
        rel = check_rel(rel)
        prefix = self.remote(rel)
        pointer_path = posixpath.join(prefix, POINTER)
        old, etag = self._read_pointer_tagged(pointer_path)
        if base is not None and (old is None or old.version != base.version):
            # Another step published this directory after this one read it: publishing would drop
            # that step's work (e.g. stats and byte index written to the merged dataset at once).
            raise self._conflict(rel, base.version, old.version if old else None)
        existing = self._versions(prefix)
        numbers = [version_number(v) or 0 for v in existing] + ([version_number(old.version) or 0] if old else [])
        version = self._claim(prefix, max(numbers, default=0) + 1)
        dest = posixpath.join(prefix, version)
        files = _file_stats(local)
        unchanged = self._unchanged(base, local, files)
        later = [f for f in files if f in LAST_FILES]
        first = [f for f in files if f not in LAST_FILES]
        for batch in (first, later):
            copies = [f for f in batch if f in unchanged]
            uploads = [f for f in batch if f not in unchanged]
            if copies:
                assert base is not None
                src_prefix = posixpath.join(prefix, base.version)
                self.fs.copy([posixpath.join(src_prefix, f) for f in copies], [posixpath.join(dest, f) for f in copies])
                self.transfer.add(server_copied=sum(files[f][0] for f in copies), files_copied=len(copies))
            if uploads:
                self.fs.put([str(local / f) for f in uploads], [posixpath.join(dest, f) for f in uploads])
                self.transfer.add(uploaded=sum(files[f][0] for f in uploads), files_uploaded=len(uploads))
        pointer = Pointer(
            version=version,
            links=_links(local),
            previous=old.version if old else None,
            files=len(files),
            bytes=sum(s for s, _, _ in files.values()),
            published_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        # The switch: one PUT. Everything before it is invisible to readers that follow pointers.
        body = (pointer.model_dump_json(indent=2) + "\n").encode()
        if not self._switch(pointer_path, body, etag):
            self._remove_version(prefix, version)
            now = read_pointer(self.fs, prefix)
            raise self._conflict(rel, old.version if old else None, now.version if now else None)
        keep_from = version_number(old.version) if old else None
        for name in existing:
            number = version_number(name) or 0
            # Only versions older than the new one: a higher number may be another publisher's, in flight.
            if number < (version_number(version) or 0) and number != keep_from:
                logger.info("removing %s/%s (superseded or never published)", self.url_of(rel), name)
                self._remove_version(prefix, name)
        self._adopt(rel, version, local)
        return pointer

    def collect_garbage(self, rel: str, min_age_s: float = 3600.0) -> list[str]:
        """Delete the versions of `rel` that its pointer neither names nor names as previous (what a
        killed publication left); returns their names. A version claimed less than `min_age_s` ago
        is kept: it may be a publication in flight. Publishing collects the older ones itself."""
        prefix = self.remote(rel)
        pointer = read_pointer(self.fs, prefix)
        if pointer is None:
            return []
        keep = {pointer.version, pointer.previous}
        gone = [v for v in self._versions(prefix) if v not in keep and self._claim_age(prefix, v) >= min_age_s]
        for name in gone:
            self._remove_version(prefix, name)
        return gone

    # -- internals --
    def _conflict(self, rel: str, read: str | None, now: str | None) -> PublishConflict:
        return PublishConflict(
            f"{self.url_of(rel)}: changed while this step ran (it read {read or 'nothing'}, the pointer now "
            f"names {now or 'nothing'}); nothing was published: run the step again"
        )

    def _conditional(self) -> bool:
        """Whether the store takes S3's conditional writes (If-Match / If-None-Match)."""
        return type(self.fs).__name__ == "S3FileSystem"

    def _read_pointer_tagged(self, path: str) -> tuple[Pointer | None, str | None]:
        """The pointer and the ETag it was read at. The ETag is taken first: if the pointer changes in
        between, the switch's If-Match fails (a spurious conflict, never a lost one)."""
        self.fs.invalidate_cache(posixpath.dirname(path))
        etag = None
        if self._conditional():
            try:
                etag = self.fs.info(path).get("ETag")
            except FileNotFoundError:
                return None, None
        return read_pointer(self.fs, posixpath.dirname(path)), etag

    def _switch(self, path: str, body: bytes, etag: str | None) -> bool:
        """Write the pointer unless it changed since it was read (False then)."""
        if not self._conditional():
            self.fs.pipe_file(path, body)
            return True
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.fs.pipe_file(path, body, **condition)
        except (OSError, FileExistsError) as e:
            if "pre-condition" in str(e) or "precondition" in str(e).lower() or isinstance(e, FileExistsError):
                return False
            raise
        return True

    def _claim(self, prefix: str, first: int) -> str:
        """The first free version number from `first`, claimed by creating its claim object (S3:
        If-None-Match, so two publishers never share a version prefix)."""
        for n in range(first, first + 1000):
            name = version_name(n)
            claim = posixpath.join(prefix, name, CLAIM)
            record = json.dumps({"host": os.uname().nodename, "pid": os.getpid(), "at": time.time()}).encode()
            if self._conditional():
                try:
                    self.fs.pipe_file(claim, record, IfNoneMatch="*")
                    return name
                except (OSError, FileExistsError):
                    continue
            elif not self.fs.exists(claim):
                self.fs.pipe_file(claim, record)
                return name
        raise RuntimeError(f"{prefix}: no free version number from {first} after 1000 tries")

    def _claim_age(self, prefix: str, name: str) -> float:
        """Seconds since the version was claimed (infinite when it holds no readable claim)."""
        try:
            at = float(json.loads(self.fs.cat_file(posixpath.join(prefix, name, CLAIM)))["at"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return float("inf")
        return time.time() - at

    def _remove_version(self, prefix: str, name: str) -> None:
        try:
            self.fs.rm(posixpath.join(prefix, name), recursive=True)
        except FileNotFoundError:  # removed meanwhile by another publisher's clean-up
            pass

    def _versions(self, prefix: str) -> list[str]:
        self.fs.invalidate_cache(prefix)  # another process may have claimed a version since we listed
        try:
            entries = self.fs.ls(prefix, detail=True)
        except FileNotFoundError:
            return []
        names = [posixpath.basename(e["name"].rstrip("/")) for e in entries if e.get("type") == "directory"]
        return sorted(n for n in names if version_number(n) is not None)

    def _cache_entry(self, rel: str, version: str) -> Path:
        return self.cache_dir / rel / version

    def _load_cached(self, rel: str, version: str, entry: Path) -> Cached | None:
        manifest = entry.parent / f"{version}.{CACHE_MANIFEST}"
        if not (entry.is_dir() and manifest.is_file()):
            return None
        try:
            files = {k: tuple(v) for k, v in json.loads(manifest.read_text()).items()}
        except (OSError, ValueError):
            return None
        return Cached(rel, version, entry, files)

    def _adopt(self, rel: str, version: str, local: Path) -> Cached:
        """Move `local` into the cache as `version` of `rel` (immutable from now on)."""
        entry = self._cache_entry(rel, version)
        entry.parent.mkdir(parents=True, exist_ok=True)
        manifest = entry.parent / f"{version}.{CACHE_MANIFEST}"
        if entry.exists() and not manifest.is_file():
            self._drop(Cached(rel, version, entry))  # a left-over of unknown state: replaced by this copy
        if not entry.exists():
            try:
                os.rename(local, entry)
            except OSError:  # another process cached it first, or another filesystem
                if not entry.exists():
                    shutil.copytree(local, entry, symlinks=True, copy_function=os.link)
        files = _file_stats(entry)
        tmp = manifest.with_name(f".{manifest.name}.{os.getpid()}")
        tmp.write_text(json.dumps(files))
        os.replace(tmp, manifest)
        # Older versions of this directory are not needed for reading or as a base any more.
        for other in entry.parent.iterdir():
            number = version_number(other.name.split(".")[0])
            if number is not None and number < (version_number(version) or 0) - 1:
                shutil.rmtree(other, ignore_errors=True) if other.is_dir() else other.unlink(missing_ok=True)
        self.trim_cache(keep=manifest)
        return Cached(rel, version, entry, files)

    def trim_cache(self, keep: Path | None = None) -> int:
        """Drop the least recently used cached versions until the cache holds at most
        `cache_max_bytes` (never the one `keep`, a manifest path, names); returns the bytes dropped.
        Sizes are the manifests' (a file shared by two versions through a hard link counts twice)."""
        manifests = []
        for manifest in self.cache_dir.rglob(f"*.{CACHE_MANIFEST}"):
            try:
                size = sum(v[0] for v in json.loads(manifest.read_text()).values())
                manifests.append((manifest.stat().st_mtime, size, manifest))
            except (OSError, ValueError, TypeError, IndexError):
                continue
        total = sum(size for _, size, _ in manifests)
        dropped = 0
        for _, size, manifest in sorted(manifests, key=lambda m: m[0]):
            if total <= self.cache_max_bytes:
                break
            if manifest == keep:
                continue
            version = manifest.name[: -len(f".{CACHE_MANIFEST}")]
            rel = manifest.parent.relative_to(self.cache_dir).as_posix()
            self._drop(Cached(rel, version, manifest.parent / version))
            total -= size
            dropped += size
        return dropped

    def _unchanged(self, base: Cached | None, local: Path, files: dict[str, tuple[int, int, int]]) -> set[str]:
        """Files of `local` that are still the base version's, untouched: the same inode (a hard link
        into the cache) with the size and mtime the cache recorded."""
        if base is None:
            return set()
        out: set[str] = set()
        damaged = False
        for rel, (size, mtime, ino) in files.items():
            recorded = base.files.get(rel)
            if recorded is None or recorded[2] != ino:
                continue
            if (recorded[0], recorded[1]) == (size, mtime):
                out.add(rel)
            else:
                damaged = True  # written in place through the link: the cached copy changed too
        if damaged:
            logger.warning("%s: a file was changed in place; dropping the cached %s", base.rel, base.version)
            self._drop(base)
        return out

    def _intact(self, cached: Cached) -> bool:
        """Whether a cached version's files are as recorded: a step may have written one in place
        through its hard link, which changes the cached copy too."""
        for rel, (size, mtime, ino) in cached.files.items():
            try:
                st = (cached.path / rel).stat()
            except FileNotFoundError:
                return False
            if (st.st_size, st.st_mtime_ns, st.st_ino) != (size, mtime, ino):
                return False
        return True

    def _drop(self, cached: Cached) -> None:
        """Forget a cached version (the next fetch downloads it again). Moved aside first, so no
        reader finds it half removed; workspaces holding hard links to its files keep them."""
        (cached.path.parent / f"{cached.version}.{CACHE_MANIFEST}").unlink(missing_ok=True)
        aside = cached.path.with_name(f".dropped-{cached.version}-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(cached.path, aside)
        except FileNotFoundError:
            return
        shutil.rmtree(aside, ignore_errors=True)

    # -- workspaces --
    @contextmanager
    def workspace(self, name: str) -> Iterator["Workspace"]:
        """A step's local home: publishes what it marked written when the block succeeds, and is
        removed either way (a killed step's is removed by the next workspace of the same name)."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:80]
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.work_dir.glob(f"{safe}~*"):
            if not _owned_by_live_process(stale):
                shutil.rmtree(stale, ignore_errors=True)
        path = make_temp_dir(self.work_dir, f"{safe}~")
        (path / ".owner").write_text(str(os.getpid()))
        ws = Workspace(self, path)
        try:
            yield ws
            ws.publish_all()
        finally:
            # A failed step publishes nothing, but may have written a pulled file in place.
            for cached in ws.bases():
                if not self._intact(cached):
                    logger.warning("%s: a file of %s was changed in place; dropping it from the cache", cached.rel, cached.version)
                    self._drop(cached)
            shutil.rmtree(path, ignore_errors=True)


def _keep_mtime(entry: dict[str, Any], local: Path) -> None:
    """Give a downloaded file its object's modification time: an inbox session's fingerprint hashes
    mtimes, and must come out the same each time the folder is downloaded."""
    stamp = entry.get("LastModified") or entry.get("mtime") or entry.get("created")
    if stamp is None:
        return
    seconds = stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp)
    os.utime(local, (seconds, seconds))


def default_cache_max_bytes() -> int:
    """$LEROBOT_ASSETS_CACHE_GB (GiB, may be fractional), else 20 GiB."""
    text = os.environ.get(CACHE_ENV)
    try:
        return int(float(text) * 2**30) if text else 20 * 2**30
    except ValueError:
        raise ValueError(f"${CACHE_ENV}={text!r} is not a number of GiB") from None


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _owned_by_live_process(path: Path) -> bool:
    try:
        pid = int((path / ".owner").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


class Workspace:
    """One step's local view of a remote home: `layout` is a HomeLayout on local scratch."""

    def __init__(self, home: RemoteHome, path: Path) -> None:
        self.home = home
        self.layout = HomeLayout(path)
        self._bases: dict[str, Cached] = {}
        self._writes: list[str] = []
        self.published: dict[str, str] = {}  # rel -> version ("" for a single object)

    @property
    def transfer(self) -> Transfer:
        return self.home.transfer

    def bases(self) -> list[Cached]:
        """The cached versions this workspace pulled."""
        return list(self._bases.values())

    def pull(self, rel: str) -> bool:
        """Make `rel` of the remote home present at the same place in the workspace: a published
        directory as hard links into the cache, anything else (an inbox folder, a validation record)
        downloaded. False when the home has no `rel`."""
        rel = check_rel(rel)
        dest = self.layout.root / rel
        if dest.exists():
            return True
        cached = self.home.fetch(rel)
        if cached is None:
            return self.home.download(rel, dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(cached.path, dest, symlinks=True, copy_function=os.link)
        self._bases[rel] = cached
        return True

    def children(self, rel: str) -> list[str]:
        """Names of the directories directly under `rel` in the remote home (e.g. the splits)."""
        try:
            entries = self.home.fs.ls(self.home.remote(rel), detail=True)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries if e.get("type") == "directory")

    def write(self, rel: str) -> None:
        """Mark `rel` (a directory or a file of the workspace) to be published when the step succeeds."""
        rel = check_rel(rel)
        if rel not in self._writes:
            self._writes.append(rel)

    def publish_all(self) -> None:
        """Publish what was marked written and not yet published (also run when the block ends)."""
        for rel in self._writes:
            if rel in self.published:
                continue
            local = self.layout.root / rel
            if local.is_dir():
                self.published[rel] = self.home.publish(rel, local, self._bases.get(rel)).version
            elif local.is_file():
                self.home.put_file(rel, local)
                self.published[rel] = ""
            # absent: the step produced nothing there (e.g. an optional preview)

    def location(self, path: Path) -> str:
        """Where a file of the workspace lives in the home: its URL, inside the published version
        when it belongs to a published directory (paths outside the workspace are returned as they are)."""
        try:
            rel = Path(path).absolute().relative_to(self.layout.root).as_posix()
        except ValueError:
            return str(path)
        for top, version in sorted(self.published.items(), key=lambda kv: -len(kv[0])):
            if version and (rel == top or rel.startswith(top + "/")):
                return self.home.url_of(posixpath.join(top, version, rel[len(top):].lstrip("/")).rstrip("/"))
        return self.home.url_of(rel)
