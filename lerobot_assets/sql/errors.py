"""Errors of the SQL layer. Each carries what a person needs to fix the problem without a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class SqlError(Exception):
    """Base class of every error raised by `lerobot_assets.sql`."""


@dataclass(frozen=True)
class ProjectProblem:
    """One problem found while loading the project: file, 1-based line, the offending name, and why."""

    path: Path
    line: int
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.name}: {self.message}"


class ProjectLoadError(SqlError):
    """The dbt-style project does not load: unknown ref/source, a cycle, SQL that does not parse, ...

    All problems found are collected so one run shows every broken file, not just the first.
    """

    def __init__(self, problems: list[ProjectProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class VarError(SqlError):
    """A model variable (`--var NAME=VALUE`, `vars=`) is malformed, or not of its default's type: a
    usage error, found before any SQL runs."""


class SourceError(SqlError):
    """A source cannot be read: unreadable/corrupted file (named), missing required file, bad root."""


class QueryError(SqlError):
    """The query failed (parse, bind or execution); the message is DuckDB's own."""


class ReadOnlyError(QueryError):
    """The statement would write or change state, and the query session is read-only."""


class CatalogBusyError(SqlError):
    """Another process holds the catalog file's lock (DuckDB takes one writer process per file)."""
