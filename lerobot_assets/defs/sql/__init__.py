"""SQL: the dbt_style_sql models as assets on the DuckDB catalog, their data tests as checks."""
