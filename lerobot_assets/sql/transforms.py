"""The SQL transforms a parquet source names: a per-dataset reshape written as SQL over its relation."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from lerobot_assets.sql.quoting import quote_ident, sql_literal


@dataclass(frozen=True)
class Transform:
    """A per-dataset reshape of a parquet source, written as SQL over that dataset's relation."""

    columns: tuple[str, ...]  # output columns after `dataset`
    sql: Callable[[str, str, pa.Schema], str | None]  # (relation, dataset expr, schema) → SELECT or None


_VIDEO_TS = re.compile(r"^videos/(.+)/from_timestamp$")


def _video_segments_sql(relation: str, dataset_expr: str, schema: pa.Schema) -> str | None:
    # v3 episodes files carry one group of columns per camera (`videos/<key>/chunk_index`, ...). Their
    # set differs per dataset, so the unpivot is generated from each dataset's schema (SQL's
    # COLUMNS(regex) would fail on datasets without cameras). One scan: each row unnests into one row
    # per camera, instead of a UNION that reads the files once per camera.
    keys = sorted({m.group(1) for name in schema.names if (m := _VIDEO_TS.match(name))})
    if not keys:
        return None
    structs = []
    for key in keys:
        col = lambda f, key=key: quote_ident(f"videos/{key}/{f}")  # noqa: E731
        structs.append(
            f"{{'video_key': {sql_literal(key)}, 'chunk_index': {col('chunk_index')}, 'file_index': {col('file_index')}, "
            f"'from_timestamp': {col('from_timestamp')}, 'to_timestamp': {col('to_timestamp')}}}"
        )
    return (
        f"SELECT {dataset_expr} AS dataset, episode_index, unnest([{', '.join(structs)}], recursive := true) "
        f"FROM {relation}"
    )


def _tool_name_sql(row: pa.DataType) -> str:
    """The first tool call's function name, whatever type the writer gave `tool_calls`: JSON text
    (LeRobot's canonical `list<json>`, and ours) or the structs LeRobot's annotator infers."""
    if not pa.types.is_struct(row) or row.get_field_index("tool_calls") < 0:
        return "NULL"
    calls = row.field("tool_calls").type
    if not (pa.types.is_list(calls) or pa.types.is_large_list(calls)):
        return "NULL"
    item = calls.value_type
    if pa.types.is_struct(item):
        fn = item.field("function").type if item.get_field_index("function") >= 0 else None
        return "r.tool_calls[1].function.name" if fn is not None and pa.types.is_struct(fn) and fn.get_field_index("name") >= 0 else "NULL"
    if pa.types.is_null(item):
        return "NULL"
    return "json_extract_string(CAST(r.tool_calls[1] AS VARCHAR), '$.function.name')"


def _language_rows_sql(relation: str, dataset_expr: str, schema: pa.Schema) -> str | None:
    # One row per language row: a persistent row on the frame whose timestamp is its own (every frame
    # holds the episode's whole persistent list), an event on the frame that stores it.
    selects = []
    for column in ("language_persistent", "language_events"):
        if column not in schema.names or not pa.types.is_list(schema.field(column).type):
            continue
        row = schema.field(column).type.value_type
        rows = quote_ident(column)
        if column == "language_persistent":
            rows = f"[x FOR x IN {rows} IF x.timestamp = timestamp]"
        selects.append(
            f"SELECT {dataset_expr} AS dataset, episode_index, frame_index, CAST(timestamp AS DOUBLE) AS timestamp, "
            f"{sql_literal(column)} AS {quote_ident('column')}, r.style AS style, r.role AS role, r.content AS content, "
            f"r.camera AS camera, {_tool_name_sql(row)} AS tool_name "
            f"FROM (SELECT *, unnest({rows}) AS r FROM {relation})"
        )
    return "\nUNION ALL BY NAME\n".join(selects) or None


TRANSFORMS: dict[str, Transform] = {
    "language_rows": Transform(
        ("episode_index", "frame_index", "timestamp", "column", "style", "role", "content", "camera", "tool_name"),
        _language_rows_sql,
    ),
    "video_segments": Transform(
        ("episode_index", "video_key", "chunk_index", "file_index", "from_timestamp", "to_timestamp"),
        _video_segments_sql,
    ),
}
