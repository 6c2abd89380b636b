"""meta/episodes/chunk-XXX/file-XXX.parquet: one row per episode, flattened columns."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.format.atomic import write_parquet_atomic
from lerobot_assets.format.features import TEXT_DTYPES, Feature
from lerobot_assets.format.files import MAX_PARQUET_BYTES, flat, open_metadata
from lerobot_assets.format.stats_json import STAT_KEYS

if TYPE_CHECKING:  # fsspec is only needed for remote roots
    from fsspec import AbstractFileSystem

EPISODES_GLOB = "meta/episodes/chunk-*/file-*.parquet"


# Types of the columns every reader relies on (LeRobot writes exactly these); a shard holding
# another type that does not cast is named, instead of failing later in arithmetic on strings.
_BASE_TYPES: dict[str, pa.DataType] = {
    "episode_index": pa.int64(),
    "tasks": pa.list_(pa.string()),
    "length": pa.int64(),
    "data/chunk_index": pa.int64(),
    "data/file_index": pa.int64(),
    "dataset_from_index": pa.int64(),
    "dataset_to_index": pa.int64(),
    "meta/episodes/chunk_index": pa.int64(),
    "meta/episodes/file_index": pa.int64(),
}
_VIDEO_TYPES: dict[str, pa.DataType] = {
    "chunk_index": pa.int64(),
    "file_index": pa.int64(),
    "from_timestamp": pa.float64(),
    "to_timestamp": pa.float64(),
}


def expected_column_type(name: str) -> pa.DataType | None:
    """The type LeRobot gives episodes column `name` (None for stats and unknown columns)."""
    if name in _BASE_TYPES:
        return _BASE_TYPES[name]
    if name.startswith("videos/"):
        return _VIDEO_TYPES.get(name.rsplit("/", 1)[-1])
    return None


def typed_episodes(table: pa.Table, where: Path | str) -> pa.Table:
    """`table` with every known column cast to its LeRobot type; ValueError naming `where` and the
    column when one does not cast (strings in `length`, a number in `tasks`...)."""
    for i, name in enumerate(table.column_names):
        want = expected_column_type(name)
        col = table.column(i)
        if want is None or col.type == want:
            continue
        try:
            table = table.set_column(i, name, col.cast(want))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise ValueError(f"{where}: column {name!r} has type {col.type}, expected {want} ({flat(e)})") from None
    return table


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
        if f.dtype in TEXT_DTYPES:
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
        tables.append(read_episodes_file(path, columns, fs))
    if not tables:
        return pa.table({"episode_index": pa.array([], pa.int64())})
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(f"{root}/meta/episodes: shards have incompatible schemas: {flat(e)}") from None
    return table.sort_by("episode_index")


def read_episodes_schema(path: Path | str, fs: "AbstractFileSystem | None" = None) -> pa.Schema:
    """The schema of one episodes shard (its footer only), read like `read_episodes_file`."""
    try:
        with open_metadata(path, MAX_PARQUET_BYTES, fs) as f:
            return pq.read_schema(f)
    except FileNotFoundError as e:
        raise ValueError(f"{path}: unreadable episodes parquet: {flat(e)}") from None
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: unreadable episodes parquet: {flat(e)}") from None


def read_episodes_file(
    path: Path | str, columns: list[str] | None = None, fs: "AbstractFileSystem | None" = None
) -> pa.Table:
    """One episodes shard (through `files.open_metadata`: a regular file under the parquet cap),
    known columns cast to their LeRobot types. ValueError naming the file for anything unreadable."""
    try:
        with open_metadata(path, MAX_PARQUET_BYTES, fs) as f:
            table = pq.read_table(f, columns=columns)
    except FileNotFoundError as e:  # vanished since it was listed
        raise ValueError(f"{path}: unreadable episodes parquet: {flat(e)}") from None
    except (pa.ArrowException, OSError, KeyError) as e:
        # KeyError: pyarrow's message for a missing column is just its name; say what it is.
        detail = f"no column {e}" if isinstance(e, KeyError) else flat(e)
        raise ValueError(f"{path}: unreadable episodes parquet: {detail}") from None
    if "episode_index" in table.column_names and table.column("episode_index").null_count:
        raise ValueError(f"{path}: column 'episode_index' has null values")
    return typed_episodes(table, path)
