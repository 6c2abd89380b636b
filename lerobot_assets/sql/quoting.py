"""Quoting names and values into DuckDB SQL text; the one place the rules live."""

from __future__ import annotations

import math
from typing import Any


def quote_ident(name: str) -> str:
    """A DuckDB identifier, quoted so names with dots or slashes (`observation.state`) work."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    """A DuckDB string literal (paths, names)."""
    return "'" + value.replace("'", "''") + "'"


def sql_value(value: Any) -> str:
    """A value as a DuckDB literal: numbers, strings (quoted), booleans, NULL and lists of them.

    Model variables go into SQL text through this, never as text of their own: a value is data, so
    `--var x=(SELECT ... read_text('/etc/passwd'))` is a string that cannot become a subquery.
    Raises TypeError for anything else (a dict, an object).
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "'nan'::DOUBLE"
        if math.isinf(value):
            return "'inf'::DOUBLE" if value > 0 else "'-inf'::DOUBLE"
        return repr(value)
    if isinstance(value, str):
        return sql_literal(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(sql_value(v) for v in value) + "]"
    raise TypeError(f"{value!r} is not a number, string, boolean, null or list of them")


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
