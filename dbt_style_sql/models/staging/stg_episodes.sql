{{ config(materialized='view') }}
-- One row per episode of every dataset: the v3 episodes metadata with SQL-friendly column names.
select
    dataset,
    episode_index,
    tasks,
    length,
    "data/chunk_index" as data_chunk_index,
    "data/file_index" as data_file_index,
    dataset_from_index,
    dataset_to_index,
    "meta/episodes/chunk_index" as meta_chunk_index,
    "meta/episodes/file_index" as meta_file_index,
    "stats/observation.state/min" as state_min,
    "stats/observation.state/max" as state_max,
    "stats/action/min" as action_min,
    "stats/action/max" as action_max
from {{ source('lerobot', 'episodes') }}
