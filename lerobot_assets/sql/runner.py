"""Running the project with DuckDB: a read-only query session (the CLI) and the catalog file (assets).

* `QuerySession.open(...)`: an in-memory DuckDB with every source as a view (Arrow-backed) and every model
  as a view over them, then locked down so ad-hoc SQL cannot read or write files or change settings.
* `Catalog(...)`: the persistent `<home>/catalog/metadata.duckdb`. `materialize(model)` refreshes the
  sources the model reads, (re)creates the model as a table or view and returns its row count, schema and
  a preview; `run_data_test(test)` returns the failing rows. One call per Dagster asset / asset check.
"""

from __future__ import annotations

import math
import os
import posixpath
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from lerobot_assets.home.layout import default_home
from lerobot_assets.sql import freshness
from lerobot_assets.sql.errors import QueryError, ReadOnlyError, SourceError, SqlError
from lerobot_assets.sql.project import SqlProject, load_project, quote_ident, sql_literal
from lerobot_assets.sql.sources import (
    DatasetRoot,
    ResolvedSource,
    SchemaCache,
    SourceBinder,
    discover_datasets,
    filesystem_for,
    find_unreadable_parquet,
    is_local,
    register_filesystem,
    remote_filesystems,
    replace_relation,
)

CATALOG_RELPATH = "catalog/metadata.duckdb"
_ALLOWED_STATEMENTS = frozenset({duckdb.StatementType.SELECT})  # SELECT, WITH, FROM-first, DESCRIBE, SUMMARIZE, SHOW


@dataclass(frozen=True)
class RelationInfo:
    """A queryable relation: a source table or a model, with its columns (name, DuckDB type)."""

    name: str
    kind: str  # "source" | "model"
    description: str
    columns: list[tuple[str, str]]
    detail: str  # "source lerobot.episodes from asset lerobot_dataset" / "model (table)"


@dataclass(frozen=True)
class ModelResult:
    """What a model's materialization reports: the Dagster asset turns it into metadata 1:1."""

    name: str
    materialized: str
    row_count: int
    columns: list[tuple[str, str]]
    preview_rows: list[dict[str, Any]]
    preview_markdown: str
    catalog_path: str
    duration_s: float
    sql: str
    # incremental models: how many files were (re)computed, reused from the last build, and dropped
    files_computed: int | None = None
    files_reused: int | None = None
    files_removed: int | None = None
    # a table whose recorded inputs equal the current ones is kept as it is, not rebuilt
    up_to_date: bool = False

    def as_metadata(self) -> dict[str, Any]:
        """Plain values; the Dagster layer maps them to MetadataValue (int, TableSchema, Markdown, path)."""
        out: dict[str, Any] = {
            "row_count": self.row_count,
            "materialized": self.materialized,
            "columns": self.columns,
            "preview": self.preview_markdown,
            "catalog_path": self.catalog_path,
            "duration_s": round(self.duration_s, 3),
            "up_to_date": self.up_to_date,
        }
        if self.files_computed is not None:
            out.update(files_computed=self.files_computed, files_reused=self.files_reused, files_removed=self.files_removed)
        return out


@dataclass(frozen=True)
class DataTestResult:
    name: str
    model: str
    severity: str
    blocking: bool
    failing_rows: int
    preview_markdown: str
    sql: str

    @property
    def passed(self) -> bool:
        return self.failing_rows == 0


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
    datasets = discover_datasets(home, roots, storage_options)
    return _Context(project, datasets, dict(vars or {}))


# ---- read-only query session ----------------------------------------------------------------------


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
        self.datasets = ctx.datasets
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
            # Lock down last: from here on SQL cannot touch files (COPY, EXPORT, ATTACH, read_csv('/etc/..'),
            # INSTALL) nor undo the settings. The views keep working: local shards are the only allowed
            # paths (read-only, since only SELECT statements are accepted), remote ones are Arrow-scanned.
            if binder.native_paths:
                paths = ", ".join(sql_literal(p) for p in sorted(set(binder.native_paths)))
                con.execute(f"SET allowed_paths = [{paths}]")
            con.execute("SET python_enable_replacements = false")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
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
            return rel.to_arrow_table() if rel is not None else pa.table({})
        except duckdb.Error as exc:
            raise self.query_error(exc) from exc

    def rows(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        rel = self.relation(sql)
        if rel is None:
            return [], []
        try:
            return list(rel.columns), rel.fetchall()
        except duckdb.Error as exc:
            raise self.query_error(exc) from exc

    def query_error(self, exc: duckdb.Error) -> QueryError:
        """DuckDB's message, plus the unreadable file when the failure came from inside a shard."""
        return QueryError(_with_culprit(exc, self._binder.parquet_files))

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> QuerySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Errors about the SQL itself; anything else may come from reading a broken file.
_SQL_ERRORS = (
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.ConversionException,
    duckdb.PermissionException,
    duckdb.OutOfRangeException,
    duckdb.NotImplementedException,
)


def _with_culprit(exc: duckdb.Error, files: Mapping[str, tuple[DatasetRoot, str]]) -> str:
    message = str(exc)
    if isinstance(exc, _SQL_ERRORS) or any(url in message for url in files):
        return message
    culprit = find_unreadable_parquet(files.values())
    return f"{message}\n(unreadable parquet file {culprit})" if culprit else message


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
        sql = bind_per_file(con, project, binder, name, _subset(resolved, roots, pending), ctx.vars)
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


# ---- the catalog file ------------------------------------------------------------------------------


class Catalog:
    """The DuckDB catalog file under the data home, where models are materialized.

    Each `materialize()` opens the file, re-discovers the datasets and refreshes only the sources the model
    reads directly (parquet sources as views over explicit file lists, JSON sources as small tables), so
    an asset run always sees the shards on disk now. Upstream models must already be materialized (the
    Dagster graph guarantees it) unless `with_upstream=True`.
    """

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        roots: Sequence[str | os.PathLike[str]] = (),
        storage_options: Mapping[str, Any] | None = None,
        project: SqlProject | str | os.PathLike[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        vars: Mapping[str, Any] | None = None,
        lock_timeout_s: float = 120.0,
        preview_rows: int = 10,
    ) -> None:
        self.home = os.fspath(home) if home is not None else default_home()
        self.roots = list(roots)
        self.storage_options = dict(storage_options or {})
        self.project = project if isinstance(project, SqlProject) else load_project(project, vars=vars)
        self.vars = dict(vars or {})
        self.lock_timeout_s = lock_timeout_s
        self.preview_rows = preview_rows
        if path is None:
            fs, home_path = filesystem_for(self.home, self.storage_options)
            if not is_local(fs):
                raise SourceError(f"the data home {self.home} is remote: pass a local catalog path")
            path = Path(home_path) / CATALOG_RELPATH
        self.path = Path(path)
        self._files: dict[str, tuple[DatasetRoot, str]] = {}

    # -- connection --
    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """Open the catalog file (waiting while another process holds its lock) with the filesystems of
        remote roots registered, so views over remote files are readable."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                # Dagster's multiprocess executor runs several model steps at once; DuckDB allows one
                # writer process per file, so wait for the lock instead of failing the step.
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        for fs in remote_filesystems(self._datasets_cached()):
            register_filesystem(con, fs)
        return con

    _datasets: list[DatasetRoot] | None = None

    def _datasets_cached(self, refresh: bool = False) -> list[DatasetRoot]:
        if self._datasets is None or refresh:
            self._datasets = discover_datasets(self.home, self.roots, self.storage_options)
        return self._datasets

    def datasets(self) -> list[DatasetRoot]:
        return list(self._datasets_cached(refresh=True))

    # -- sources --
    def refresh_sources(self, con: duckdb.DuckDBPyConnection, names: Iterable[str] | None = None) -> SourceBinder:
        """Re-bind these sources (all by default) over the files on disk now, recording each one's
        fingerprint so query sessions can tell whether tables built from them are still current."""
        tables = list(self.project.sources.values())
        if names is not None:
            wanted = set(names)
            tables = [t for t in tables if t.name in wanted]
        freshness.ensure_state_tables(con)
        schemas = SchemaCache(freshness.read_schemas(con))
        binder = SourceBinder(self.project, self._datasets_cached(refresh=True), "catalog", schema_cache=schemas)
        binder.bind(con, tables)
        self._files.update(binder.parquet_files)
        roots = {d.name: d for d in binder.datasets}
        for name, resolved in binder.resolved.items():
            freshness.record(con, resolved.table.relation, "source", freshness.source_fingerprint(resolved, roots))
            if resolved.table.config.format == "parquet":
                freshness.record_schemas(con, name, _schemas_of(binder, resolved, roots))
        return binder

    # -- models --
    def materialize(self, name: str, *, with_upstream: bool = False, force: bool = False) -> ModelResult:
        """(Re)create one model in the catalog (and its ancestors first with `with_upstream`).

        A table already built from the same inputs is kept (`up_to_date`); an incremental model
        recomputes only new or changed files. `force` rebuilds from scratch.
        """
        if name not in self.project.models:
            raise SqlError(f"unknown model {name!r}")
        return self._run(self.project.ancestors([name]) if with_upstream else [name], force)[-1]

    def materialize_all(
        self,
        names: Iterable[str] | None = None,
        *,
        force: bool = False,
        progress: Callable[[ModelResult], None] | None = None,
    ) -> list[ModelResult]:
        """Every model (or `names` and their ancestors) in dependency order, in one connection;
        `progress` is called after each model."""
        order = self.project.ancestors(names) if names is not None else self.project.topological_order()
        return self._run(order, force, progress)

    def _run(
        self, order: Sequence[str], force: bool = False, progress: Callable[[ModelResult], None] | None = None
    ) -> list[ModelResult]:
        con = self.connect()
        try:
            # The sources these models read, refreshed once: discovery and footers are the slow part.
            # An incremental model reads its per-file source through refs; that one is refreshed too.
            tables = {t.name for n in order for t in self.project.source_tables(n)}
            tables |= {self.project.per_file_source(n).name for n in order if self.project.models[n].per_file_of}
            binder = self.refresh_sources(con, tables)
            results = []
            for name in order:
                results.append(self._materialize_one(con, name, binder, force))
                if progress is not None:
                    progress(results[-1])
            return results
        finally:
            con.close()

    def _fingerprint(self, state: Mapping[str, freshness.StateRecord], name: str) -> str:
        """The fingerprint of what `name` would be built from now: recorded sources and tables, and
        views resolved through them (views late-bind, so they have no record of their own)."""
        sources = {r.relation: r.fingerprint for r in state.values() if r.kind == "source"}
        tables = {r.relation: r.fingerprint for r in state.values() if r.kind != "source"}
        fps = freshness.model_fingerprints(self.project, self.vars, sources, tables)
        return freshness.fingerprint_of(self.project, name, self.vars, fps, sources)

    def _materialize_one(
        self, con: duckdb.DuckDBPyConnection, name: str, binder: SourceBinder, force: bool = False
    ) -> ModelResult:
        start = time.perf_counter()
        model = self.project.models[name]
        kinds = dict(
            con.execute(
                "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = current_schema()"
            ).fetchall()
        )
        missing = [r for r in model.refs if r not in kinds]
        if missing:
            raise SqlError(f"model {name}: upstream models not materialized in {self.path}: {', '.join(missing)}")
        state = freshness.read_state(con)
        fingerprint = self._fingerprint(state, name)
        record = state.get(name) if kinds.get(name) == "BASE TABLE" and not force else None
        counts: dict[str, int] = {}
        up_to_date = model.materialized == "table" and record is not None and record.fingerprint == fingerprint
        sql = self.project.compile(name, self.vars)
        try:
            if model.materialized == "incremental":
                sql, counts = self._build_incremental(con, name, binder, fingerprint, record)
            elif not up_to_date:  # an up-to-date table was built from exactly these inputs: kept
                then = None
                if model.materialized == "table":
                    then = lambda c: freshness.record(c, name, "table", fingerprint)  # noqa: E731
                replace_relation(con, name, sql, materialized=model.materialized, then=then)
        except duckdb.Error as exc:
            raise QueryError(f"model {name} ({model.path}) failed: {_with_culprit(exc, self._files)}") from exc
        q = quote_ident(name)
        row_count = con.execute(f"SELECT count(*) FROM {q}").fetchone()[0]  # type: ignore[index]
        columns = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {q}").fetchall()]
        cols, rows = _fetch(con, f"SELECT * FROM {q} LIMIT {int(self.preview_rows)}")
        return ModelResult(
            name=name,
            materialized=model.materialized,
            row_count=int(row_count),
            columns=columns,
            preview_rows=[dict(zip(cols, r)) for r in rows],
            preview_markdown=to_markdown(cols, rows),
            catalog_path=str(self.path),
            duration_s=time.perf_counter() - start,
            sql=sql,
            files_computed=counts.get("computed"),
            files_reused=counts.get("reused"),
            files_removed=counts.get("removed"),
            up_to_date=up_to_date,
        )

    def _build_incremental(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        binder: SourceBinder,
        fingerprint: str,
        record: freshness.StateRecord | None,
    ) -> tuple[str, dict[str, int]]:
        """Recompute an incremental model for the files that are new or changed since its last build
        (`record`: None for a build from scratch), drop the rows of files that are gone, keep the rest;
        all in one transaction."""
        table = self.project.per_file_source(name)
        column = table.config.file_column or ""
        resolved = binder.resolved[table.name]
        roots = {d.name: d for d in binder.datasets}
        current = freshness.file_states(resolved, roots)
        chain = freshness.chain_hash(self.project, name, self.vars)
        previous = freshness.read_file_states(con, name) if record is not None and record.chain_hash == chain else None
        if previous is None:
            pending, gone = set(current), set()
        else:
            pending, gone = freshness.changed_files(current, previous)
        sql = bind_per_file(con, self.project, binder, name, _subset(resolved, roots, pending), self.vars)
        q = quote_ident(name)

        def record_all(c: duckdb.DuckDBPyConnection) -> None:
            _check_per_file_columns(c, name, column)
            freshness.record_files(c, name, current)
            freshness.record(c, name, "incremental", fingerprint, chain)

        if previous is None:
            replace_relation(con, name, sql, materialized="table", then=record_all)
        else:
            con.execute("BEGIN TRANSACTION")
            try:
                stale = pending | gone
                if stale:
                    con.register("__lerobot_stale_files", freshness.keys_table(sorted(stale)))
                    con.execute(
                        f"DELETE FROM {q} WHERE ({q}.dataset, {q}.{quote_ident(column)}) IN "
                        "(SELECT (dataset, file) FROM __lerobot_stale_files)"
                    )
                    con.unregister("__lerobot_stale_files")
                if pending:
                    con.execute(f"INSERT INTO {q} BY NAME {sql}")
                record_all(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return sql, {"computed": len(pending), "reused": len(current) - len(pending), "removed": len(gone)}

    # -- data tests --
    def run_data_test(self, name: str) -> DataTestResult:
        test = self.project.tests[name]
        sql = self.project.compile(name, self.vars)
        con = self.connect()
        try:
            if test.sources:
                self.refresh_sources(con, [t.name for t in self.project.source_tables(name)])
            try:
                failing = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]  # type: ignore[index]
                cols, rows = _fetch(con, f"SELECT * FROM ({sql}) LIMIT {int(self.preview_rows)}")
            except duckdb.Error as exc:
                raise QueryError(f"data test {name} ({test.path}) failed to run: {_with_culprit(exc, self._files)}") from exc
        finally:
            con.close()
        return DataTestResult(
            name=name,
            model=test.model,
            severity=test.config.severity,
            blocking=test.blocking,
            failing_rows=int(failing),
            preview_markdown=to_markdown(cols, rows) if rows else "",
            sql=sql,
        )

    def run_data_tests(self, model: str | None = None) -> list[DataTestResult]:
        tests = self.project.tests_for(model) if model else list(self.project.tests.values())
        return [self.run_data_test(t.name) for t in tests]


def bind_per_file(
    con: duckdb.DuckDBPyConnection,
    project: SqlProject,
    binder: SourceBinder,
    name: str,
    files: ResolvedSource,
    vars: Mapping[str, Any],
) -> str:
    """The SQL of an incremental model evaluated over only `files` of its per-file source: the source
    and every model between it and the model are bound again as temp views over those files."""
    source = project.per_file_source(name)
    relations = {source.relation: f"__lerobot_pending_{source.relation}"}
    binder.bind_resolved(con, files, relations[source.relation], temp=True)
    for upstream in project.per_file_chain(name)[:-1]:
        relation = f"__lerobot_pending_{upstream}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(relation)} AS {project.compile(upstream, vars, relations)}")
        relations[upstream] = relation
    return project.compile(name, vars, relations)


def _subset(resolved: ResolvedSource, roots: Mapping[str, DatasetRoot], keys: set[freshness.FileKey]) -> ResolvedSource:
    return resolved.subset(lambda dataset, path: (dataset, posixpath.relpath(path, roots[dataset].path)) in keys)


def _schemas_of(
    binder: SourceBinder, resolved: ResolvedSource, roots: Mapping[str, DatasetRoot]
) -> dict[str, tuple[str, pa.Schema]]:
    out = {}
    for dataset, paths in resolved.fingerprints.items():
        root = roots[dataset]
        for path, fp in paths.items():
            schema = binder.schemas.get(root, path)
            if schema is not None:
                out[root.file_url(path)] = (fp, schema)
    return out


def _check_per_file_columns(con: duckdb.DuckDBPyConnection, name: str, column: str) -> None:
    have = {r[0] for r in con.execute(f"DESCRIBE {quote_ident(name)}").fetchall()}
    lacking = [c for c in ("dataset", column) if c not in have]
    if lacking:
        raise SqlError(
            f"incremental model {name} must output the columns dataset and {column} (its rows are kept per "
            f"file); it lacks {', '.join(lacking)}"
        )


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description or []]
    return cols, cur.fetchall()


# ---- formatting ---------------------------------------------------------------------------------


def format_value(value: Any, max_len: int = 60) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        text = repr(value)
    elif isinstance(value, (list, tuple)) and len(value) > 8:
        text = "[" + ", ".join(format_value(v, 20) for v in value[:8]) + f", … ({len(value)} items)]"
    else:
        text = str(value)
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def to_markdown(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (Dagster renders it as the asset's preview)."""

    def cell(v: Any) -> str:
        return format_value(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines.extend("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)
    return "\n".join(lines)
