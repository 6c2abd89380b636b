"""SQL over dataset metadata: a dbt-style model loader and its DuckDB runner (pure library, no Dagster).

For the Dagster layer:
    project = load_project()                       # checked DAG; raises ProjectLoadError (file:line: name: why)
    project.models[name].materialized / .refs / .description / .path
    project.upstream_assets(name)                  # asset deps: refs + the assets its sources come from
    project.sources[(src, table)].asset            # the Python dataset asset a source is read from
    project.tests[name].model / .blocking          # one asset check per data test
    Catalog(home).materialize(name) -> ModelResult # row_count, columns, preview_markdown
    Catalog(home).run_data_test(name) -> DataTestResult

For ad-hoc SQL (the CLI): `QuerySession.open(home, roots)` — read-only, sources and models as views.

`lerobot_assets/defs/sql/assets.py` is that Dagster layer; nothing here imports dagster. Its shape:

    project = load_project()

    def model_asset(name):  # a factory, so each asset closes over its own name
        model = project.models[name]
        @dg.asset(name=name, deps=[dg.AssetKey(d) for d in project.upstream_assets(name)], group_name="sql")
        def _asset(home: DataHome) -> dg.MaterializeResult:
            r = Catalog(home.layout().root, project=project).materialize(name)
            return dg.MaterializeResult(metadata={
                "dagster/row_count": r.row_count,
                "dagster/column_schema": dg.TableSchema([dg.TableColumn(c, t) for c, t in r.columns]),
                "preview": dg.MetadataValue.md(r.preview_markdown), "catalog": r.catalog_path})
        return _asset

    def test_check(test):
        @dg.asset_check(asset=test.model, name=test.name, blocking=test.blocking, description=test.description)
        def _check(home: DataHome) -> dg.AssetCheckResult:
            r = Catalog(home.layout().root, project=project).run_data_test(test.name)
            return dg.AssetCheckResult(passed=r.passed, metadata={
                "failing_rows": r.failing_rows, "preview": dg.MetadataValue.md(r.preview_markdown)})
        return _check

Modules, in an order where each imports only from those before it:
    errors, config, quoting      errors; sources.yml and config() models; quote_ident, sql_literal, sql_value
    interrupt                    Ctrl-C stops a running DuckDB call
    remote, discovery            fsspec filesystems; finding dataset roots (DatasetRoot)
    parsers, transforms          the JSON parsers and SQL transforms a source may name
    project, loader              the loaded project (and rendering a node's SQL); load_project and its checks
    resolution, schemas          which files each source has; their parquet schemas
    binder, freshness            sources as DuckDB relations; which catalog tables are still current
    diagnose, incremental        naming a broken file; an incremental model over only some files
    formatting, catalog          Markdown previews; the catalog file (Catalog, ModelResult, DataTestResult)
    session                      the read-only QuerySession (reuses the catalog's current tables)
"""

from lerobot_assets.home.layout import default_home
from lerobot_assets.sql.binder import SkippedDataset
from lerobot_assets.sql.catalog import CATALOG_RELPATH, Catalog, DataTestResult, ModelResult
from lerobot_assets.sql.config import ColumnSpec, DataTestConfig, ModelConfig, SourcesFile, SourceTableConfig
from lerobot_assets.sql.discovery import DatasetRoot, check_home, discover_datasets
from lerobot_assets.sql.errors import (
    CatalogBusyError,
    ProjectLoadError,
    ProjectProblem,
    QueryError,
    ReadOnlyError,
    SourceError,
    SqlError,
    VarError,
)
from lerobot_assets.sql.formatting import to_markdown
from lerobot_assets.sql.loader import default_project_dir, load_project
from lerobot_assets.sql.project import DataTest, SourceTable, SqlModel, SqlProject, parse_vars
from lerobot_assets.sql.remote import parse_storage_options
from lerobot_assets.sql.session import QuerySession, RelationInfo, check_read_only

__all__ = [
    "CatalogBusyError",
    "CATALOG_RELPATH",
    "Catalog",
    "ColumnSpec",
    "DataTest",
    "DataTestConfig",
    "DataTestResult",
    "DatasetRoot",
    "ModelConfig",
    "ModelResult",
    "ProjectLoadError",
    "ProjectProblem",
    "QueryError",
    "QuerySession",
    "ReadOnlyError",
    "RelationInfo",
    "SkippedDataset",
    "SourceError",
    "SourceTable",
    "SourceTableConfig",
    "SourcesFile",
    "SqlError",
    "SqlModel",
    "SqlProject",
    "VarError",
    "check_home",
    "check_read_only",
    "default_home",
    "default_project_dir",
    "discover_datasets",
    "load_project",
    "parse_storage_options",
    "parse_vars",
    "to_markdown",
]
