"""Quoting names and values into DuckDB SQL text; the one place the rules live."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """A DuckDB identifier, quoted so names with dots or slashes (`observation.state`) work."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    """A DuckDB string literal (paths, names)."""
    return "'" + value.replace("'", "''") + "'"


# What DuckDB's glob (every string read_parquet gets, even in a list) and fsspec's glob treat as magic.
GLOB_CHARS = frozenset("*?[")


def glob_literal(path: str) -> str | None:
    """A glob pattern that matches exactly `path`, for functions that glob every path they are given.

    Each magic character becomes a one-character class (`ds[12]` → `ds[[]12]`): `*`, `?` and `[` have
    no meaning inside a class, and a lone `]` none outside one. Backslash escapes are not understood by
    DuckDB's glob (it splits the path on them), so a path holding a backslash and a magic character has
    no literal pattern: None.
    """
    if not GLOB_CHARS.intersection(path):
        return path
    if "\\" in path:
        return None
    return "".join(f"[{c}]" if c in GLOB_CHARS else c for c in path)
