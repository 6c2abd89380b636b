{{ config(materialized='view') }}
-- One row per indexed video frame (meta/byte_index/), when a byte index was built; empty otherwise.
select
    dataset,
    video_key,
    chunk_index,
    file_index,
    episode_index,
    frame_index,
    pts_s,
    byte_offset,
    size,
    keyframe
from {{ source('lerobot', 'byte_index') }}
