{{ config(materialized='table') }}
-- Episodes, frames and hours per task per dataset (an episode with several tasks counts for each).
with episode_tasks as (
    select dataset, episode_index, length, unnest(tasks) as task
    from {{ ref('stg_episodes') }}
)
select
    et.dataset,
    et.task,
    t.task_index,
    count(*) as episodes,
    sum(et.length)::bigint as frames,
    sum(et.length) / i.fps / 3600 as hours
from episode_tasks as et
left join {{ ref('stg_tasks') }} as t using (dataset, task)
left join {{ ref('stg_info') }} as i using (dataset)
group by et.dataset, et.task, t.task_index, i.fps
order by et.dataset, t.task_index nulls last, et.task
