{{ config(materialized='view') }}
-- One row per camera (video or image feature) of every dataset, from meta/info.json.
select
    dataset,
    video_key,
    dtype,
    codec,
    pix_fmt,
    width,
    height,
    channels,
    fps,
    is_depth_map,
    g as gop,
    crf,
    preset
from {{ source('lerobot', 'cameras') }}
