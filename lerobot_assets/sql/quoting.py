"""Quoting names and values into DuckDB SQL text; the one place the rules live."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """A DuckDB identifier, quoted so names with dots or slashes (`observation.state`) work."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    """A DuckDB string literal (paths, names)."""
    return "'" + value.replace("'", "''") + "'"
