{{ config(materialized='view') }}
-- One row per frame (a view over the data parquet files, never copied), with the columns checks need.
select
    dataset,
    data_file,
    episode_index,
    frame_index,
    "index" as global_index,
    task_index,
    cast("timestamp" as double) as "timestamp",
    "observation.state" as state,
    action
from {{ source('lerobot', 'frames') }}
