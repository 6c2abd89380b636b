"""Which catalog tables still answer for the files on disk now, and per-file incremental state.

A relation's fingerprint is a hash over what determines its rows: its compiled SQL, the fingerprints of
the models it refs, and, for each source it reads, the source's configuration and every file it matched
(dataset, path, size and the filesystem's version marks: mtime and inode locally, ETag on object stores).

The catalog records, for each source it binds and each table it builds, the fingerprint of what it was
built from (views late-bind, so theirs is recomputed from their inputs' records). A query session computes
the fingerprints of the files as they are now and reads a catalog table instead of recomputing the model
only when the two are equal. Incremental models also record each file's fingerprint, so a session or the
next build recomputes only the files that are new or changed.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from lerobot_assets.sql.project import SqlProject
from lerobot_assets.sql.quoting import quote_ident
from lerobot_assets.sql.resolution import ResolvedSource

# Bump when the binder changes what a source relation yields for the same files (new columns, casts):
# every recorded fingerprint then stops matching, and nothing stale is ever served.
BINDING_VERSION = 2

STATE_TABLE = "__lerobot_state"
FILES_TABLE = "__lerobot_incremental_files"
SCHEMAS_TABLE = "__lerobot_parquet_schemas"
MISSING = "missing"


def digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


FileKey = tuple[str, str]  # (dataset, path relative to the dataset root)


def file_states(resolved: ResolvedSource, roots: Mapping[str, Any]) -> dict[FileKey, str]:
    """(dataset, relative path) → fingerprint of every file of a resolved source; `roots` maps dataset
    names to DatasetRoot (the url goes into the fingerprint: the same name may be another directory)."""
    out: dict[FileKey, str] = {}
    for dataset, paths in resolved.fingerprints.items():
        root = roots[dataset]
        for path, fp in paths.items():
            out[(dataset, posixpath.relpath(path, root.path))] = f"{root.file_url(path)}|{fp}"
    return out


def changed_files(current: Mapping[FileKey, str], previous: Mapping[FileKey, str]) -> tuple[set[FileKey], set[FileKey]]:
    """(new or changed files, files that are gone) between a recorded and the current file state."""
    pending = {k for k, fp in current.items() if previous.get(k) != fp}
    return pending, set(previous) - set(current)


def source_fingerprint(resolved: ResolvedSource, roots: Mapping[str, Any]) -> str:
    files = sorted((d, f, fp) for (d, f), fp in file_states(resolved, roots).items())
    # `extra` only when there is some, so the fingerprints of file sources stay what they were.
    return digest(BINDING_VERSION, resolved.table.config.model_dump(), files, *([resolved.extra] if resolved.extra else []))


def model_fingerprints(
    project: SqlProject,
    vars: Mapping[str, Any],
    source_fps: Mapping[str, str],
    stored_tables: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every model's fingerprint, in topological order.

    `source_fps`: source relation → fingerprint. With `stored_tables` (the catalog's records), a table or
    incremental model takes its recorded fingerprint (or MISSING): what the catalog holds, not what it
    would hold if rebuilt now. Without it, every model is fingerprinted from the sources as given.
    """
    fps: dict[str, str] = {}
    for name, model in project.models.items():
        if stored_tables is not None and model.materialized != "view":
            fps[name] = stored_tables.get(name, MISSING)
        else:
            fps[name] = fingerprint_of(project, name, vars, fps, source_fps)
    return fps


def fingerprint_of(
    project: SqlProject, name: str, vars: Mapping[str, Any], ref_fps: Mapping[str, str], source_fps: Mapping[str, str]
) -> str:
    """One model's fingerprint from its inputs' fingerprints."""
    model = project.models[name]
    return digest(
        project.compile(name, vars),
        [(r, ref_fps.get(r, MISSING)) for r in model.refs],
        [(t.relation, source_fps.get(t.relation, MISSING)) for t in project.source_tables(name)],
    )


def chain_hash(project: SqlProject, name: str, vars: Mapping[str, Any]) -> str:
    """What an incremental model's per-file rows depend on besides the files: the SQL of its per-file
    chain and the source's configuration. Recorded per-file rows are reusable only while it is equal."""
    return digest(
        BINDING_VERSION,
        project.per_file_source(name).config.model_dump(),
        [(n, project.compile(n, vars)) for n in project.per_file_chain(name)],
    )


# ---- the records in the catalog file ------------------------------------------------------------


@dataclass(frozen=True)
class StateRecord:
    relation: str
    kind: str  # "source" | "table" | "incremental"
    fingerprint: str
    chain_hash: str | None


def ensure_state_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (relation VARCHAR PRIMARY KEY, kind VARCHAR, "
        "fingerprint VARCHAR, chain_hash VARCHAR, updated_at TIMESTAMP DEFAULT current_timestamp)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {FILES_TABLE} (model VARCHAR, dataset VARCHAR, file VARCHAR, fingerprint VARCHAR)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {SCHEMAS_TABLE} (source VARCHAR, url VARCHAR, fingerprint VARCHAR, arrow_schema BLOB)"
    )


def read_state(con: duckdb.DuckDBPyConnection, schema: str = "main") -> dict[str, StateRecord]:
    """The records (empty when the catalog predates them)."""
    try:
        rows = con.execute(
            f"SELECT relation, kind, fingerprint, chain_hash FROM {quote_ident(schema)}.{STATE_TABLE}"
        ).fetchall()
    except duckdb.CatalogException:
        return {}
    return {r[0]: StateRecord(*r) for r in rows}


def read_file_states(con: duckdb.DuckDBPyConnection, model: str, schema: str = "main") -> dict[FileKey, str]:
    try:
        rows = con.execute(
            f"SELECT dataset, file, fingerprint FROM {quote_ident(schema)}.{FILES_TABLE} WHERE model = ?", [model]
        ).fetchall()
    except duckdb.CatalogException:
        return {}
    return {(d, f): fp for d, f, fp in rows}


def record(con: duckdb.DuckDBPyConnection, relation: str, kind: str, fingerprint: str, chain: str | None = None) -> None:
    """Upsert one record (call inside the transaction that (re)built the relation)."""
    con.execute(f"DELETE FROM {STATE_TABLE} WHERE relation = ?", [relation])
    con.execute(
        f"INSERT INTO {STATE_TABLE} (relation, kind, fingerprint, chain_hash) VALUES (?, ?, ?, ?)",
        [relation, kind, fingerprint, chain],
    )


def record_files(con: duckdb.DuckDBPyConnection, model: str, files: Mapping[FileKey, str]) -> None:
    con.execute(f"DELETE FROM {FILES_TABLE} WHERE model = ?", [model])
    if files:
        table = keys_table(files, with_fingerprint=True)
        con.register("__lerobot_files_tmp", table)
        try:
            con.execute(
                f"INSERT INTO {FILES_TABLE} SELECT ?, dataset, file, fingerprint FROM __lerobot_files_tmp", [model]
            )
        finally:
            con.unregister("__lerobot_files_tmp")


def keys_table(files: Mapping[FileKey, str] | list[FileKey], *, with_fingerprint: bool = False) -> pa.Table:
    keys = list(files)
    columns: dict[str, list[str]] = {"dataset": [k[0] for k in keys], "file": [k[1] for k in keys]}
    if with_fingerprint:
        assert isinstance(files, Mapping)
        columns["fingerprint"] = [files[k] for k in keys]
    return pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})


def record_schemas(
    con: duckdb.DuckDBPyConnection, source: str, schemas: Mapping[str, tuple[str, pa.Schema]]
) -> None:
    """The parquet schema of each file a source bound (url → (file fingerprint, schema)), so sessions
    need not open files that did not change to learn their schema."""
    con.execute(f"DELETE FROM {SCHEMAS_TABLE} WHERE source = ?", [source])
    if not schemas:
        return
    urls = list(schemas)
    table = pa.table(
        {
            "url": pa.array(urls, pa.string()),
            "fingerprint": pa.array([schemas[u][0] for u in urls], pa.string()),
            "arrow_schema": pa.array([schemas[u][1].serialize().to_pybytes() for u in urls], pa.binary()),
        }
    )
    con.register("__lerobot_schemas_tmp", table)
    try:
        con.execute(f"INSERT INTO {SCHEMAS_TABLE} SELECT ?, url, fingerprint, arrow_schema FROM __lerobot_schemas_tmp", [source])
    finally:
        con.unregister("__lerobot_schemas_tmp")


def read_schemas(con: duckdb.DuckDBPyConnection, schema: str = "main") -> dict[str, tuple[str, pa.Schema]]:
    try:
        table = con.execute(
            f"SELECT url, fingerprint, arrow_schema FROM {quote_ident(schema)}.{SCHEMAS_TABLE}"
        ).fetchall()
    except duckdb.CatalogException:
        return {}
    return {url: (fp, pa.ipc.read_schema(pa.py_buffer(blob))) for url, fp, blob in table}
