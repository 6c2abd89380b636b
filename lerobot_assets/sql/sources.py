"""The one module that knows how sources are found and read: dataset discovery, globbing every chunk/file
shard, the JSON parsers, and binding each source as a DuckDB relation with a `dataset` column.

Two binding modes share everything but the innermost relation of each dataset:
  * "session" (read-only query sessions, the CLI): temp views. Local parquet files are read with DuckDB's
    own `read_parquet([...explicit files...])`, and the session later allows exactly those paths
    (`allowed_paths`) before `SET enable_external_access=false`; remote files are registered as pyarrow
    datasets over the fsspec filesystem, which DuckDB scans through Python and which keep working with
    external access disabled. Together with the SELECT-only statement check this makes ad-hoc SQL unable
    to read other files or write any (see stack-notes: `read_only=True` alone does not stop COPY TO).
    Native reads matter: LeRobot writes one row group per episode, and DuckDB's C++ reader handles
    thousands of small row groups several times faster than an Arrow scan through Python.
  * "catalog" (the persistent catalog file): parquet sources become views over `read_parquet([...])`
    (remote files through `register_filesystem`), so `frames` stays a view over the data files (never
    copied) and any DuckDB client can open the catalog; small JSON-derived sources become tables.

Remote roots go through fsspec: we glob with the fsspec filesystem in Python and hand explicit file lists
to DuckDB / pyarrow, so no DuckDB extension is ever needed.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from lerobot_assets.sql.errors import SourceError
from lerobot_assets.sql.project import SourceTable, SqlProject, quote_ident, sql_literal

INFO_JSON = "meta/info.json"
# Directories never searched for datasets: our own catalog, VCS/tool folders.
_SKIP_DIRS = frozenset({"catalog", "__pycache__", "node_modules"})
_MAX_DISCOVERY_DEPTH = 8

# ---- storage -------------------------------------------------------------------------------------


def parse_storage_options(items: Iterable[str]) -> dict[str, Any]:
    """`key=value` pairs (CLI `--storage-option`) → fsspec kwargs.

    Values are JSON when they parse as JSON (`anon=true`, `max_concurrency=4`), strings otherwise; a dotted
    key nests (`client_kwargs.region_name=us-east-1`).
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SourceError(f"storage option {item!r} is not key=value")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def filesystem_for(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and fs-native path for a local path or URL.

    For s3:// an S3-compatible endpoint comes from `storage_options['endpoint_url']`, else the env var
    `AWS_ENDPOINT_URL` (botocore's own name) or `FSSPEC_S3_ENDPOINT_URL` (fsspec's config convention).
    """
    options = dict(storage_options or {})
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol in ("s3", "s3a") and "endpoint_url" not in options and "endpoint_url" not in options.get("client_kwargs", {}):
        endpoint = os.environ.get("FSSPEC_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["endpoint_url"] = endpoint
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError, TypeError) as exc:
        raise SourceError(f"cannot open {url!r}: {exc}") from exc
    return fs, path.rstrip("/") or path


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


# ---- datasets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetRoot:
    """One LeRobot v3 dataset root (a directory holding meta/info.json)."""

    name: str  # the `dataset` column: path relative to the home, or the last component of a --root
    path: str  # fs-native path
    fs: fsspec.AbstractFileSystem = field(compare=False, repr=False)

    @property
    def url(self) -> str:
        return self.path if is_local(self.fs) else self.fs.unstrip_protocol(self.path)

    def join(self, rel: str) -> str:
        return posixpath.join(self.path, rel)

    def file_url(self, path: str) -> str:
        """What DuckDB's read_parquet needs: a local path, or a protocol URL served by register_filesystem."""
        return path if is_local(self.fs) else self.fs.unstrip_protocol(path)


def discover_datasets(
    home: str | os.PathLike[str] | None,
    roots: Sequence[str | os.PathLike[str]] = (),
    storage_options: Mapping[str, Any] | None = None,
) -> list[DatasetRoot]:
    """Every dataset under `home` (at any depth) plus the explicit `roots`, sorted by name.

    Discovery stops descending at a dataset root, so data/ and videos/ trees are never listed.
    """
    found: dict[str, DatasetRoot] = {}
    by_path: set[tuple[str, str]] = set()

    def add(root: DatasetRoot) -> None:
        key = (type(root.fs).__name__, root.path)
        if key in by_path:
            return  # the same root reached twice (e.g. --root inside --home)
        if root.name in found:
            raise SourceError(
                f"two dataset roots are both named {root.name!r}: {found[root.name].url} and {root.url}; "
                "rename one or pass it under a different parent"
            )
        by_path.add(key)
        found[root.name] = root

    if home is not None:
        fs, home_path = filesystem_for(os.fspath(home), storage_options)
        if fs.isdir(home_path):
            for path in _walk_for_roots(fs, home_path):
                rel = posixpath.relpath(path, home_path) if path != home_path else posixpath.basename(home_path)
                add(DatasetRoot(name=rel, path=path, fs=fs))
    for item in roots:
        fs, path = filesystem_for(os.fspath(item), storage_options)
        if not fs.isfile(posixpath.join(path, INFO_JSON)):
            raise SourceError(f"{item}: not a LeRobot dataset root (no {INFO_JSON})")
        add(DatasetRoot(name=posixpath.basename(path.rstrip("/")) or path, path=path, fs=fs))
    return [found[name] for name in sorted(found)]


def _walk_for_roots(fs: fsspec.AbstractFileSystem, top: str) -> list[str]:
    roots: list[str] = []
    frontier = [(top, 0)]
    while frontier:
        path, depth = frontier.pop()
        if fs.isfile(posixpath.join(path, INFO_JSON)):
            roots.append(path)
            continue  # a dataset root: its subtrees are shards, not datasets
        if depth >= _MAX_DISCOVERY_DEPTH:
            continue
        try:
            entries = fs.ls(path, detail=True)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            name = posixpath.basename(entry["name"].rstrip("/"))
            if entry.get("type") != "directory" or name.startswith((".", "_")) or name in _SKIP_DIRS:
                continue
            frontier.append((entry["name"].rstrip("/"), depth + 1))
    return sorted(roots)


# ---- JSON parsers and transforms ------------------------------------------------------------------


@dataclass(frozen=True)
class JsonParser:
    """Turns one JSON file of a dataset into rows; `schema` (without `dataset`) also types empty tables."""

    schema: pa.Schema
    parse: Callable[[Any, DatasetRoot], list[dict[str, Any]]]


def _parse_info(doc: Any, root: DatasetRoot) -> list[dict[str, Any]]:
    features = doc.get("features") or {}
    return [
        {
            "root": root.url,
            "codebase_version": doc.get("codebase_version"),
            "robot_type": doc.get("robot_type"),
            "fps": _num(doc.get("fps")),
            "total_episodes": doc.get("total_episodes"),
            "total_frames": doc.get("total_frames"),
            "total_tasks": doc.get("total_tasks"),
            "chunks_size": doc.get("chunks_size"),
            "data_files_size_in_mb": _num(doc.get("data_files_size_in_mb")),
            "video_files_size_in_mb": _num(doc.get("video_files_size_in_mb")),
            "data_path": doc.get("data_path"),
            "video_path": doc.get("video_path"),
            "splits": json.dumps(doc.get("splits")),
            "features": json.dumps(features),
            "feature_names": list(features),
        }
    ]


def _parse_stats(doc: Any, root: DatasetRoot) -> list[dict[str, Any]]:
    rows = []
    for feature, stats in (doc or {}).items():
        if not isinstance(stats, dict):
            continue
        for stat, value in stats.items():
            arr = np.asarray(value, dtype=np.float64)
            rows.append(
                {"feature": feature, "stat": stat, "value": arr.ravel().tolist(), "shape": list(arr.shape)}
            )
    return rows


def _parse_cameras(doc: Any, root: DatasetRoot) -> list[dict[str, Any]]:
    rows = []
    for key, feature in (doc.get("features") or {}).items():
        if not isinstance(feature, dict) or feature.get("dtype") not in ("video", "image"):
            continue
        info = feature.get("info") or {}
        shape = list(feature.get("shape") or [])
        names = list(feature.get("names") or [])
        # LeRobot writes (height, width, channels) with matching names; fall back to that order.
        dims = dict(zip(names, shape)) if len(names) == len(shape) else {}
        height = info.get("video.height", dims.get("height", shape[0] if len(shape) == 3 else None))
        width = info.get("video.width", dims.get("width", shape[1] if len(shape) == 3 else None))
        channels = info.get("video.channels", dims.get("channels", shape[2] if len(shape) == 3 else None))
        rows.append(
            {
                "video_key": key,
                "dtype": feature.get("dtype"),
                "height": height,
                "width": width,
                "channels": channels,
                "codec": info.get("video.codec"),
                "pix_fmt": info.get("video.pix_fmt"),
                "fps": _num(info.get("video.fps", doc.get("fps"))),
                "has_audio": info.get("has_audio"),
                "is_depth_map": info.get("is_depth_map"),
                "g": info.get("video.g"),
                "crf": _num(info.get("video.crf")),
                "preset": str(info["video.preset"]) if info.get("video.preset") is not None else None,
                "video_backend": info.get("video.video_backend"),
                "info": json.dumps(info),
            }
        )
    return rows


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


JSON_PARSERS: dict[str, JsonParser] = {
    "info": JsonParser(
        pa.schema(
            [
                ("root", pa.string()),
                ("codebase_version", pa.string()),
                ("robot_type", pa.string()),
                ("fps", pa.float64()),
                ("total_episodes", pa.int64()),
                ("total_frames", pa.int64()),
                ("total_tasks", pa.int64()),
                ("chunks_size", pa.int64()),
                ("data_files_size_in_mb", pa.float64()),
                ("video_files_size_in_mb", pa.float64()),
                ("data_path", pa.string()),
                ("video_path", pa.string()),
                ("splits", pa.string()),
                ("features", pa.string()),
                ("feature_names", pa.list_(pa.string())),
            ]
        ),
        _parse_info,
    ),
    "stats": JsonParser(
        pa.schema(
            [
                ("feature", pa.string()),
                ("stat", pa.string()),
                ("value", pa.list_(pa.float64())),
                ("shape", pa.list_(pa.int64())),
            ]
        ),
        _parse_stats,
    ),
    "cameras": JsonParser(
        pa.schema(
            [
                ("video_key", pa.string()),
                ("dtype", pa.string()),
                ("height", pa.int64()),
                ("width", pa.int64()),
                ("channels", pa.int64()),
                ("codec", pa.string()),
                ("pix_fmt", pa.string()),
                ("fps", pa.float64()),
                ("has_audio", pa.bool_()),
                ("is_depth_map", pa.bool_()),
                ("g", pa.int64()),
                ("crf", pa.float64()),
                ("preset", pa.string()),
                ("video_backend", pa.string()),
                ("info", pa.string()),
            ]
        ),
        _parse_cameras,
    ),
}

_LISTING_SCHEMA = pa.schema([("path", pa.string()), ("relative_path", pa.string()), ("bytes", pa.int64())])


@dataclass(frozen=True)
class Transform:
    """A per-dataset reshape of a parquet source, written as SQL over that dataset's relation."""

    columns: tuple[str, ...]  # output columns after `dataset`
    sql: Callable[[str, str, pa.Schema], str | None]  # (relation, dataset expr, schema) → SELECT or None


_VIDEO_TS = re.compile(r"^videos/(.+)/from_timestamp$")


def _video_segments_sql(relation: str, dataset_expr: str, schema: pa.Schema) -> str | None:
    # v3 episodes files carry one group of columns per camera (`videos/<key>/chunk_index`, ...). Their
    # set differs per dataset, so the unpivot is generated from each dataset's schema (SQL's
    # COLUMNS(regex) would fail on datasets without cameras). One scan: each row unnests into one row
    # per camera, instead of a UNION that reads the files once per camera.
    keys = sorted({m.group(1) for name in schema.names if (m := _VIDEO_TS.match(name))})
    if not keys:
        return None
    structs = []
    for key in keys:
        col = lambda f: quote_ident(f"videos/{key}/{f}")  # noqa: E731
        structs.append(
            f"{{'video_key': {sql_literal(key)}, 'chunk_index': {col('chunk_index')}, 'file_index': {col('file_index')}, "
            f"'from_timestamp': {col('from_timestamp')}, 'to_timestamp': {col('to_timestamp')}}}"
        )
    return (
        f"SELECT {dataset_expr} AS dataset, episode_index, unnest([{', '.join(structs)}], recursive := true) "
        f"FROM {relation}"
    )


TRANSFORMS: dict[str, Transform] = {
    "video_segments": Transform(
        ("episode_index", "video_key", "chunk_index", "file_index", "from_timestamp", "to_timestamp"),
        _video_segments_sql,
    ),
}


# ---- resolution: which files each source has in each dataset --------------------------------------


@dataclass
class ResolvedSource:
    table: SourceTable
    files: dict[str, list[str]]  # dataset name → fs-native paths, sorted (chunk/file order)
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    # dataset name → path → what identifies this version of the file (see file_fingerprint)
    fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def n_files(self) -> int:
        return sum(len(v) for v in self.files.values())

    def subset(self, keep: Callable[[str, str], bool]) -> ResolvedSource:
        """The same source over only the (dataset, path) pairs `keep` accepts."""
        files = {d: [p for p in paths if keep(d, p)] for d, paths in self.files.items()}
        files = {d: paths for d, paths in files.items() if paths}
        return ResolvedSource(
            self.table,
            files,
            {d: {p: self.sizes[d][p] for p in paths} for d, paths in files.items()},
            {d: {p: self.fingerprints[d][p] for p in paths} for d, paths in files.items()},
        )


def file_fingerprint(info: Mapping[str, Any]) -> str:
    """What changes whenever a file's content may have: size plus the filesystem's version marks.

    Locally that is mtime and inode (our writers replace files by rename, so a rewrite gets a new
    inode even within one mtime tick); on object stores the ETag or last-modified time.
    """
    marks = [str(info.get("size"))]
    for key in ("mtime", "ino", "ETag", "etag", "LastModified", "last_modified", "updated", "generation", "md5Hash"):
        value = info.get(key)
        if value is not None:
            marks.append(f"{key}={value}")
    return "|".join(marks)


def resolve_source(table: SourceTable, datasets: Sequence[DatasetRoot]) -> ResolvedSource:
    files: dict[str, list[str]] = {}
    sizes: dict[str, dict[str, int]] = {}
    fingerprints: dict[str, dict[str, str]] = {}
    for root in datasets:
        matched: dict[str, Mapping[str, Any]] = {}
        for pattern in table.config.glob:
            found = root.fs.glob(root.join(pattern), detail=True)
            for path, info in found.items():
                if info.get("type", "file") == "file":
                    matched[path] = info
        if not matched:
            if table.config.required:
                raise SourceError(
                    f"{root.url}: no file matches {table.config.glob} for required source {table.name!r}"
                )
            continue
        files[root.name] = sorted(matched)
        sizes[root.name] = {p: int(info.get("size") or 0) for p, info in matched.items()}
        fingerprints[root.name] = {p: file_fingerprint(info) for p, info in matched.items()}
    return ResolvedSource(table, files, sizes, fingerprints)


# ---- binding ------------------------------------------------------------------------------------

BindMode = Literal["session", "catalog"]


def _normalize_type(t: pa.DataType) -> pa.DataType:
    """fixed_size_list → list, recursively: DuckDB's read_parquet already reads them as lists, and
    variable lists let `UNION BY NAME` combine datasets whose vectors differ in size (6 vs 14 joints)."""
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(pa.field(t.value_field.name, _normalize_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _normalize_type(f.type), f.nullable) for f in t])
    return t


def _pa_filesystem(fs: fsspec.AbstractFileSystem) -> pafs.FileSystem:
    return pafs.LocalFileSystem() if is_local(fs) else pafs.PyFileSystem(pafs.FSSpecHandler(fs))


class SchemaCache:
    """Parquet footers read once per file per binder; a failure names the file.

    `known` (url → (file fingerprint, schema), e.g. what the catalog recorded) answers for files whose
    fingerprint is unchanged without opening them: on a home of hundreds of shards, reading footers is
    most of the time it takes to open a query session.
    """

    def __init__(self, known: Mapping[str, tuple[str, pa.Schema]] | None = None) -> None:
        self._schemas: dict[tuple[int, str], pa.Schema] = {}
        self._known = dict(known or {})

    def get(self, root: DatasetRoot, path: str) -> pa.Schema | None:
        return self._schemas.get((id(root.fs), path))

    def read(
        self, root: DatasetRoot, paths: Sequence[str], fingerprints: Mapping[str, str] | None = None
    ) -> list[pa.Schema]:
        todo = [p for p in paths if (id(root.fs), p) not in self._schemas]
        if todo and fingerprints and self._known:
            unread = []
            for path in todo:
                known = self._known.get(root.file_url(path))
                if known is not None and known[0] == fingerprints.get(path):
                    self._schemas[(id(root.fs), path)] = known[1]
                else:
                    unread.append(path)
            todo = unread
        if todo:
            filesystem = _pa_filesystem(root.fs)

            def one(path: str) -> pa.Schema:
                try:
                    with filesystem.open_input_file(path) as handle:
                        return pq.ParquetFile(handle).schema_arrow
                except (OSError, pa.ArrowException, ValueError) as exc:
                    raise SourceError(f"cannot read parquet file {root.file_url(path)}: {exc}") from exc

            # Footers are tiny; for remote roots the latency dominates, so read them concurrently.
            workers = 1 if is_local(root.fs) and len(todo) < 8 else min(16, len(todo))
            if workers == 1:
                schemas = [one(p) for p in todo]
            else:
                with ThreadPoolExecutor(workers) as pool:
                    schemas = list(pool.map(one, todo))
            for path, schema in zip(todo, schemas):
                self._schemas[(id(root.fs), path)] = schema
        return [self._schemas[(id(root.fs), p)] for p in paths]

    def unified(
        self, root: DatasetRoot, paths: Sequence[str], fingerprints: Mapping[str, str] | None = None
    ) -> tuple[pa.Schema, str | None]:
        """The schema of all shards together (fixed-size lists as lists), and the raw schema's fingerprint
        when all shards agree (None when they differ).

        Shards of one dataset nearly always share one schema, so distinct schemas are found with cheap
        C++ equality first and only those are normalised and unified.
        """
        distinct: list[pa.Schema] = []
        for schema in self.read(root, paths, fingerprints):
            if not any(schema.equals(d) for d in distinct):
                distinct.append(schema)
        try:
            merged = pa.unify_schemas(
                [pa.schema([f.with_type(_normalize_type(f.type)) for f in d]) for d in distinct],
                promote_options="permissive",
            )
        except (pa.ArrowException, ValueError) as exc:
            raise SourceError(f"{root.url}: parquet shards have incompatible schemas: {exc}") from exc
        return merged.remove_metadata(), (_fingerprint(distinct[0]) if len(distinct) == 1 else None)


@dataclass
class _Group:
    schema: pa.Schema
    arrow: bool
    raw: set[str | None] = field(default_factory=set)  # raw shard schemas (None: a dataset's shards differ)
    members: list[tuple[DatasetRoot, list[str]]] = field(default_factory=list)


def _fingerprint(schema: pa.Schema) -> str:
    return "\x1f".join(f"{f.name}\x1e{f.type}" for f in schema)


@dataclass(frozen=True)
class BoundSource:
    name: str
    relation: str
    n_datasets: int
    n_files: int


class SourceBinder:
    """Binds source tables onto a DuckDB connection: temp views (session) or catalog objects (catalog)."""

    def __init__(
        self,
        project: SqlProject,
        datasets: Sequence[DatasetRoot],
        mode: BindMode,
        *,
        schema_cache: SchemaCache | None = None,
    ) -> None:
        self.project = project
        self.datasets = list(datasets)
        self.mode = mode
        self.schemas = schema_cache or SchemaCache()
        self._roots = {d.name: d for d in self.datasets}
        # Local files the views read natively: the session allows exactly these before locking down.
        self.native_paths: list[str] = []
        # Every parquet file bound, to name the culprit when a query fails inside one (see below).
        self.parquet_files: dict[str, tuple[DatasetRoot, str]] = {}
        # What each bound source resolved to: its files and their fingerprints (freshness checks).
        self.resolved: dict[str, ResolvedSource] = {}
        self._arrow_relations: list[str] = []

    def bind(self, con: duckdb.DuckDBPyConnection, tables: Iterable[SourceTable] | None = None) -> list[BoundSource]:
        if self.mode == "catalog":
            for fs in remote_filesystems(self.datasets):
                register_filesystem(con, fs)
        out = []
        for table in tables if tables is not None else self.project.sources.values():
            resolved = resolve_source(table, self.datasets)
            self.resolved[table.name] = resolved
            out.append(self.bind_resolved(con, resolved))
        return out

    def bind_resolved(
        self, con: duckdb.DuckDBPyConnection, resolved: ResolvedSource, relation: str | None = None, *, temp: bool = False
    ) -> BoundSource:
        """Bind one resolved source as `relation` (default: the source's own name); `temp` makes it a
        connection-local view in either mode (incremental runs bind a source over just some files)."""
        table = resolved.table
        name = relation or table.relation
        fmt = table.config.format
        if fmt == "parquet":
            select = self._parquet_select(con, resolved)
            if temp:
                con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS {select}")
            else:
                self._create(con, name, select, view=True)
        else:
            arrow = self._json_table(resolved) if fmt == "json" else self._listing_table(resolved)
            self._create_from_arrow(con, name, arrow)
        return BoundSource(table.name, name, len(resolved.files), resolved.n_files)

    # -- parquet --
    def _parquet_select(self, con: duckdb.DuckDBPyConnection, resolved: ResolvedSource) -> str:
        table = resolved.table
        transform = TRANSFORMS[table.config.transform] if table.config.transform else None
        file_column = table.config.file_column
        branches: list[tuple[str, str, str | None, pa.Schema]] = []  # (relation sql, dataset expr, file expr, schema)
        # Datasets whose shards have the same schema are read by ONE relation, with `dataset` derived
        # per file: a home of hundreds of session datasets then binds and scans as a handful of
        # relations instead of a UNION of hundreds (binding cost grows with branches x columns).
        groups: dict[str, _Group] = {}
        for name, paths in resolved.files.items():
            root = self._roots[name]
            for p in paths:
                self.parquet_files.setdefault(root.file_url(p), (root, p))
            schema, raw = self.schemas.unified(root, paths, resolved.fingerprints.get(name))
            arrow = self.mode == "session" and not is_local(root.fs)
            # Remote datasets in a session are Arrow-scanned; a pyarrow dataset has one filesystem.
            key = f"{arrow}|{id(root.fs) if arrow else ''}|{_fingerprint(schema)}"
            group = groups.setdefault(key, _Group(schema=schema, arrow=arrow))
            group.members.append((root, paths))
            group.raw.add(raw)
        for i, group in enumerate(groups.values()):
            if group.arrow:
                rel = f"__lerobot_src_{table.name}_{len(self._arrow_relations)}"
                self._arrow_relations.append(rel)
                con.register(rel, self._arrow_dataset(group.schema, group.members))
                branches.append((quote_ident(rel), '"__dataset"', '"__file"' if file_column else None, group.schema))
                continue
            urls = [root.file_url(p) for root, paths in group.members for p in paths]
            self.native_paths.extend(u for (root, paths) in group.members if is_local(root.fs) for u in map(root.file_url, paths))
            # union_by_name makes DuckDB read every footer at each bind: only when shards differ.
            options = "" if len(group.raw) == 1 and None not in group.raw else ", union_by_name = true"
            # Longest root first, so a root nested in another one is matched by its own.
            members = sorted(group.members, key=lambda m: len(m[0].path), reverse=True)
            prefixes = [(root, sql_literal(root.file_url(root.path).rstrip("/") + "/")) for root, _ in members]
            if len(group.members) > 1 or file_column:
                options += ", filename = '__lerobot_file'"
            if len(group.members) == 1:
                dataset_expr = sql_literal(group.members[0][0].name)
            else:
                # Measured: as fast as a UNION of one literal-tagged scan per dataset, and binding stays cheap.
                cases = " ".join(f"WHEN starts_with(__lerobot_file, {p}) THEN {sql_literal(root.name)}" for root, p in prefixes)
                dataset_expr = f"CASE {cases} END"
            file_expr = None
            if file_column:
                if len(prefixes) == 1:
                    file_expr = f"substr(__lerobot_file, length({prefixes[0][1]}) + 1)"
                else:
                    cases = " ".join(
                        f"WHEN starts_with(__lerobot_file, {p}) THEN substr(__lerobot_file, length({p}) + 1)" for _, p in prefixes
                    )
                    file_expr = f"CASE {cases} END"
            rel = f"read_parquet([{', '.join(sql_literal(u) for u in urls)}]{options})"
            branches.append((rel, dataset_expr, file_expr, group.schema))

        selects = []
        for rel, dataset_expr, file_expr, schema in branches:
            if transform is not None:
                inner = transform.sql(rel, dataset_expr, schema)
                if inner is None:
                    continue
                present = list(transform.columns)
                rel, dataset_expr = f"({inner})", "dataset"
            else:
                present = [n for n in schema.names if n not in ("__dataset", "__file", "__lerobot_file")]
            selects.append(self._normalize(rel, dataset_expr, file_expr, present, table))
        if not selects:
            return self._empty_select(table)
        return "\nUNION ALL BY NAME\n".join(selects)

    def _arrow_dataset(self, schema: pa.Schema, members: Sequence[tuple[DatasetRoot, list[str]]]) -> pads.Dataset:
        full = schema.append(pa.field("__dataset", pa.string())).append(pa.field("__file", pa.string()))
        paths: list[str] = []
        partitions: list[pc.Expression] = []
        for root, files in members:
            paths.extend(files)
            partitions.extend(
                (pc.field("__dataset") == root.name) & (pc.field("__file") == posixpath.relpath(f, root.path)) for f in files
            )
        return pads.FileSystemDataset.from_paths(
            paths,
            schema=full,
            format=pads.ParquetFileFormat(),
            filesystem=_pa_filesystem(members[0][0].fs),
            partitions=partitions,
        )

    @staticmethod
    def _normalize(rel: str, dataset_expr: str, file_expr: str | None, present: Sequence[str], table: SourceTable) -> str:
        """`dataset` first (and the file column), then the declared columns (cast, or typed NULL when
        absent), then the rest."""
        cols = [f"{dataset_expr} AS dataset"]
        if table.config.file_column:
            cols.append(f"{file_expr} AS {quote_ident(table.config.file_column)}")
        declared = [c for c in table.config.columns if c.data_type and c.name != "dataset"]
        declared_names = {c.name for c in declared}
        for c in declared:
            if c.name in present:
                cols.append(f"CAST({quote_ident(c.name)} AS {c.data_type}) AS {quote_ident(c.name)}")
            else:
                cols.append(f"CAST(NULL AS {c.data_type}) AS {quote_ident(c.name)}")
        cols.extend(quote_ident(n) for n in present if n not in declared_names and n != "dataset")
        return f"SELECT {', '.join(cols)} FROM {rel}"

    @staticmethod
    def _empty_select(table: SourceTable) -> str:
        cols = ["CAST(NULL AS VARCHAR) AS dataset"]
        if table.config.file_column:
            cols.append(f"CAST(NULL AS VARCHAR) AS {quote_ident(table.config.file_column)}")
        for c in table.config.columns:
            if c.name != "dataset":
                cols.append(f"CAST(NULL AS {c.data_type or 'VARCHAR'}) AS {quote_ident(c.name)}")
        return f"SELECT {', '.join(cols)} LIMIT 0"

    # -- json / listing --
    def _json_table(self, resolved: ResolvedSource) -> pa.Table:
        parser = JSON_PARSERS[resolved.table.config.parser or ""]
        rows: list[dict[str, Any]] = []
        for name, paths in resolved.files.items():
            root = self._roots[name]
            for path in paths:
                try:
                    doc = json.loads(root.fs.cat_file(path))
                except (OSError, ValueError) as exc:
                    raise SourceError(f"cannot read JSON file {root.file_url(path)}: {exc}") from exc
                try:
                    parsed = parser.parse(doc, root)
                except (AttributeError, TypeError, ValueError) as exc:
                    raise SourceError(f"unexpected content in {root.file_url(path)}: {exc}") from exc
                rows.extend({"dataset": name, **row} for row in parsed)
        schema = pa.schema([pa.field("dataset", pa.string()), *parser.schema])
        try:
            return pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise SourceError(f"source {resolved.table.name!r}: unexpected value types: {exc}") from exc

    def _listing_table(self, resolved: ResolvedSource) -> pa.Table:
        rows = []
        for name, paths in resolved.files.items():
            root = self._roots[name]
            for path in paths:
                rows.append(
                    {
                        "dataset": name,
                        "path": root.file_url(path),
                        "relative_path": posixpath.relpath(path, root.path),
                        "bytes": resolved.sizes[name][path],
                    }
                )
        return pa.Table.from_pylist(rows, schema=pa.schema([pa.field("dataset", pa.string()), *_LISTING_SCHEMA]))

    # -- creating relations --
    def _create(self, con: duckdb.DuckDBPyConnection, name: str, select: str, *, view: bool) -> None:
        if self.mode == "session":
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS {select}")
        else:
            replace_relation(con, name, select, materialized="view" if view else "table")

    def _create_from_arrow(self, con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
        if self.mode == "session":
            rel = f"__lerobot_src_{name}"
            con.register(rel, table)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS SELECT * FROM {quote_ident(rel)}")
        else:
            tmp = f"__lerobot_tmp_{name}"
            con.register(tmp, table)
            try:
                replace_relation(con, name, f"SELECT * FROM {quote_ident(tmp)}", materialized="table")
            finally:
                con.unregister(tmp)


def replace_relation(
    con: duckdb.DuckDBPyConnection,
    name: str,
    select: str,
    *,
    materialized: str,
    then: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> None:
    """CREATE OR REPLACE a table or view, dropping an object of the other kind first (DuckDB refuses to
    replace a view by a table and vice versa), atomically; `then` runs inside the same transaction
    (e.g. to record what the relation was built from)."""
    q = quote_ident(name)
    kind = "VIEW" if materialized == "view" else "TABLE"
    other = "VIEW" if kind == "TABLE" else "TABLE"
    existing = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?",
        [name],
    ).fetchall()
    con.execute("BEGIN TRANSACTION")
    try:
        if existing and ((existing[0][0] == "VIEW") != (kind == "VIEW")):
            con.execute(f"DROP {other} {q}")
        con.execute(f"CREATE OR REPLACE {kind} {q} AS {select}")
        if then is not None:
            then(con)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def remote_filesystems(datasets: Sequence[DatasetRoot]) -> list[fsspec.AbstractFileSystem]:
    """The distinct non-local filesystems of these roots: DuckDB must have them registered for views
    over remote files to be readable."""
    seen: dict[int, fsspec.AbstractFileSystem] = {}
    for root in datasets:
        if not is_local(root.fs):
            seen.setdefault(id(root.fs), root.fs)
    return list(seen.values())


def register_filesystem(con: duckdb.DuckDBPyConnection, fs: fsspec.AbstractFileSystem) -> None:
    try:
        con.register_filesystem(fs)
    except (duckdb.Error, ValueError) as exc:
        # Registering the same protocol twice on one connection is an error; the first one serves.
        if "already" not in str(exc).lower():
            raise


def find_unreadable_parquet(files: Iterable[tuple[DatasetRoot, str]], budget_s: float = 30.0) -> str | None:
    """Decode files fully until one fails; return "<url>: <error>" for it, or None.

    Used only after a query failed: DuckDB names the file for a broken footer but not for a broken page
    ("don't know what type"), and the person needs the file. Bounded by `budget_s`.
    """
    import time

    deadline = time.monotonic() + budget_s
    for root, path in files:
        if time.monotonic() > deadline:
            return None
        try:
            with _pa_filesystem(root.fs).open_input_file(path) as handle:
                pq.ParquetFile(handle).read()
        except (OSError, pa.ArrowException, ValueError) as exc:
            return f"{root.file_url(path)}: {' '.join(str(exc).split())}"
    return None
