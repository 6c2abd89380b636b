"""Query results as text: one cell's value, and a Markdown table (the CLI and Dagster previews)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


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
