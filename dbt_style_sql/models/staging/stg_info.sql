{{ config(materialized='view') }}
-- One row per dataset from meta/info.json.
select
    dataset,
    codebase_version,
    robot_type,
    fps,
    total_episodes,
    total_frames,
    total_tasks,
    chunks_size,
    data_files_size_in_mb,
    video_files_size_in_mb,
    feature_names,
    root
from {{ source('lerobot', 'info') }}
