{{ config(materialized='view') }}
-- One row per task of every dataset.
select
    dataset,
    task_index,
    task
from {{ source('lerobot', 'tasks') }}
