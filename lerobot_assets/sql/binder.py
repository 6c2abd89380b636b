"""Binding each source as a DuckDB relation with a `dataset` column.

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
"""

from __future__ import annotations

import functools
import json
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from lerobot_assets.sql.discovery import DatasetRoot, remote_filesystems
from lerobot_assets.sql.errors import SourceError
from lerobot_assets.sql.parsers import JSON_PARSERS
from lerobot_assets.sql.project import SourceTable, SqlProject
from lerobot_assets.sql.quoting import glob_literal, quote_ident, sql_literal
from lerobot_assets.sql.remote import arrow_filesystem, is_local, register_filesystem
from lerobot_assets.sql.resolution import ResolvedSource, remembered, resolve_source
from lerobot_assets.sql.schemas import SchemaCache, schema_fingerprint
from lerobot_assets.sql.transforms import TRANSFORMS

_LISTING_SCHEMA = pa.schema([("path", pa.string()), ("relative_path", pa.string()), ("bytes", pa.int64())])


BindMode = Literal["session", "catalog"]


@dataclass
class _Group:
    schema: pa.Schema
    arrow: bool
    raw: set[str | None] = field(default_factory=set)  # raw shard schemas (None: a dataset's shards differ)
    members: list[tuple[DatasetRoot, list[str]]] = field(default_factory=list)


@dataclass(frozen=True)
class SkippedDataset:
    """A dataset found under a home but left out: a file of it cannot be read (`problem` names it)."""

    name: str
    url: str
    problem: str

    def __str__(self) -> str:
        return f"{self.name} ({self.url}): {self.problem}"


_SKIPPED_SCHEMA = pa.schema([("root", pa.string()), ("problem", pa.string())])


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
        in_transaction: bool = False,
    ) -> None:
        self.project = project
        # catalog mode: the caller holds a transaction that takes in every relation created here
        self.in_transaction = in_transaction
        self.datasets = list(datasets)
        self.mode = mode
        self.schemas = schema_cache or SchemaCache()
        self._roots = {d.name: d for d in self.datasets}
        # Files the views read through DuckDB's own reader (local ones, and remote ones through the
        # registered filesystem in the catalog), each also as its literal pattern: the connection allows
        # exactly these before locking down (see lock_down).
        self.native_paths: list[str] = []
        # Every parquet file bound, to name the culprit when a query fails inside one (see below).
        self.parquet_files: dict[str, tuple[DatasetRoot, str]] = {}
        # What each bound source resolved to: its files and their fingerprints (freshness checks).
        self.resolved: dict[str, ResolvedSource] = {}
        # Datasets left out by check_datasets, and what it read on the way (reused when binding).
        self.skipped: list[SkippedDataset] = []
        self._checked = False
        self._per_root: dict[str, dict[str, ResolvedSource]] = {}  # source → dataset → its files
        self._json_rows: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (source, dataset) → rows
        self._arrow_relations: list[str] = []

    def bind(self, con: duckdb.DuckDBPyConnection, tables: Iterable[SourceTable] | None = None) -> list[BoundSource]:
        self.check_datasets()
        if self.mode == "catalog":
            for fs in remote_filesystems(self.datasets):
                register_filesystem(con, fs)
        out = []
        for table in tables if tables is not None else self.project.sources.values():
            resolved = self.resolve(table)
            self.resolved[table.name] = resolved
            try:
                out.append(self.bind_resolved(con, resolved))
            except duckdb.Error as exc:
                # Files that read but do not hold what the source needs (e.g. episodes without an
                # episode_index column): name the source and its datasets, not DuckDB's SQL.
                names = ", ".join(d.url for d in self.datasets) or "no dataset"
                raise SourceError(
                    f"source {table.name!r} of {names}: the files do not hold what it needs ({' '.join(str(exc).split())[:300]})"
                ) from exc
        return out

    def check_datasets(self) -> None:
        """Before anything is bound: list every source's files in every dataset and read what binding
        reads (parquet footers, JSON files). A dataset where that fails is left out of every source
        (`skipped`, with the problem naming the file) so that one corrupt dataset does not stop a whole
        home from answering. A root the user named (`explicit`) is not skipped: its error is raised.

        Every source is checked even when fewer are bound (a catalog run binds only what its models
        read), so that all runs over the same files leave out the same datasets.
        """
        if self._checked:
            return
        self._checked = True
        good = []
        for root in self.datasets:
            try:
                if root.problem is not None:
                    raise SourceError(root.problem)
                parts = {t.name: self._check_root(t, root) for t in self.project.sources.values()}
            except SourceError as exc:
                if root.explicit:
                    raise
                self.skipped.append(SkippedDataset(root.name, root.url, " ".join(str(exc).split())))
                continue
            good.append(root)
            for name, part in parts.items():
                self._per_root.setdefault(name, {})[root.name] = part
        self.datasets = good
        self._roots = {d.name: d for d in good}

    def _check_root(self, table: SourceTable, root: DatasetRoot) -> ResolvedSource:
        resolved = resolve_source(table, [root])
        paths = resolved.files.get(root.name)
        if paths and table.config.format == "parquet":
            if self.mode == "catalog":
                self._refuse_unescapable(root, paths)
            self.schemas.unified(root, paths, resolved.fingerprints.get(root.name))
        elif paths and table.config.format == "json":
            self._json_rows[(table.name, root.name)] = self._parse_json(table, root, paths)
        return resolved

    @staticmethod
    def _refuse_unescapable(root: DatasetRoot, paths: Sequence[str]) -> None:
        """The catalog's views are read_parquet over explicit files, which any DuckDB client must be able
        to read: a path with no literal pattern (see glob_literal) cannot be one. A session Arrow-scans it."""
        bad = next((root.file_url(p) for p in paths if glob_literal(root.file_url(p)) is None), None)
        if bad is not None:
            raise SourceError(
                f"{bad}: a path holding a backslash and one of * ? [ cannot be read literally by DuckDB's "
                "read_parquet, so the catalog cannot hold a view over it (lerobot-assets sql reads it)"
            )

    def resolve(self, table: SourceTable) -> ResolvedSource:
        """`table`'s files in every dataset kept by check_datasets (listed once, there)."""
        self.check_datasets()
        files: dict[str, list[str]] = {}
        sizes: dict[str, dict[str, int]] = {}
        fingerprints: dict[str, dict[str, str]] = {}
        for root in self.datasets:
            part = self._per_root.get(table.name, {}).get(root.name)
            if part is not None:
                files.update(part.files)
                sizes.update(part.sizes)
                fingerprints.update(part.fingerprints)
        extra: list[Any] = [[d.name, d.url, d.problem] for d in self.skipped] if table.config.format == "skipped" else []
        return ResolvedSource(table, files, sizes, fingerprints, extra)

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
            if fmt == "json":
                arrow = self._json_table(resolved)
            elif fmt == "listing":
                arrow = self._listing_table(resolved)
            else:
                arrow = self._skipped_table()
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
            # A path DuckDB cannot be given literally (see glob_literal) is Arrow-scanned in a session,
            # and refused in the catalog, whose views any DuckDB client must be able to read.
            literal = all(glob_literal(root.file_url(p)) is not None for p in paths)
            if not literal and self.mode == "catalog":
                self._refuse_unescapable(root, paths)
            arrow = self.mode == "session" and (not is_local(root.fs) or not literal)
            # Remote datasets in a session are Arrow-scanned; a pyarrow dataset has one filesystem.
            key = f"{arrow}|{id(root.fs) if arrow else ''}|{schema_fingerprint(schema)}"
            group = groups.setdefault(key, _Group(schema=schema, arrow=arrow))
            group.members.append((root, paths))
            group.raw.add(raw)
        for group in groups.values():
            if group.arrow:
                rel = f"__lerobot_src_{table.name}_{len(self._arrow_relations)}"
                self._arrow_relations.append(rel)
                con.register(rel, self._arrow_dataset(group.schema, group.members))
                branches.append((quote_ident(rel), '"__dataset"', '"__file"' if file_column else None, group.schema))
                continue
            urls = [root.file_url(p) for root, paths in group.members for p in paths]
            # read_parquet globs every string it is given, even in a list: each path goes in as the
            # pattern that matches only itself (`ds[12]` would otherwise read ds1's files).
            patterns = [glob_literal(u) or u for u in urls]
            self.native_paths.extend(_allowed_forms(urls))
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
            rel = f"read_parquet([{', '.join(sql_literal(u) for u in patterns)}]{options})"
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

    def readable_paths(self) -> list[str]:
        """Every file a view over these datasets may read through DuckDB: those bound here, and those of
        every other parquet source too (a catalog's views bound by an earlier run read them)."""
        out = set(self.native_paths)
        for table in self.project.sources.values():
            if table.config.format != "parquet" or table.name in self.resolved:
                continue
            resolved = self.resolve(table)
            out.update(_allowed_forms([self._roots[d].file_url(p) for d, paths in resolved.files.items() for p in paths]))
        return sorted(out)

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
            filesystem=arrow_filesystem(members[0][0].fs),
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

    # -- json / listing / skipped --
    def _json_table(self, resolved: ResolvedSource) -> pa.Table:
        table = resolved.table
        rows: list[dict[str, Any]] = []
        for name, paths in resolved.files.items():
            cached = self._json_rows.get((table.name, name))
            rows.extend(cached if cached is not None else self._parse_json(table, self._roots[name], paths))
        schema = _json_schema(table)
        try:
            return pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise SourceError(f"source {table.name!r}: unexpected value types: {exc}") from exc

    @staticmethod
    def _parse_json(table: SourceTable, root: DatasetRoot, paths: Sequence[str]) -> list[dict[str, Any]]:
        """One dataset's rows of a JSON source, checked against the source's schema."""
        parser = JSON_PARSERS[table.config.parser or ""]
        rows: list[dict[str, Any]] = []
        for path in paths:
            try:
                doc = json.loads(remembered(root, ("cat", path), functools.partial(root.fs.cat_file, path)))
            except (OSError, ValueError) as exc:
                raise SourceError(f"cannot read JSON file {root.file_url(path)}: {exc}") from exc
            try:
                parsed = [{"dataset": root.name, **row} for row in parser.parse(doc, root)]
            except (AttributeError, TypeError, ValueError) as exc:
                raise SourceError(f"unexpected content in {root.file_url(path)}: {exc}") from exc
            problem = _untyped_value(parsed, _json_schema(table))
            if problem is not None:
                raise SourceError(f"{root.file_url(path)}: {problem}")
            rows.extend(parsed)
        return rows

    def _skipped_table(self) -> pa.Table:
        schema = pa.schema([pa.field("dataset", pa.string()), *_SKIPPED_SCHEMA])
        rows = [{"dataset": d.name, "root": d.url, "problem": d.problem} for d in self.skipped]
        return pa.Table.from_pylist(rows, schema=schema)

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
            replace_relation(con, name, select, materialized="view" if view else "table", in_transaction=self.in_transaction)

    def _create_from_arrow(self, con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
        if self.mode == "session":
            rel = f"__lerobot_src_{name}"
            con.register(rel, table)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS SELECT * FROM {quote_ident(rel)}")
        else:
            tmp = f"__lerobot_tmp_{name}"
            con.register(tmp, table)
            try:
                replace_relation(
                    con, name, f"SELECT * FROM {quote_ident(tmp)}", materialized="table", in_transaction=self.in_transaction
                )
            finally:
                con.unregister(tmp)


def _untyped_value(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> str | None:
    """The first value that does not fit its column's type, as `name=value is not ...`; None if all fit.

    Value by value, so that the message names the key: Arrow's own error for a whole table (an
    OverflowError for 10**30 in an int64 column) names neither the key nor the value.
    """
    try:
        pa.Table.from_pylist(list(rows), schema=schema)
        return None
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pass
    for row in rows:
        for f in schema:
            value = row.get(f.name)
            try:
                pa.array([value], type=f.type)
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
                return f"{f.name}={shown} is not a valid {f.type} ({' '.join(str(exc).split())})"
    return "values do not fit the source's column types"


def _json_schema(table: SourceTable) -> pa.Schema:
    return pa.schema([pa.field("dataset", pa.string()), *JSON_PARSERS[table.config.parser or ""].schema])


def _allowed_forms(urls: Iterable[str]) -> list[str]:
    """Each url and its literal pattern: DuckDB checks both the string read_parquet was given and the
    file it expanded to against allowed_paths."""
    out = []
    for url in urls:
        out.append(url)
        pattern = glob_literal(url)
        if pattern is not None and pattern != url:
            out.append(pattern)
    return out


def lock_down(con: duckdb.DuckDBPyConnection, readable: Sequence[str]) -> None:
    """From here on SQL on `con` reads no file but `readable` (COPY, EXPORT, ATTACH, read_text('/etc/..'),
    INSTALL are refused), cannot scan Python variables by name, and cannot undo these settings.

    Views over the readable files keep working, and so do Arrow relations registered on the connection
    (remote sources in a session). The catalog file itself stays writable: it is the database, not an
    external file.
    """
    if readable:
        con.execute(f"SET allowed_paths = [{', '.join(sql_literal(p) for p in sorted(set(readable)))}]")
    con.execute("SET python_enable_replacements = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def replace_relation(
    con: duckdb.DuckDBPyConnection,
    name: str,
    select: str,
    *,
    materialized: str,
    then: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    in_transaction: bool = False,
) -> None:
    """CREATE OR REPLACE a table or view, dropping an object of the other kind first (DuckDB refuses to
    replace a view by a table and vice versa), atomically; `then` runs inside the same transaction
    (e.g. to record what the relation was built from). `in_transaction`: the caller's open transaction
    is that transaction (DuckDB does not nest them; a BEGIN inside one aborts it)."""
    q = quote_ident(name)
    kind = "VIEW" if materialized == "view" else "TABLE"
    other = "VIEW" if kind == "TABLE" else "TABLE"
    existing = con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?",
        [name],
    ).fetchall()

    def replace() -> None:
        if existing and ((existing[0][0] == "VIEW") != (kind == "VIEW")):
            con.execute(f"DROP {other} {q}")
        con.execute(f"CREATE OR REPLACE {kind} {q} AS {select}")
        if then is not None:
            then(con)

    if in_transaction:
        replace()
        return
    con.execute("BEGIN TRANSACTION")
    try:
        replace()
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if DuckDB has not already (a failed COMMIT ends it): an error
    here would hide the one that made the caller roll back."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass
