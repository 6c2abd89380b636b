"""The SQL data tests as asset checks: each returns the failing rows of its model.

Models and checks share one DuckDB file, which takes one writer process at a time, so both run in the
`duckdb_catalog` pool: with the instance's pool limit at 1 (`concurrency.pools.default_limit: 1`,
what `lerobot-assets demo`/`ui` write into dagster.yaml), Dagster queues them instead of letting
their steps collide on the file's lock.
"""

import dagster as dg

from lerobot_assets.defs.resources import DataHome, SqlVarsResource
from lerobot_assets.sql import DataTest, SqlProject

CATALOG_POOL = "duckdb_catalog"


def data_test_check(project: SqlProject, test: DataTest) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(test.model),
        name=test.name,
        blocking=test.blocking,
        description=test.description or f"SQL data test {test.name}: returns the failing rows",
        pool=CATALOG_POOL,
    )
    def _check(home: DataHome, sql: SqlVarsResource) -> dg.AssetCheckResult:
        result = home.catalog(project=project, vars=sql.vars).run_data_test(test.name)
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR if test.blocking else dg.AssetCheckSeverity.WARN,
            metadata={
                "failing_rows": dg.MetadataValue.int(result.failing_rows),
                "preview": dg.MetadataValue.md(result.preview_markdown),
            },
        )

    return _check
