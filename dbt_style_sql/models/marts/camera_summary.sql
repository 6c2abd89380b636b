{{ config(materialized='table') }}
-- One row per camera per dataset: codec, resolution, and what its video costs (bytes per frame).
with segments as (
    select v.dataset, v.video_key, count(*) as episodes, sum(e.length)::bigint as frames
    from {{ ref('stg_episode_videos') }} as v
    join {{ ref('stg_episodes') }} as e using (dataset, episode_index)
    group by v.dataset, v.video_key
),
files as (
    select dataset, video_key, count(*) as video_files, sum(bytes)::bigint as video_bytes
    from {{ ref('stg_video_files') }}
    group by dataset, video_key
)
select
    c.dataset,
    c.video_key,
    c.dtype,
    c.codec,
    c.pix_fmt,
    c.width,
    c.height,
    c.fps,
    coalesce(s.episodes, 0) as episodes,
    coalesce(s.frames, 0) as frames,
    coalesce(f.video_files, 0) as video_files,
    coalesce(f.video_bytes, 0) as video_bytes,
    f.video_bytes / nullif(s.frames, 0) as bytes_per_frame
from {{ ref('stg_cameras') }} as c
left join segments as s using (dataset, video_key)
left join files as f using (dataset, video_key)
order by c.dataset, c.video_key
