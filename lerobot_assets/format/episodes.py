"""meta/episodes/chunk-XXX/file-XXX.parquet: one row per episode, flattened columns."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.format.atomic import write_parquet_atomic
from lerobot_assets.format.features import Feature
from lerobot_assets.format.stats_json import STAT_KEYS

if TYPE_CHECKING:  # fsspec is only needed for remote roots
    from fsspec import AbstractFileSystem

EPISODES_GLOB = "meta/episodes/chunk-*/file-*.parquet"


def episodes_schema(features: dict[str, Feature]) -> pa.Schema:
    """Column order and types exactly as LeRobot 0.6.1 writes them."""
    fields = [
        pa.field("episode_index", pa.int64()),
        pa.field("tasks", pa.list_(pa.string())),
        pa.field("length", pa.int64()),
        pa.field("data/chunk_index", pa.int64()),
        pa.field("data/file_index", pa.int64()),
        pa.field("dataset_from_index", pa.int64()),
        pa.field("dataset_to_index", pa.int64()),
    ]
    for key, f in features.items():
        if f.dtype == "video":
            fields += [
                pa.field(f"videos/{key}/chunk_index", pa.int64()),
                pa.field(f"videos/{key}/file_index", pa.int64()),
                pa.field(f"videos/{key}/from_timestamp", pa.float64()),
                pa.field(f"videos/{key}/to_timestamp", pa.float64()),
            ]
    for key, f in features.items():
        if f.dtype == "string":
            continue
        value_type = (
            pa.list_(pa.list_(pa.list_(pa.float64()))) if f.is_visual else pa.list_(pa.float64())
        )
        for stat in STAT_KEYS:
            t = pa.list_(pa.int64()) if stat == "count" else value_type
            fields.append(pa.field(f"stats/{key}/{stat}", t))
    fields += [
        pa.field("meta/episodes/chunk_index", pa.int64()),
        pa.field("meta/episodes/file_index", pa.int64()),
    ]
    return pa.schema(fields)


def episodes_table(rows: list[dict[str, Any]], features: dict[str, Feature]) -> pa.Table:
    schema = episodes_schema(features)
    missing = [n for n in schema.names if any(n not in r for r in rows)]
    if missing:
        raise ValueError(f"episode metadata rows lack columns: {missing[:5]}")
    return pa.Table.from_pylist([{n: r[n] for n in schema.names} for r in rows], schema=schema)


def write_episodes_file(path: Path, rows: list[dict[str, Any]], features: dict[str, Feature]) -> None:
    write_parquet_atomic(path, episodes_table(rows, features))


def episode_files(root: Path | str, fs: "AbstractFileSystem | None" = None) -> list[Path] | list[str]:
    """The episodes parquet shards in order; with `fs`, paths on that filesystem (`root` is one too)."""
    if fs is None:
        return sorted(Path(root).glob(EPISODES_GLOB))
    return sorted(fs.glob(f"{str(root).rstrip('/')}/{EPISODES_GLOB}"))


def read_episodes(
    root: Path | str, columns: list[str] | None = None, fs: "AbstractFileSystem | None" = None
) -> pa.Table:
    """Every episode row of every shard, sorted by episode_index. Names the file that fails.

    With `fs` (an fsspec filesystem), `root` is a path on it: remote roots read the same way.
    """
    tables = []
    for path in episode_files(root, fs):
        try:
            if fs is None:
                tables.append(pq.read_table(path, columns=columns))
            else:
                with fs.open(path, "rb") as f:
                    tables.append(pq.read_table(f, columns=columns))
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{path}: unreadable episodes parquet: {e}") from e
    if not tables:
        return pa.table({"episode_index": pa.array([], pa.int64())})
    table = pa.concat_tables(tables, promote_options="permissive")
    return table.sort_by("episode_index")
