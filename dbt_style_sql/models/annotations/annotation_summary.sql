{{ config(materialized='table') }}
-- Language annotations (LeRobot 0.6.1 columns) per dataset and style: rows and the episodes that have
-- them; speech atoms (tool calls, style null) count as style 'speech'. The subtask figures are per
-- dataset, on every row of it: subtasks per annotated episode, and the mean subtask length in seconds
-- (a subtask ends where the next one starts, the episode's last one at its last frame).
with lang as (
    select dataset, episode_index, timestamp, "column", coalesce(style, 'speech') as style
    from {{ source('lerobot', 'annotations') }}
),
spans as (
    select
        s.dataset,
        s.episode_index,
        coalesce(
            lead(s.timestamp) over (partition by s.dataset, s.episode_index order by s.timestamp),
            (e.length - 1)::double / i.fps
        ) - s.timestamp as seconds
    from lang as s
    left join {{ ref('stg_episodes') }} as e using (dataset, episode_index)
    left join {{ ref('stg_info') }} as i using (dataset)
    where s.style = 'subtask'
),
subtask_stats as (
    select
        dataset,
        count(*)::double / count(distinct episode_index) as mean_subtasks_per_episode,
        avg(seconds) as mean_subtask_seconds
    from spans
    group by dataset
),
per_style as (
    select dataset, style, min("column") as "column", count(*) as rows, count(distinct episode_index) as episodes
    from lang
    group by dataset, style
)
select
    p.dataset,
    p.style,
    p."column",
    p.rows,
    p.episodes,
    s.mean_subtasks_per_episode,
    s.mean_subtask_seconds
from per_style as p
left join subtask_stats as s using (dataset)
order by p.dataset, p.style
