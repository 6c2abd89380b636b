{{ config(materialized='view') }}
-- One row per (dataset, feature, statistic) of meta/stats.json; `value` is flattened, `shape` keeps the layout.
select
    dataset,
    feature,
    stat,
    value,
    shape
from {{ source('lerobot', 'stats') }}
