"""The dbt_style_sql models as Dagster assets on DuckDB (their data tests are checks: checks.py).

The project is parsed when the code location loads, so an unknown ref or source, a cycle or SQL
that does not parse fails loading with the file, line and name (ProjectLoadError).
"""

from typing import Any

import dagster as dg

from lerobot_assets.defs.resources import DataHome, SqlVarsResource
from lerobot_assets.defs.sql.checks import CATALOG_POOL, data_test_check
from lerobot_assets.sql import SqlProject, load_project

SQL_GROUP = "sql"
SQL_SELECTION = dg.AssetSelection.groups(SQL_GROUP)


def _model_asset(project: SqlProject, name: str) -> dg.AssetsDefinition:
    model = project.models[name]

    @dg.asset(
        name=name,
        group_name=SQL_GROUP,
        deps=[dg.AssetKey(dep) for dep in project.upstream_assets(name)],
        kinds={"duckdb", "sql"},
        automation_condition=dg.AutomationCondition.eager(),
        description=model.description or f"dbt-style model {model.path.name} ({model.materialized})",
        metadata={"materialized": model.materialized, "sql_file": str(model.path)},
        pool=CATALOG_POOL,
    )
    def _asset(context: dg.AssetExecutionContext, home: DataHome, sql: SqlVarsResource) -> dg.MaterializeResult:
        result = home.catalog(project=project, vars=sql.vars).materialize(name)
        metadata: dict[str, Any] = {
            "dagster/row_count": dg.MetadataValue.int(result.row_count),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(column, str(dtype)) for column, dtype in result.columns]
            ),
            "preview": dg.MetadataValue.md(result.preview_markdown),
            "catalog": dg.MetadataValue.path(str(result.catalog_path)),
            "up_to_date": dg.MetadataValue.bool(result.up_to_date),
        }
        how = "kept: inputs unchanged since the last build" if result.up_to_date else model.materialized
        if result.files_computed is not None:
            metadata.update(
                files_computed=dg.MetadataValue.int(result.files_computed),
                files_reused=dg.MetadataValue.int(result.files_reused or 0),
                files_removed=dg.MetadataValue.int(result.files_removed or 0),
            )
            how = (
                f"incremental: {result.files_computed} files computed, {result.files_reused} reused, "
                f"{result.files_removed} removed"
            )
        context.log.info(f"{name}: {result.row_count} rows ({how})")
        return dg.MaterializeResult(metadata=metadata)

    return _asset


def build_sql_defs() -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    project = load_project()
    assets = [_model_asset(project, name) for name in project.models]
    checks = [data_test_check(project, test) for test in project.tests.values()]
    return assets, checks
