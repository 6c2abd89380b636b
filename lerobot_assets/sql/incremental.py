"""Evaluating an incremental model over only some files of its per-file source.

Shared by catalog builds (recompute new or changed files) and query sessions (compute what the catalog
does not hold).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import duckdb

from lerobot_assets.sql import freshness
from lerobot_assets.sql.binder import SourceBinder
from lerobot_assets.sql.discovery import DatasetRoot
from lerobot_assets.sql.project import SqlProject
from lerobot_assets.sql.quoting import quote_ident
from lerobot_assets.sql.resolution import ResolvedSource


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


def only_files(resolved: ResolvedSource, roots: Mapping[str, DatasetRoot], keys: set[freshness.FileKey]) -> ResolvedSource:
    """`resolved` restricted to the files whose (dataset, path relative to its root) is in `keys`."""
    return resolved.subset(lambda dataset, path: (dataset, posixpath.relpath(path, roots[dataset].path)) in keys)
