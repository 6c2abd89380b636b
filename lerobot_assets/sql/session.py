"""The read-only query session (the CLI): `QuerySession.open(...)` is an in-memory DuckDB with every source
as a view (Arrow-backed) and every model as a view over them, then locked down so ad-hoc SQL cannot read
or write files or change settings. Models the catalog file holds for exactly these files are copied in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from lerobot_assets.sql import freshness
from lerobot_assets.sql.binder import SourceBinder, lock_down
from lerobot_assets.sql.catalog import CATALOG_RELPATH
from lerobot_assets.sql.diagnose import with_culprit
from lerobot_assets.sql.discovery import DatasetRoot, discover_datasets
from lerobot_assets.sql.errors import QueryError, ReadOnlyError
from lerobot_assets.sql.incremental import bind_per_file, only_files
from lerobot_assets.sql.interrupt import interruptible
from lerobot_assets.sql.loader import load_project
from lerobot_assets.sql.project import SqlProject
from lerobot_assets.sql.quoting import quote_ident, sql_literal
from lerobot_assets.sql.remote import filesystem_for, is_local
from lerobot_assets.sql.schemas import SchemaCache

T = TypeVar("T")

_ALLOWED_STATEMENTS = frozenset({duckdb.StatementType.SELECT})  # SELECT, WITH, FROM-first, DESCRIBE, SUMMARIZE, SHOW


@dataclass(frozen=True)
class RelationInfo:
    """A queryable relation: a source table or a model, with its columns (name, DuckDB type)."""

    name: str
    kind: str  # "source" | "model"
    description: str
    columns: list[tuple[str, str]]
    detail: str  # "source lerobot.episodes from asset lerobot_dataset" / "model (table)"


@dataclass
class _Context:
    project: SqlProject
    datasets: list[DatasetRoot]
    vars: dict[str, Any] = field(default_factory=dict)


def _context(
    home: str | os.PathLike[str] | None,
    roots: Sequence[str | os.PathLike[str]],
    storage_options: Mapping[str, Any] | None,
    project: SqlProject | str | os.PathLike[str] | None,
    vars: Mapping[str, Any] | None,
) -> _Context:
    if not isinstance(project, SqlProject):
        project = load_project(project, vars=vars)
    elif vars:
        project.check_vars(vars)
    datasets = discover_datasets(home, roots, storage_options)
    return _Context(project, datasets, dict(vars or {}))


class QuerySession:
    """An in-memory, read-only DuckDB over the metadata of every dataset: sources and models as views.

    Models are computed from the files as they are now. When the data home's catalog holds a model
    built from exactly these files (same fingerprints), its table is copied in instead of recomputing
    it; an incremental model reuses the catalog's rows of every unchanged file and computes the rest.
    `served` says, per model, which happened.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        ctx: _Context,
        binder: SourceBinder,
        served: Mapping[str, str],
        catalog_note: str | None,
    ):
        self._con = con
        self.project = ctx.project
        # The datasets answering; those found but left out because a file of theirs is unreadable are
        # in `skipped` (and the `skipped_datasets` source), each with the problem naming the file.
        self.datasets = binder.datasets
        self.skipped = list(binder.skipped)
        self._binder = binder
        self._relations: list[RelationInfo] | None = None
        self.served = dict(served)
        self.catalog_note = catalog_note

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        roots: Sequence[str | os.PathLike[str]] = (),
        *,
        storage_options: Mapping[str, Any] | None = None,
        project: SqlProject | str | os.PathLike[str] | None = None,
        vars: Mapping[str, Any] | None = None,
        threads: int | None = None,
        use_catalog: bool = True,
        catalog_path: str | os.PathLike[str] | None = None,
    ) -> QuerySession:
        ctx = _context(home, roots, storage_options, project, vars)
        con = duckdb.connect(":memory:")
        try:
            # Views re-bind at every query; caching parquet footers keeps that from re-reading hundreds.
            con.execute("SET parquet_metadata_cache = true")
            if threads:
                con.execute(f"SET threads = {int(threads)}")
            path = _catalog_path(home, storage_options, catalog_path) if use_catalog else None
            attached, note = _attach_catalog(con, path)
            try:
                known = freshness.read_schemas(con, _ATTACHED) if attached else {}
                binder = SourceBinder(ctx.project, ctx.datasets, "session", schema_cache=SchemaCache(known))
                binder.bind(con)
                served = _bind_models(con, ctx, binder, freshness.read_state(con, _ATTACHED) if attached else {})
            finally:
                if attached:
                    # Attached only while the session is set up: tables are copied in, then it is detached,
                    # so a long session never holds the file's lock against the asset runs that write it.
                    con.execute(f"DETACH {_ATTACHED}")
            # Lock down last: local shards are the only readable paths (read-only, since only SELECT
            # statements are accepted), remote ones are Arrow-scanned.
            lock_down(con, binder.native_paths)
        except BaseException:
            con.close()
            raise
        return cls(con, ctx, binder, served, note)

    def relations(self) -> list[RelationInfo]:
        """Every source and model with its columns (described on first use: binding all costs time)."""
        if self._relations is None:
            self._relations = _describe_relations(self._con, self.project, self.served)
        return list(self._relations)

    def relation(self, sql: str) -> duckdb.DuckDBPyRelation:
        """A lazy DuckDB relation for one read-only statement. Raises ReadOnlyError / QueryError."""
        check_read_only(sql)
        try:
            return self._con.sql(sql)
        except duckdb.Error as exc:
            raise self.query_error(exc) from exc

    def query(self, sql: str) -> pa.Table:
        rel = self.relation(sql)
        try:
            return self.interruptible(rel.to_arrow_table) if rel is not None else pa.table({})
        except duckdb.Error as exc:
            raise self.query_error(exc) from exc

    def rows(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        rel = self.relation(sql)
        if rel is None:
            return [], []
        try:
            return list(rel.columns), self.interruptible(rel.fetchall)
        except duckdb.Error as exc:
            raise self.query_error(exc) from exc

    def interruptible(self, call: Callable[[], T]) -> T:
        """`call()` (running a relation of this session) such that Ctrl-C stops it (see interrupt.py)."""
        return interruptible(self._con, call)

    def query_error(self, exc: duckdb.Error) -> QueryError:
        """DuckDB's message, plus the unreadable file when the failure came from inside a shard."""
        return QueryError(with_culprit(exc, self._binder.parquet_files))

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> QuerySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_read_only(sql: str) -> None:
    """Accept exactly one statement whose DuckDB statement type is SELECT (covers WITH, FROM-first,
    DESCRIBE, SUMMARIZE, SHOW); refuse anything else with a message saying so."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc
    if not statements:
        raise QueryError("empty query")
    if len(statements) > 1:
        raise QueryError(f"one statement at a time, got {len(statements)}")
    kind = statements[0].type
    if kind not in _ALLOWED_STATEMENTS:
        raise ReadOnlyError(
            f"refused: {kind.name} statement. This SQL is read-only: only queries (SELECT, WITH, FROM, "
            "DESCRIBE, SUMMARIZE, SHOW) are allowed; writes, DDL, COPY/EXPORT, ATTACH, SET and PRAGMA are not."
        )


_ATTACHED = "__lerobot_catalog"


def _catalog_path(
    home: str | os.PathLike[str] | None, storage_options: Mapping[str, Any] | None, path: str | os.PathLike[str] | None
) -> Path | None:
    if path is not None:
        return Path(path)
    if home is None:
        return None
    fs, home_path = filesystem_for(os.fspath(home), storage_options)
    return Path(home_path) / CATALOG_RELPATH if is_local(fs) else None


def _attach_catalog(con: duckdb.DuckDBPyConnection, catalog: Path | None) -> tuple[bool, str | None]:
    """Attach the catalog read-only when there is one; (attached, why it is not used)."""
    if catalog is None or not catalog.is_file():
        return False, None
    try:
        con.execute(f"ATTACH {sql_literal(str(catalog))} AS {_ATTACHED} (READ_ONLY)")
    except duckdb.Error as exc:
        return False, f"catalog {catalog} not used ({' '.join(str(exc).split())}); every model computed from the files"
    return True, None


def _bind_models(
    con: duckdb.DuckDBPyConnection, ctx: _Context, binder: SourceBinder, state: Mapping[str, freshness.StateRecord]
) -> dict[str, str]:
    """Create every model in a session: copied from the attached catalog when its record matches the
    files now, incrementally for per-file models, else as a view. Returns how each was served."""
    project = ctx.project
    roots = {d.name: d for d in binder.datasets}
    source_fps = {r.table.relation: freshness.source_fingerprint(r, roots) for r in binder.resolved.values()}
    current = freshness.model_fingerprints(project, ctx.vars, source_fps) if state else {}
    served: dict[str, str] = {}
    for name, model in project.models.items():
        q = quote_ident(name)
        record = state.get(name)
        try:
            if record is not None and model.materialized != "view" and record.fingerprint == current[name]:
                con.execute(f"CREATE TEMP TABLE {q} AS SELECT * FROM {_ATTACHED}.main.{q}")
                served[name] = "catalog"
                continue
            if (
                record is not None
                and model.materialized == "incremental"
                and record.chain_hash == freshness.chain_hash(project, name, ctx.vars)
            ):
                served[name] = _bind_incremental(con, ctx, binder, name, roots)
                continue
        except duckdb.CatalogException:
            # A record without its table (dropped by hand): compute the model from the files instead.
            con.execute(f"DROP VIEW IF EXISTS {q}")
            con.execute(f"DROP TABLE IF EXISTS {q}")
        sql = project.compile(name, ctx.vars)
        try:
            con.execute(f"CREATE TEMP VIEW {q} AS {sql}")
        except duckdb.Error as exc:
            raise QueryError(f"model {name} ({model.path}) does not bind: {exc}") from exc
        served[name] = "live"
    return served


def _bind_incremental(
    con: duckdb.DuckDBPyConnection, ctx: _Context, binder: SourceBinder, name: str, roots: Mapping[str, DatasetRoot]
) -> str:
    """The catalog's rows for files unchanged since its build, plus the model over the other files."""
    project = ctx.project
    table = project.per_file_source(name)
    column = quote_ident(table.config.file_column or "")
    resolved = binder.resolved[table.name]
    current = freshness.file_states(resolved, roots)
    pending, _ = freshness.changed_files(current, freshness.read_file_states(con, name, _ATTACHED))
    reused = sorted(set(current) - pending)
    q, cached = quote_ident(name), quote_ident(f"__lerobot_cached_{name}")
    con.register("__lerobot_reused_files", freshness.keys_table(reused))
    try:
        con.execute(
            f"CREATE TEMP TABLE {cached} AS SELECT t.* FROM {_ATTACHED}.main.{q} AS t "
            f"SEMI JOIN __lerobot_reused_files AS k ON t.dataset = k.dataset AND t.{column} = k.file"
        )
    finally:
        con.unregister("__lerobot_reused_files")
    if pending:
        sql = bind_per_file(con, project, binder, name, only_files(resolved, roots, pending), ctx.vars)
        con.execute(f"CREATE TEMP VIEW {q} AS SELECT * FROM {cached} UNION ALL BY NAME ({sql})")
    else:
        con.execute(f"CREATE TEMP VIEW {q} AS SELECT * FROM {cached}")
    return f"{len(reused)} of {len(current)} files from the catalog"


def _describe_relations(
    con: duckdb.DuckDBPyConnection, project: SqlProject, served: Mapping[str, str]
) -> list[RelationInfo]:
    out = []
    for table in project.sources.values():
        cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {quote_ident(table.relation)}").fetchall()]
        detail = f"source {table.source_name}.{table.name} from asset {table.asset}"
        out.append(RelationInfo(table.relation, "source", table.config.description, cols, detail))
    for name, model in project.models.items():
        cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {quote_ident(name)}").fetchall()]
        how = served.get(name)
        detail = f"model ({model.materialized}{', ' + how if how and how != 'live' else ''})"
        out.append(RelationInfo(name, "model", model.description, cols, detail))
    return out
