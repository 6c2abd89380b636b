"""The dbt-style project loader: `sources.yml` + `models/*.sql` + `tests/*.sql` → a checked DAG.

What is checked at load time (each problem reported as `file:line: name: message`):
  * Jinja syntax; `ref`/`source`/`config`/`var` called with literal arguments only (so dependencies are
    static and exact, as in dbt's static parser);
  * every `ref` names a model and every `source` names a table of `sources.yml`;
  * no cycles between models;
  * the compiled SQL parses with DuckDB's own parser and is exactly one SELECT-type statement.

Nothing here opens a database or touches data, so the Dagster layer can build its asset graph (one asset
per model, deps = refs + source assets; one check per data test) from `load_project()` alone.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import jinja2.nodes as jn
import yaml
from pydantic import ValidationError

from lerobot_assets.sql.config import DataTestConfig, ModelConfig, SourcesFile
from lerobot_assets.sql.errors import ProjectLoadError, ProjectProblem
from lerobot_assets.sql.parsers import JSON_PARSERS
from lerobot_assets.sql.project import DataTest, SourceTable, SqlModel, SqlProject, check_vars, jinja_env, render_sql
from lerobot_assets.sql.transforms import TRANSFORMS

# The statement types a model or data test may contain: they only read.
_READ_TYPES = frozenset({duckdb.StatementType.SELECT})
_JINJA_FUNCTIONS = ("ref", "source", "config", "var")


def default_project_dir() -> Path:
    """`dbt_style_sql/` at the repository root (next to the `lerobot_assets` package)."""
    return Path(__file__).resolve().parents[2] / "dbt_style_sql"


def load_project(root: str | os.PathLike[str] | None = None, vars: Mapping[str, Any] | None = None) -> SqlProject:
    """Load and check the project; raises `ProjectLoadError` listing every problem found."""
    root = Path(root) if root is not None else default_project_dir()
    # Vars are checked before any file is rendered with them (a wrong one is a usage error, VarError).
    check_vars(vars or {}, _declared_vars(root))
    problems: list[ProjectProblem] = []
    sources = _load_sources(root / "sources.yml", problems)
    if problems:
        # Every source() call would also be reported as unknown: show only the real cause.
        raise ProjectLoadError(problems)
    project = SqlProject(root=root, sources=sources, models={}, tests={}, vars=dict(vars or {}))

    models: dict[str, SqlModel] = {}
    for path in sorted((root / "models").rglob("*.sql")):
        model = _analyse(path, project, problems, is_test=False)
        if model is None:
            continue
        if model.name in models:
            problems.append(ProjectProblem(path, 1, model.name, f"duplicate model name (also {models[model.name].path})"))
            continue
        if model.name in project.source_by_relation:
            problems.append(ProjectProblem(path, 1, model.name, "model name collides with a source table name"))
            continue
        models[model.name] = model  # type: ignore[assignment]

    tests: dict[str, DataTest] = {}
    tests_dir = root / "tests"
    for path in sorted(tests_dir.rglob("*.sql")) if tests_dir.is_dir() else []:
        test = _analyse(path, project, problems, is_test=True)
        if test is None:
            continue
        if test.name in tests:
            problems.append(ProjectProblem(path, 1, test.name, f"duplicate data test name (also {tests[test.name].path})"))
            continue
        tests[test.name] = test  # type: ignore[assignment]

    # Unknown refs are checked once every model is known (a ref may point at a later file).
    for node in [*models.values(), *tests.values()]:
        for ref in node.refs:
            if ref not in models:
                hint = _closest(ref, models)
                problems.append(
                    ProjectProblem(node.path, node.ref_lines[ref], ref, "unknown ref" + (f" (did you mean {hint!r}?)" if hint else ""))
                )
    for name, test in list(tests.items()):
        target = _attach_test(test, models, problems)
        if target is not None:
            tests[name] = replace(test, model=target)

    ordered = _toposort(models, problems)
    if problems:
        raise ProjectLoadError(problems)
    project.models = {name: models[name] for name in ordered}
    project.tests = tests
    for model in project.models.values():
        _check_incremental(model, project, problems)
    if problems:
        raise ProjectLoadError(problems)
    return project


def _declared_vars(root: Path) -> dict[str, list[tuple[Path, Any]]]:
    """Every `var(name[, default])` with literal arguments in the project's files, read from the Jinja
    AST (files that do not parse are reported by _analyse)."""
    out: dict[str, list[tuple[Path, Any]]] = {}
    for path in sorted(root.glob("models/**/*.sql")) + sorted(root.glob("tests/**/*.sql")):
        try:
            ast = jinja_env.parse(path.read_text())
        except jinja2.TemplateSyntaxError:
            continue
        for call in ast.find_all(jn.Call):
            if not isinstance(call.node, jn.Name) or call.node.name != "var" or not call.args:
                continue
            try:
                args = [a.as_const() for a in call.args]
            except jn.Impossible:
                continue
            if isinstance(args[0], str):
                out.setdefault(args[0], []).append((path, args[1] if len(args) > 1 else None))
    return out


def _check_incremental(model: SqlModel, project: SqlProject, problems: list[ProjectProblem]) -> None:
    """A per-file incremental model is only correct if each file's rows depend on that file alone."""
    key = model.per_file_of
    if key is None:
        return
    where = (model.path, model.config_line, model.name)
    table = project.sources.get(key)
    if table is None:
        problems.append(ProjectProblem(*where, f"per_file_of: unknown source {key[0]}.{key[1]}"))
        return
    if table.config.format != "parquet" or not table.config.file_column:
        problems.append(
            ProjectProblem(*where, f"per_file_of: source {key[0]}.{key[1]} needs format 'parquet' and a 'file_column'")
        )
        return
    read = project.source_closure(model.name)
    others = sorted(f"{a}.{b}" for a, b in read - {key})
    if key not in read:
        problems.append(ProjectProblem(*where, f"per_file_of: the model does not read source {key[0]}.{key[1]}"))
    elif others:
        problems.append(
            ProjectProblem(
                *where,
                f"per_file_of: an incremental model may read only {key[0]}.{key[1]}, but it also reads "
                f"{', '.join(others)} (directly or through refs); a change there would not be seen per file",
            )
        )


def _load_sources(path: Path, problems: list[ProjectProblem]) -> dict[tuple[str, str], SourceTable]:
    if not path.is_file():
        problems.append(ProjectProblem(path, 1, "sources.yml", "file not found"))
        return {}
    text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.append(ProjectProblem(path, (mark.line + 1) if mark else 1, "sources.yml", f"invalid YAML: {exc}"))
        return {}
    try:
        parsed = SourcesFile.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            name, line = _locate_yaml_error(err["loc"], data, text)
            problems.append(ProjectProblem(path, line, name, err["msg"]))
        return {}
    out: dict[tuple[str, str], SourceTable] = {}
    seen_relations: dict[str, str] = {}
    for group in parsed.sources:
        for table in group.tables:
            line = _line_of(text, rf"name:\s*['\"]?{re.escape(table.name)}['\"]?\s*$")
            if table.name in seen_relations:
                # Sources are bound under their bare table name, so it must be unique across groups.
                problems.append(ProjectProblem(path, line, table.name, f"source table name also used in source {seen_relations[table.name]!r}"))
                continue
            if table.parser and table.parser not in JSON_PARSERS:
                problems.append(ProjectProblem(path, line, table.name, f"unknown parser {table.parser!r} (known: {sorted(JSON_PARSERS)})"))
            if table.transform and table.transform not in TRANSFORMS:
                problems.append(ProjectProblem(path, line, table.name, f"unknown transform {table.transform!r} (known: {sorted(TRANSFORMS)})"))
            seen_relations[table.name] = group.name
            out[(group.name, table.name)] = SourceTable(group.name, table)
    return out


def _locate_yaml_error(loc: tuple[Any, ...], data: Any, text: str) -> tuple[str, int]:
    """Best effort: the innermost `name:` on the error's path and the line where it is defined."""
    name, node = "sources.yml", data
    for key in loc:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and isinstance(node.get("name"), str):
            name = node["name"]
    line = _line_of(text, rf"name:\s*['\"]?{re.escape(name)}['\"]?\s*$") if name != "sources.yml" else 1
    field_name = ".".join(str(k) for k in loc)
    return (f"{name} ({field_name})" if field_name else name), line


def _line_of(text: str, pattern: str) -> int:
    for i, line in enumerate(text.splitlines(), start=1):
        if re.search(pattern, line.strip()):
            return i
    return 1


def _analyse(path: Path, project: SqlProject, problems: list[ProjectProblem], *, is_test: bool) -> SqlModel | DataTest | None:
    """Static analysis of one file: the Jinja AST gives refs/sources/config with exact line numbers."""
    name = path.stem
    raw = path.read_text()
    try:
        ast = jinja_env.parse(raw)
    except jinja2.TemplateSyntaxError as exc:
        problems.append(ProjectProblem(path, exc.lineno or 1, name, f"Jinja syntax error: {exc.message}"))
        return None

    refs: dict[str, int] = {}
    srcs: dict[tuple[str, str], int] = {}
    config_kwargs: dict[str, Any] = {}
    config_line = 1
    vars_used: dict[str, Any] = {}
    n_before = len(problems)
    for call in ast.find_all(jn.Call):
        if not isinstance(call.node, jn.Name) or call.node.name not in _JINJA_FUNCTIONS:
            continue
        fn, line = call.node.name, call.lineno
        try:
            args = [a.as_const() for a in call.args]
            kwargs = {kw.key: kw.value.as_const() for kw in call.kwargs}
        except jn.Impossible:
            # Dynamic arguments would make the dependency graph data-dependent; dbt forbids it too.
            problems.append(ProjectProblem(path, line, fn, f"{fn}() arguments must be literals"))
            continue
        if call.dyn_args is not None or call.dyn_kwargs is not None:
            problems.append(ProjectProblem(path, line, fn, f"{fn}() arguments must be literals"))
            continue
        if fn == "ref":
            if len(args) != 1 or kwargs or not isinstance(args[0], str):
                problems.append(ProjectProblem(path, line, "ref", "ref() takes exactly one model name"))
                continue
            refs.setdefault(args[0], line)
        elif fn == "source":
            if len(args) != 2 or kwargs or not all(isinstance(a, str) for a in args):
                problems.append(ProjectProblem(path, line, "source", "source() takes a source name and a table name"))
                continue
            key = (args[0], args[1])
            if key not in project.sources:
                problems.append(ProjectProblem(path, line, f"{key[0]}.{key[1]}", "unknown source"))
                continue
            srcs.setdefault(key, line)
        elif fn == "config":
            if args:
                problems.append(ProjectProblem(path, line, "config", "config() takes keyword arguments only"))
                continue
            config_kwargs.update(kwargs)
            config_line = line
        elif fn == "var":
            if not args or not isinstance(args[0], str) or len(args) > 2:
                problems.append(ProjectProblem(path, line, "var", "var() takes a name and an optional default"))
                continue
            if len(args) == 1 and args[0] not in project.vars:
                problems.append(ProjectProblem(path, line, args[0], "var() without a default and no value given"))
                continue
            vars_used.setdefault(args[0], args[1] if len(args) == 2 else None)
    if len(problems) > n_before:
        return None

    config_cls = DataTestConfig if is_test else ModelConfig
    try:
        config = config_cls.model_validate(config_kwargs)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(ProjectProblem(path, config_line, "config", f"{'.'.join(map(str, err['loc']))}: {err['msg']}"))
        return None

    description = config.description or _leading_comment(raw)
    common = dict(
        name=name,
        path=path,
        raw_sql=raw,
        refs=tuple(refs),
        sources=tuple(srcs),
        ref_lines=refs,
        source_lines=srcs,
        vars_used=vars_used,
        description=description,
        config_line=config_line,
    )
    # Refs and sources compile to plain quoted relation names, so the compiled SQL is final and parseable.
    try:
        sql = render_sql(raw, path, project, project.vars, this=name)
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None) or 1
        problems.append(ProjectProblem(path, line, name, f"Jinja error: {exc}"))
        return None
    problem = _check_sql(sql, raw, path, name)
    if problem is not None:
        problems.append(problem)
        return None
    if is_test:
        return DataTest(**common, sql=sql, config=config)  # type: ignore[arg-type]
    return SqlModel(**common, sql=sql, config=config)  # type: ignore[arg-type]


_LINE_RE = re.compile(r"LINE (\d+):( ?)(.*)")


def _check_sql(sql: str, raw: str, path: Path, name: str) -> ProjectProblem | None:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        message = str(exc)
        line = _map_error_line(message, sql, raw)
        first = message.splitlines()[0] if message else "parse error"
        return ProjectProblem(path, line, name, f"SQL does not parse: {first}")
    if len(statements) != 1:
        return ProjectProblem(path, 1, name, f"expected exactly one SQL statement, found {len(statements)}")
    if statements[0].type not in _READ_TYPES:
        return ProjectProblem(path, 1, name, f"a model must be a SELECT query, not {statements[0].type.name}")
    return None


def _map_error_line(message: str, compiled: str, raw: str) -> int:
    """Map DuckDB's `LINE n:` (a line of the compiled SQL) back to a line of the source file.

    Single-line Jinja tags keep line numbers identical; when a multi-line tag shifted them, the compiled
    line's text is looked up in the source.
    """
    match = _LINE_RE.search(message)
    if not match:
        return 1
    n = int(match.group(1))
    compiled_lines, raw_lines = compiled.splitlines(), raw.splitlines()
    if len(compiled_lines) == len(raw_lines):
        return n
    if 0 < n <= len(compiled_lines):
        text = compiled_lines[n - 1].strip()
        hits = [i for i, line in enumerate(raw_lines, start=1) if text and text in line]
        if len(hits) == 1:
            return hits[0]
    return n


def _leading_comment(raw: str) -> str:
    """The `--` comment lines at the top of a file (after `{{ config() }}`), used as its description."""
    lines: list[str] = []
    for line in raw.splitlines():
        stripped = line.strip()
        if stripped.startswith("{{") or stripped.startswith("{%") or (not stripped and not lines):
            continue
        if stripped.startswith("--"):
            lines.append(stripped[2:].strip())
            continue
        break
    return " ".join(lines)


def _attach_test(test: DataTest, models: Mapping[str, SqlModel], problems: list[ProjectProblem]) -> str | None:
    """The model a data test's asset check belongs to: config(model=...), else its only ref."""
    target = test.config.model
    if target is None:
        if len(test.refs) != 1:
            problems.append(
                ProjectProblem(test.path, 1, test.name, "data test refs several models (or none): set config(model='...')")
            )
            return None
        target = test.refs[0]
    if target not in models:
        problems.append(ProjectProblem(test.path, 1, target, "data test attached to an unknown model"))
        return None
    return target


def _toposort(models: Mapping[str, SqlModel], problems: list[ProjectProblem]) -> list[str]:
    """Dependencies first, ties broken by name so the order is deterministic; cycles are reported."""
    indegree = {n: sum(1 for r in m.refs if r in models) for n, m in models.items()}
    users: dict[str, list[str]] = {n: [] for n in models}
    for n, m in models.items():
        for r in m.refs:
            if r in models:
                users[r].append(n)
    ready = sorted(n for n, d in indegree.items() if d == 0)
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for u in users[n]:
            indegree[u] -= 1
            if indegree[u] == 0:
                ready.append(u)
                ready.sort()
    left = [n for n in models if n not in order]
    reported: set[frozenset[str]] = set()
    for start in left:
        # A model that only depends on a cycle leads to that same cycle: report each cycle once.
        cycle = _find_cycle(start, models, set(left))
        if cycle is None or frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        closing, target = cycle[-2], cycle[-1]
        m = models[closing]
        problems.append(ProjectProblem(m.path, m.ref_lines[target], target, "cycle: " + " -> ".join(cycle)))
    return order


def _find_cycle(start: str, models: Mapping[str, SqlModel], candidates: set[str]) -> list[str] | None:
    path: list[str] = []
    on_path: set[str] = set()
    done: set[str] = set()

    def visit(n: str) -> list[str] | None:
        path.append(n)
        on_path.add(n)
        for r in models[n].refs:
            if r not in candidates or r in done:
                continue
            if r in on_path:
                return path[path.index(r) :] + [r]
            found = visit(r)
            if found:
                return found
        path.pop()
        on_path.discard(n)
        done.add(n)
        return None

    return visit(start)


def _closest(name: str, options: Iterable[str]) -> str | None:
    hits = difflib.get_close_matches(name, list(options), n=1)
    return hits[0] if hits else None
