"""Pydantic models for the dbt-style project: `sources.yml` and the `{{ config(...) }}` of models and tests.

Parsing the YAML into strict models (extra keys forbidden) means a typo in `sources.yml` or in a
`config()` call fails at load time with a precise message instead of being silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# "skipped": no files; one row per dataset left out because a file of it cannot be read.
SourceFormat = Literal["parquet", "json", "listing", "skipped"]
Materialization = Literal["table", "view", "incremental"]


class ColumnSpec(BaseModel):
    """A column a source guarantees to models.

    For parquet sources the binder casts the column to `data_type` when a dataset has it and adds it as
    a typed NULL when a dataset lacks it, so models bind over any mix of datasets (and over none).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    data_type: str | None = None
    description: str = ""


class SourceTableConfig(BaseModel):
    """One source table: files matched by `glob` under every dataset root, read as one relation."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    format: SourceFormat
    # Globs relative to each dataset root (a directory holding meta/info.json). A list lets one source
    # cover layouts that differ between writers without a second source definition. None for "skipped".
    glob: list[str] = Field(default_factory=list)
    # The Dagster asset that writes these files ("a/b" for a prefixed key); the Dagster layer draws
    # lineage from it into every model that reads the source.
    asset: str
    # json sources: which Python parser turns each file into rows (see sources.JSON_PARSERS).
    parser: str | None = None
    # parquet sources: an optional reshape applied per dataset (see sources.TRANSFORMS).
    transform: str | None = None
    # A dataset that has no file for a required source is broken: binding fails naming the root.
    required: bool = False
    # parquet sources: a column holding each row's file, relative to its dataset root
    # ("data/chunk-000/file-000.parquet"). Incremental models key their per-file state on it.
    file_column: str | None = None
    columns: list[ColumnSpec] = Field(default_factory=list)

    @field_validator("glob", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _format_options(self) -> SourceTableConfig:
        if self.format == "json" and not self.parser:
            raise ValueError(f"source table {self.name!r}: format 'json' needs a 'parser'")
        if self.format != "json" and self.parser:
            raise ValueError(f"source table {self.name!r}: 'parser' applies only to format 'json'")
        if self.format != "parquet" and self.transform:
            raise ValueError(f"source table {self.name!r}: 'transform' applies only to format 'parquet'")
        if self.format != "parquet" and self.file_column:
            raise ValueError(f"source table {self.name!r}: 'file_column' applies only to format 'parquet'")
        if self.file_column and self.transform:
            raise ValueError(f"source table {self.name!r}: 'file_column' and 'transform' do not combine")
        if self.format == "skipped":
            if self.glob or self.required:
                raise ValueError(f"source table {self.name!r}: format 'skipped' reads no files: no 'glob', not 'required'")
        elif not self.glob:
            raise ValueError(f"source table {self.name!r}: 'glob' is empty")
        return self


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    tables: list[SourceTableConfig]


class SourcesFile(BaseModel):
    """The whole `sources.yml` (dbt's `version: 2` shape, restricted to what we implement)."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[2] = 2
    sources: list[SourceConfig]


class ModelConfig(BaseModel):
    """Arguments of `{{ config(...) }}` in a model file.

    `materialized='incremental'` with `per_file_of='<source>.<table>'` declares a model whose rows for
    one file of that parquet source depend on that file alone (e.g. per-episode facts of the frames: an
    episode never spans data files). The catalog then keeps its rows per file with the file's
    fingerprint and recomputes only new or changed files; query sessions reuse the catalog's rows for
    unchanged files. The model must output `dataset` and the source's `file_column`, and read no other
    source (checked at load time).
    """

    model_config = ConfigDict(extra="forbid")

    materialized: Materialization = "view"
    per_file_of: str | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    # Dagster group for the asset; the thin layer may ignore it.
    group: str | None = None

    @model_validator(mode="after")
    def _incremental_options(self) -> ModelConfig:
        if self.materialized == "incremental" and not self.per_file_of:
            raise ValueError("materialized='incremental' needs per_file_of='<source>.<table>'")
        if self.per_file_of and self.materialized != "incremental":
            raise ValueError("per_file_of applies only to materialized='incremental'")
        if self.per_file_of and self.per_file_of.count(".") != 1:
            raise ValueError(f"per_file_of={self.per_file_of!r}: expected '<source>.<table>'")
        return self


class DataTestConfig(BaseModel):
    """Arguments of `{{ config(...) }}` in a data-test file."""

    model_config = ConfigDict(extra="forbid")

    # 'error' → a blocking asset check; 'warn' → reported but does not stop downstream assets.
    severity: Literal["error", "warn"] = "error"
    # The model the check is attached to. Required only when the test refs several models.
    model: str | None = None
    description: str | None = None
