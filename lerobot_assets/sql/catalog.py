"""The persistent catalog file (assets): `Catalog(...)` is `<home>/catalog/metadata.duckdb`.

`materialize(model)` refreshes the sources the model reads, (re)creates the model as a table or view and
returns its row count, schema and a preview; `run_data_test(test)` returns the failing rows. One call per
Dagster asset / asset check.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from lerobot_assets.home.layout import default_home
from lerobot_assets.sql import freshness
from lerobot_assets.sql.binder import SkippedDataset, SourceBinder, lock_down, replace_relation, rollback
from lerobot_assets.sql.diagnose import with_culprit
from lerobot_assets.sql.discovery import DatasetRoot, discover_datasets, remote_filesystems
from lerobot_assets.sql.errors import CatalogBusyError, QueryError, SourceError, SqlError
from lerobot_assets.sql.formatting import to_markdown
from lerobot_assets.sql.incremental import bind_per_file, only_files
from lerobot_assets.sql.interrupt import interruptible
from lerobot_assets.sql.loader import load_project
from lerobot_assets.sql.project import SqlProject
from lerobot_assets.sql.quoting import quote_ident
from lerobot_assets.sql.remote import filesystem_for, is_local, register_filesystem
from lerobot_assets.sql.resolution import ResolvedSource
from lerobot_assets.sql.schemas import SchemaCache

CATALOG_RELPATH = "catalog/metadata.duckdb"


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
    # datasets left out of this build because a file of theirs cannot be read
    skipped: tuple[SkippedDataset, ...] = ()

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
        if self.skipped:
            out["skipped_datasets"] = [str(d) for d in self.skipped]
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


class Catalog:
    """The DuckDB catalog file under the data home, where models are materialized.

    Each `materialize()` opens the file, re-discovers the datasets and refreshes only the sources the model
    reads directly (parquet sources as views over explicit file lists, JSON sources as small tables), so
    an asset run always sees the shards on disk now. Upstream models must already be materialized (the
    Dagster graph guarantees it) unless `with_upstream=True`.

    `home=None` is the default home, unless `roots` are given: then only those roots, and `path` is
    required (there is no home to hold the catalog).
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
        preview_rows: int = 10,
    ) -> None:
        # No home and no roots: the default home. Roots without a home: only those roots (as in
        # QuerySession.open), never the default home's datasets beside them.
        if home is None and not roots:
            home = default_home()
        self.home = os.fspath(home) if home is not None else None
        self.roots = list(roots)
        self.storage_options = dict(storage_options or {})
        self.project = project if isinstance(project, SqlProject) else load_project(project, vars=vars)
        if vars and isinstance(project, SqlProject):
            self.project.check_vars(vars)
        self.vars = dict(vars or {})
        self.preview_rows = preview_rows
        if path is None:
            if self.home is None:
                raise SourceError("a catalog of dataset roots without a data home needs a catalog file path")
            fs, home_path = filesystem_for(self.home, self.storage_options)
            if not is_local(fs):
                raise SourceError(f"the data home {self.home} is remote: pass a local catalog path")
            path = Path(home_path) / CATALOG_RELPATH
        self.path = Path(path)
        self._files: dict[str, tuple[DatasetRoot, str]] = {}
        # Datasets the last refresh left out (a file of theirs cannot be read), each naming the problem.
        self.skipped: list[SkippedDataset] = []

    # -- connection --
    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        """Open the catalog file with the filesystems of remote roots registered, so views over remote
        files are readable.

        DuckDB lets one process write a file at a time. Dagster steps that use the catalog share the
        `duckdb_catalog` pool, so the instance queues them (pool limit 1) instead of this waiting on the
        lock; anything else holding it is an error that says so.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise SqlError(f"catalog {self.path} cannot be opened: {_one_line(exc)}") from exc
            raise CatalogBusyError(
                f"{self.path}: the catalog is in use by another process ({exc}); wait for it to finish "
                f"(Dagster runs queue on the duckdb_catalog pool when its limit is 1)"
            ) from exc
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
    def refresh_sources(
        self, con: duckdb.DuckDBPyConnection, names: Iterable[str] | None = None, *, in_transaction: bool = False
    ) -> SourceBinder:
        """Re-bind these sources (all by default) over the files on disk now, recording each one's
        fingerprint so query sessions can tell whether tables built from them are still current.
        `in_transaction`: inside the caller's open transaction (see `_build`)."""
        tables = list(self.project.sources.values())
        if names is not None:
            wanted = set(names)
            tables = [t for t in tables if t.name in wanted]
        freshness.ensure_state_tables(con)
        schemas = SchemaCache(freshness.read_schemas(con))
        binder = SourceBinder(
            self.project, self._datasets_cached(refresh=True), "catalog", schema_cache=schemas, in_transaction=in_transaction
        )
        binder.bind(con, tables)
        self.skipped = list(binder.skipped)
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
        with self._build() as con:

            def build() -> list[ModelResult]:
                # The sources these models read, refreshed once: discovery and footers are the slow part.
                # An incremental model reads its per-file source through refs; that one is refreshed too.
                tables = {t.name for n in order for t in self.project.source_tables(n)}
                tables |= {self.project.per_file_source(n).name for n in order if self.project.models[n].per_file_of}
                binder = self.refresh_sources(con, tables, in_transaction=True)
                # Model SQL runs only after this: it reads the datasets' files and writes the catalog, nothing else.
                lock_down(con, binder.readable_paths())
                results = []
                for name in order:
                    results.append(self._materialize_one(con, name, binder, force))
                    if progress is not None:
                        progress(results[-1])
                return results

            return interruptible(con, build)

    @contextlib.contextmanager
    def _build(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The catalog connection with one transaction open: what is done in it is committed together at
        the end, or not at all. A build that fails (bad SQL, Ctrl-C, a full disk) leaves the catalog as it
        was, and a catalog file (and folders) that the build created are removed again."""
        made = [d for d in (self.path.parent, *self.path.parent.parents) if not d.exists()]
        created = not self.path.exists()
        con: duckdb.DuckDBPyConnection | None = None
        committed = False
        try:
            con = self.connect()
            con.execute("BEGIN TRANSACTION")
            yield con
            try:
                con.execute("COMMIT")
            except duckdb.Error as exc:
                outcome = "not created" if created else "it is unchanged"
                raise SqlError(f"catalog {self.path} not written ({outcome}): {_one_line(exc)}") from exc
            committed = True
        except BaseException:
            if con is not None:
                rollback(con)
            raise
        finally:
            if con is not None:
                try:
                    con.close()
                except duckdb.Error as exc:
                    if committed:  # the build is in the WAL; it is replayed at the next open
                        raise SqlError(f"catalog {self.path}: cannot be closed cleanly: {_one_line(exc)}") from exc
            if created and not committed:
                for leftover in (self.path, self.path.with_name(self.path.name + ".wal")):
                    leftover.unlink(missing_ok=True)
                for folder in made:  # deepest first
                    with contextlib.suppress(OSError):
                        folder.rmdir()

    def _explain(self, exc: duckdb.Error) -> str:
        """DuckDB's message; a failure to read a source file also names the file, but an error about the
        catalog file itself (writing it: a full disk) is not a source problem and names itself."""
        if str(self.path) in str(exc):
            return _one_line(exc)
        return with_culprit(exc, self._files)

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
                replace_relation(con, name, sql, materialized=model.materialized, then=then, in_transaction=True)
        except duckdb.Error as exc:
            raise QueryError(f"model {name} ({model.path}) failed: {self._explain(exc)}") from exc
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
            skipped=tuple(self.skipped),
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
            pending, gone = set(current), set[freshness.FileKey]()
        else:
            pending, gone = freshness.changed_files(current, previous)
        sql = bind_per_file(con, self.project, binder, name, only_files(resolved, roots, pending), self.vars)
        q = quote_ident(name)

        def record_all(c: duckdb.DuckDBPyConnection) -> None:
            _check_per_file_columns(c, name, column)
            freshness.record_files(c, name, current)
            freshness.record(c, name, "incremental", fingerprint, chain)

        # Inside the build's transaction (see _build): the rows, the per-file records and the model's
        # record change together or not at all.
        if previous is None:
            replace_relation(con, name, sql, materialized="table", then=record_all, in_transaction=True)
        else:
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
        return sql, {"computed": len(pending), "reused": len(current) - len(pending), "removed": len(gone)}

    # -- reading a built model --
    def read_model(self, name: str) -> pa.Table:
        """The rows of model `name` as the catalog holds them (a table the last build wrote); for a
        Dagster asset downstream of that model's asset, which has just built it."""
        if name not in self.project.models:
            raise SqlError(f"unknown model {name!r}")
        if not self.path.is_file():
            raise SqlError(f"{self.path}: no catalog yet; materialize the {name} model first")
        con = self.connect(read_only=True)
        try:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            if name not in tables:
                raise SqlError(f"{self.path}: the catalog has no table {name!r}; materialize that model first")
            return con.sql(f"SELECT * FROM {quote_ident(name)}").to_arrow_table()
        finally:
            con.close()

    # -- data tests --
    def run_data_test(self, name: str) -> DataTestResult:
        test = self.project.tests[name]
        sql = self.project.compile(name, self.vars)
        with self._build() as con:

            def run() -> tuple[int, list[str], list[tuple[Any, ...]]]:
                binder = self.refresh_sources(con, [t.name for t in self.project.source_tables(name)], in_transaction=True)
                lock_down(con, binder.readable_paths())
                try:
                    failing = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]  # type: ignore[index]
                    cols, rows = _fetch(con, f"SELECT * FROM ({sql}) LIMIT {int(self.preview_rows)}")
                except duckdb.Error as exc:
                    raise QueryError(f"data test {name} ({test.path}) failed to run: {self._explain(exc)}") from exc
                return failing, cols, rows

            failing, cols, rows = interruptible(con, run)
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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description or []]
    return cols, cur.fetchall()
