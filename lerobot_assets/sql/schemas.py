"""Parquet schemas of source shards: footers read once (or taken from the catalog's record), unified per dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.sql.discovery import DatasetRoot
from lerobot_assets.sql.errors import SourceError
from lerobot_assets.sql.remote import arrow_filesystem, is_local


def _normalize_type(t: pa.DataType) -> pa.DataType:
    """fixed_size_list → list, recursively: DuckDB's read_parquet already reads them as lists, and
    variable lists let `UNION BY NAME` combine datasets whose vectors differ in size (6 vs 14 joints)."""
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(pa.field(t.value_field.name, _normalize_type(t.value_type)))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _normalize_type(f.type), f.nullable) for f in t])
    return t


class SchemaCache:
    """Parquet footers read once per file per binder; a failure names the file.

    `known` (url → (file fingerprint, schema), e.g. what the catalog recorded) answers for files whose
    fingerprint is unchanged without opening them: on a home of hundreds of shards, reading footers is
    most of the time it takes to open a query session.
    """

    def __init__(self, known: Mapping[str, tuple[str, pa.Schema]] | None = None) -> None:
        self._schemas: dict[tuple[int, str], pa.Schema] = {}
        self._known = dict(known or {})
        # unified() per set of shards: a binder asks once to check a dataset and again to bind it.
        self._unified: dict[tuple[int, tuple[str, ...]], tuple[pa.Schema, str | None]] = {}

    def get(self, root: DatasetRoot, path: str) -> pa.Schema | None:
        return self._schemas.get((id(root.fs), path))

    def read(
        self, root: DatasetRoot, paths: Sequence[str], fingerprints: Mapping[str, str] | None = None
    ) -> list[pa.Schema]:
        todo = [p for p in paths if (id(root.fs), p) not in self._schemas]
        if todo and fingerprints and self._known:
            unread = []
            for path in todo:
                known = self._known.get(root.file_url(path))
                if known is not None and known[0] == fingerprints.get(path):
                    self._schemas[(id(root.fs), path)] = known[1]
                else:
                    unread.append(path)
            todo = unread
        if todo:
            filesystem = arrow_filesystem(root.fs)

            def one(path: str) -> pa.Schema:
                try:
                    with filesystem.open_input_file(path) as handle:
                        return pq.ParquetFile(handle).schema_arrow
                except (OSError, pa.ArrowException, ValueError) as exc:
                    raise SourceError(f"cannot read parquet file {root.file_url(path)}: {exc}") from exc

            # Footers are tiny; for remote roots the latency dominates, so read them concurrently.
            workers = 1 if is_local(root.fs) and len(todo) < 8 else min(16, len(todo))
            if workers == 1:
                schemas = [one(p) for p in todo]
            else:
                with ThreadPoolExecutor(workers) as pool:
                    schemas = list(pool.map(one, todo))
            for path, schema in zip(todo, schemas):
                self._schemas[(id(root.fs), path)] = schema
        return [self._schemas[(id(root.fs), p)] for p in paths]

    def unified(
        self, root: DatasetRoot, paths: Sequence[str], fingerprints: Mapping[str, str] | None = None
    ) -> tuple[pa.Schema, str | None]:
        """The schema of all shards together (fixed-size lists as lists), and the raw schema's fingerprint
        when all shards agree (None when they differ).

        Shards of one dataset nearly always share one schema, so distinct schemas are found with cheap
        C++ equality first and only those are normalised and unified.
        """
        key = (id(root.fs), tuple(paths))
        if key not in self._unified:
            self._unified[key] = self._unify(root, paths, fingerprints)
        return self._unified[key]

    def _unify(
        self, root: DatasetRoot, paths: Sequence[str], fingerprints: Mapping[str, str] | None
    ) -> tuple[pa.Schema, str | None]:
        distinct: list[pa.Schema] = []
        for schema in self.read(root, paths, fingerprints):
            if not any(schema.equals(d) for d in distinct):
                distinct.append(schema)
        try:
            merged = pa.unify_schemas(
                [pa.schema([f.with_type(_normalize_type(f.type)) for f in d]) for d in distinct],
                promote_options="permissive",
            )
        except (pa.ArrowException, ValueError) as exc:
            raise SourceError(f"{root.url}: parquet shards have incompatible schemas: {exc}") from exc
        return merged.remove_metadata(), (schema_fingerprint(distinct[0]) if len(distinct) == 1 else None)


def schema_fingerprint(schema: pa.Schema) -> str:
    """Field names and types as one string, to group shards and datasets whose schemas are equal."""
    return "\x1f".join(f"{f.name}\x1e{f.type}" for f in schema)
