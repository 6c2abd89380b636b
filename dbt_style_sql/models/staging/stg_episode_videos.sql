{{ config(materialized='view') }}
-- One row per (episode, camera): where the episode's segment lies in which MP4 file.
select
    dataset,
    episode_index,
    video_key,
    chunk_index as video_chunk_index,
    file_index as video_file_index,
    from_timestamp,
    to_timestamp,
    to_timestamp - from_timestamp as duration_s
from {{ source('lerobot', 'episode_videos') }}
