"""The loaded project: source tables, models and data tests, the DAG between them, and compiling a node's SQL.

`loader.load_project()` builds it from the files and checks it; nothing here opens a database or
touches data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2

from lerobot_assets.sql.config import DataTestConfig, ModelConfig, SourceTableConfig
from lerobot_assets.sql.errors import SqlError, VarError
from lerobot_assets.sql.quoting import quote_ident, sql_value


@dataclass(frozen=True)
class SourceTable:
    """A table of `sources.yml` as models see it: `{{ source(source_name, name) }}` → `relation`."""

    source_name: str
    config: SourceTableConfig

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def relation(self) -> str:
        # Sources are bound under their bare table name so the CLI's `episodes`, `frames`, ... views and
        # the catalog's relations are the same names the compiled models use.
        return self.config.name

    @property
    def asset(self) -> str:
        return self.config.asset


@dataclass(frozen=True)
class _Node:
    """A model or data test file after static analysis (common part)."""

    name: str
    path: Path
    raw_sql: str
    refs: tuple[str, ...]
    sources: tuple[tuple[str, str], ...]
    # Where each ref/source first appears, for error messages and for cycle reports.
    ref_lines: Mapping[str, int]
    source_lines: Mapping[tuple[str, str], int]
    vars_used: Mapping[str, Any]
    description: str
    sql: str  # compiled with the vars given to load_project (defaults otherwise)
    config_line: int


@dataclass(frozen=True)
class SqlModel(_Node):
    config: ModelConfig = field(default_factory=ModelConfig)

    @property
    def materialized(self) -> str:
        return self.config.materialized

    @property
    def relation(self) -> str:
        return self.name

    @property
    def per_file_of(self) -> tuple[str, str] | None:
        """The (source, table) an incremental model is computed per file of; None for other models."""
        if not self.config.per_file_of:
            return None
        source_name, table = self.config.per_file_of.split(".")
        return source_name, table


@dataclass(frozen=True)
class DataTest(_Node):
    """A SQL file whose query returns the failing rows; zero rows means the test passes."""

    config: DataTestConfig = field(default_factory=DataTestConfig)
    model: str = ""  # the model the check is attached to

    @property
    def blocking(self) -> bool:
        return self.config.severity == "error"


@dataclass
class SqlProject:
    root: Path
    sources: dict[tuple[str, str], SourceTable]
    models: dict[str, SqlModel]  # in topological order (dependencies first)
    tests: dict[str, DataTest]
    vars: dict[str, Any]

    # ---- graph ---------------------------------------------------------------------------------
    def topological_order(self) -> list[str]:
        return list(self.models)

    def model_deps(self, name: str) -> list[str]:
        return list(self.models[name].refs)

    def source_tables(self, name: str) -> list[SourceTable]:
        """The source tables a model (or data test) reads directly."""
        node = self.models.get(name) or self.tests[name]
        return [self.sources[key] for key in node.sources]

    def upstream_assets(self, name: str) -> list[str]:
        """Asset keys (as 'a/b' strings) a model's asset depends on: its refs, then its sources' assets."""
        out = list(self.models[name].refs)
        for table in self.source_tables(name):
            if table.asset not in out:
                out.append(table.asset)
        return out

    def ancestors(self, names: Iterable[str]) -> list[str]:
        """`names` and every model they depend on, transitively, in topological order."""
        wanted: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack.extend(self.models[name].refs)
        return [n for n in self.models if n in wanted]

    def source_closure(self, name: str) -> set[tuple[str, str]]:
        """Every source table a model reads, directly or through the models it refs."""
        return {key for n in self.ancestors([name]) for key in self.models[n].sources}

    def per_file_source(self, name: str) -> SourceTable:
        """The source an incremental model is computed per file of."""
        key = self.models[name].per_file_of
        if key is None:
            raise SqlError(f"model {name!r} is not incremental")
        return self.sources[key]

    def per_file_chain(self, name: str) -> list[str]:
        """For an incremental model: it and its ancestors that read its per-file source (topological
        order). Evaluating the model over some files means re-binding exactly these over those files."""
        source = self.per_file_source(name)
        key = (source.source_name, source.name)
        return [n for n in self.ancestors([name]) if key in self.source_closure(n)]

    def declared_vars(self) -> dict[str, list[tuple[Path, Any]]]:
        """Each var the models and tests use, with (file, default) of every use."""
        out: dict[str, list[tuple[Path, Any]]] = {}
        for node in [*self.models.values(), *self.tests.values()]:
            for name, default in node.vars_used.items():
                out.setdefault(name, []).append((node.path, default))
        return out

    def check_vars(self, vars: Mapping[str, Any]) -> None:
        """Raise VarError unless every value is a literal of its default's type (see check_vars)."""
        check_vars(vars, self.declared_vars())

    def tests_for(self, model: str) -> list[DataTest]:
        return [t for t in self.tests.values() if t.model == model]

    @cached_property
    def source_by_relation(self) -> dict[str, SourceTable]:
        return {t.relation: t for t in self.sources.values()}

    # ---- compilation ---------------------------------------------------------------------------
    def compile(
        self, name: str, vars: Mapping[str, Any] | None = None, relations: Mapping[str, str] | None = None
    ) -> str:
        """The SQL of a model or data test with refs/sources resolved (re-rendered if `vars` differ).

        `relations` renames what refs and sources resolve to (model or source table name → relation),
        e.g. to evaluate a model over a source bound to only some of its files.
        """
        node: _Node = self.models.get(name) or self.tests[name]
        merged = {**self.vars, **(vars or {})}
        if merged == self.vars and not relations:
            return node.sql
        return render_sql(node.raw_sql, node.path, self, merged, this=node.name, relations=relations)


# ---- vars ----------------------------------------------------------------------------------------


def parse_vars(items: Iterable[str]) -> dict[str, Any]:
    """`NAME=VALUE` pairs (CLI `--var`) → values: JSON when the value parses as JSON (`2`, `0.5`,
    `[1, 2]`, `true`), else the string as given. What they may be is checked by check_vars."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise VarError(f"--var {item}: expected NAME=VALUE (e.g. min_episode_seconds=2)")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def check_vars(vars: Mapping[str, Any], declared: Mapping[str, Sequence[tuple[Path, Any]]]) -> None:
    """Raise VarError unless each value is a literal DuckDB can take (number, string, boolean, null,
    list of them) of the same kind as the var's default where a model gives one.

    Values go into the SQL as literals whatever happens here (see sql_value); this turns a value of
    the wrong kind (`idle_motion_threshold=(SELECT ...)`, a string where a number is compared) into a
    message naming the var before anything runs, instead of a conversion error from deep in a model.
    """
    for name, value in vars.items():
        for path, default in declared.get(name, ()):
            if default is not None and _kind(value) != _kind(default):
                raise VarError(
                    f"var {name}: expected {_kind(default)} (its default in {path.name} is {default!r}), "
                    f"got {_kind(value)}: {value!r}"
                )
        try:
            sql_value(value)
        except TypeError as exc:
            raise VarError(f"var {name}: {exc}") from exc


# ---- rendering ---------------------------------------------------------------------------------


class SqlText(str):
    """Text that is SQL already (a quoted relation name): a template renders it as it is."""


def _finalize(value: Any) -> str:
    """What `{{ ... }}` renders: SQL text from ref/source/this/config as it is, every other value (a
    var, a constant) as a literal, so no value can become SQL of its own."""
    if isinstance(value, SqlText):
        return value
    try:
        return sql_value(value)
    except TypeError as exc:
        raise VarError(f"a template value cannot go into SQL: {exc}") from exc


jinja_env = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
    finalize=_finalize,
)


def render_sql(
    raw: str,
    path: Path,
    project: SqlProject,
    vars: Mapping[str, Any],
    *,
    this: str,
    relations: Mapping[str, str] | None = None,
) -> str:
    renamed = relations or {}

    def ref(name: str) -> SqlText:
        return SqlText(quote_ident(renamed.get(name, name)))

    def source(source_name: str, table: str) -> SqlText:
        relation = project.sources[(source_name, table)].relation
        return SqlText(quote_ident(renamed.get(relation, relation)))

    def config(**_: Any) -> SqlText:
        return SqlText("")  # read statically from the AST; renders to nothing

    _missing = object()

    def var(name: str, default: Any = _missing) -> Any:
        if name in vars:
            return vars[name]
        if default is _missing:
            raise jinja2.UndefinedError(f"var {name!r} has no value and no default")
        return default

    template = jinja_env.from_string(raw)
    return template.render(ref=ref, source=source, config=config, var=var, this=SqlText(quote_ident(this)))
