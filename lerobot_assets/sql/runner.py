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
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from lerobot_assets.sql.errors import QueryError, ReadOnlyError, SourceError, SqlError
from lerobot_assets.sql.project import SqlProject, load_project, quote_ident
from lerobot_assets.sql.sources import (
    DatasetRoot,
    SchemaCache,
    SourceBinder,
    discover_datasets,
    filesystem_for,
    find_unreadable_parquet,
    is_local,
    register_filesystem,
    replace_relation,
)

CATALOG_RELPATH = "catalog/metadata.duckdb"
_ALLOWED_STATEMENTS = frozenset({duckdb.StatementType.SELECT})  # SELECT, WITH, FROM-first, DESCRIBE, SUMMARIZE, SHOW


def default_home() -> str:
    """`$LEROBOT_ASSETS_HOME`, else `./data_home`."""
    return os.environ.get("LEROBOT_ASSETS_HOME") or "data_home"


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

    def as_metadata(self) -> dict[str, Any]:
        """Plain values; the Dagster layer maps them to MetadataValue (int, TableSchema, Markdown, path)."""
        return {
            "row_count": self.row_count,
            "materialized": self.materialized,
            "columns": self.columns,
            "preview": self.preview_markdown,
            "catalog_path": self.catalog_path,
            "duration_s": round(self.duration_s, 3),
        }


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
    """An in-memory, read-only DuckDB over the metadata of every dataset: sources and models as views."""

    def __init__(self, con: duckdb.DuckDBPyConnection, ctx: _Context, binder: SourceBinder):
        self._con = con
        self.project = ctx.project
        self.datasets = ctx.datasets
        self._binder = binder
        self._relations: list[RelationInfo] | None = None

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
    ) -> QuerySession:
        ctx = _context(home, roots, storage_options, project, vars)
        con = duckdb.connect(":memory:")
        try:
            # Views re-bind at every query; caching parquet footers keeps that from re-reading hundreds.
            con.execute("SET parquet_metadata_cache = true")
            if threads:
                con.execute(f"SET threads = {int(threads)}")
            binder = SourceBinder(ctx.project, ctx.datasets, "session")
            binder.bind(con)
            for name, model in ctx.project.models.items():
                sql = ctx.project.compile(name, ctx.vars)
                try:
                    # Every model is a view here: answers are always computed from the files as they are now.
                    con.execute(f"CREATE TEMP VIEW {quote_ident(name)} AS {sql}")
                except duckdb.Error as exc:
                    raise QueryError(f"model {name} ({model.path}) does not bind: {exc}") from exc
            # Lock down last: from here on SQL cannot touch files (COPY, EXPORT, ATTACH, read_csv('/etc/..'),
            # INSTALL) nor undo the settings. The views keep working: local shards are the only allowed
            # paths (read-only, since only SELECT statements are accepted), remote ones are Arrow-scanned.
            if binder.native_paths:
                paths = ", ".join("'" + p.replace("'", "''") + "'" for p in sorted(set(binder.native_paths)))
                con.execute(f"SET allowed_paths = [{paths}]")
            con.execute("SET python_enable_replacements = false")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return cls(con, ctx, binder)

    def relations(self) -> list[RelationInfo]:
        """Every source and model with its columns (described on first use: binding all costs time)."""
        if self._relations is None:
            self._relations = _describe_relations(self._con, self.project)
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
            return rel.fetch_arrow_table() if rel is not None else pa.table({})
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


def _describe_relations(con: duckdb.DuckDBPyConnection, project: SqlProject) -> list[RelationInfo]:
    out = []
    for table in project.sources.values():
        cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {quote_ident(table.relation)}").fetchall()]
        detail = f"source {table.source_name}.{table.name} from asset {table.asset}"
        out.append(RelationInfo(table.relation, "source", table.config.description, cols, detail))
    for name, model in project.models.items():
        cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {quote_ident(name)}").fetchall()]
        out.append(RelationInfo(name, "model", model.description, cols, f"model ({model.materialized})"))
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
        for fs in _remote_filesystems(self._datasets_cached()):
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
    def refresh_sources(self, con: duckdb.DuckDBPyConnection, names: Iterable[str] | None = None) -> None:
        tables = list(self.project.sources.values())
        if names is not None:
            wanted = set(names)
            tables = [t for t in tables if t.name in wanted]
        binder = SourceBinder(self.project, self._datasets_cached(refresh=True), "catalog", schema_cache=SchemaCache())
        binder.bind(con, tables)
        self._files.update(binder.parquet_files)

    # -- models --
    def materialize(self, name: str, *, with_upstream: bool = False) -> ModelResult:
        """(Re)create one model in the catalog (and its ancestors first with `with_upstream`)."""
        if name not in self.project.models:
            raise SqlError(f"unknown model {name!r}")
        return self._run(self.project.ancestors([name]) if with_upstream else [name])[-1]

    def materialize_all(self, names: Iterable[str] | None = None) -> list[ModelResult]:
        """Every model (or `names` and their ancestors) in dependency order, in one connection."""
        return self._run(self.project.ancestors(names) if names is not None else self.project.topological_order())

    def _run(self, order: Sequence[str]) -> list[ModelResult]:
        con = self.connect()
        try:
            # The sources these models read, refreshed once: discovery and footers are the slow part.
            tables = {t.name for n in order for t in self.project.source_tables(n)}
            self.refresh_sources(con, tables)
            return [self._materialize_one(con, n) for n in order]
        finally:
            con.close()

    def _materialize_one(self, con: duckdb.DuckDBPyConnection, name: str) -> ModelResult:
        start = time.perf_counter()
        model = self.project.models[name]
        existing = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        missing = [r for r in model.refs if r not in existing]
        if missing:
            raise SqlError(f"model {name}: upstream models not materialized in {self.path}: {', '.join(missing)}")
        sql = self.project.compile(name, self.vars)
        try:
            replace_relation(con, name, sql, materialized=model.materialized)
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
        )

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


def _remote_filesystems(datasets: Sequence[DatasetRoot]) -> list[Any]:
    seen: dict[int, Any] = {}
    for root in datasets:
        if not is_local(root.fs):
            seen.setdefault(id(root.fs), root.fs)
    return list(seen.values())


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
