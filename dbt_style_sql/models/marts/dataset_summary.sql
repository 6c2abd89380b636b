{{ config(materialized='table') }}
-- One row per dataset: what it holds, its shards, and whether its metadata agrees with info.json.
with episodes as (
    select
        dataset,
        count(*) as episodes,
        sum(length)::bigint as frames,
        count(distinct (data_chunk_index, data_file_index)) as data_files,
        count(distinct (meta_chunk_index, meta_file_index)) as episode_files,
        min(length) as min_episode_frames,
        max(length) as max_episode_frames
    from {{ ref('stg_episodes') }}
    group by dataset
),
quality as (
    select dataset, count(*) filter (where n_flags > 0) as flagged_episodes
    from {{ ref('episode_quality') }}
    group by dataset
),
tasks as (
    select dataset, count(*) as tasks from {{ ref('stg_tasks') }} group by dataset
),
cameras as (
    select dataset, count(*) as cameras from {{ ref('stg_cameras') }} group by dataset
),
videos as (
    select dataset, count(*) as video_files, sum(bytes)::bigint as video_bytes
    from {{ ref('stg_video_files') }}
    group by dataset
)
select
    i.dataset,
    i.codebase_version,
    i.robot_type,
    i.fps,
    coalesce(e.episodes, 0) as episodes,
    coalesce(e.frames, 0) as frames,
    coalesce(e.frames, 0) / i.fps / 3600 as hours,
    coalesce(t.tasks, 0) as tasks,
    coalesce(c.cameras, 0) as cameras,
    coalesce(e.data_files, 0) as data_files,
    coalesce(e.episode_files, 0) as episode_files,
    coalesce(v.video_files, 0) as video_files,
    coalesce(v.video_bytes, 0) as video_bytes,
    e.min_episode_frames,
    e.max_episode_frames,
    coalesce(q.flagged_episodes, 0) as flagged_episodes,
    i.total_episodes,
    i.total_frames,
    i.total_tasks,
    coalesce(e.episodes, 0) = i.total_episodes
        and coalesce(e.frames, 0) = i.total_frames
        and coalesce(t.tasks, 0) = i.total_tasks as totals_match_info,
    i.root
from {{ ref('stg_info') }} as i
left join episodes as e using (dataset)
left join quality as q using (dataset)
left join tasks as t using (dataset)
left join cameras as c using (dataset)
left join videos as v using (dataset)
order by i.dataset
