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


TRANSFORMS: dict[str, Transform] = {
    "video_segments": Transform(
        ("episode_index", "video_key", "chunk_index", "file_index", "from_timestamp", "to_timestamp"),
        _video_segments_sql,
    ),
}
