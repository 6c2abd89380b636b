{{ config(severity='error', model='annotation_summary') }}
-- Every episode of an annotated dataset (one with language rows) has at least one subtask row.
select e.dataset, e.episode_index
from {{ ref('stg_episodes') }} as e
where e.dataset in (select distinct dataset from {{ ref('annotation_summary') }})
  and not exists (
      select 1
      from {{ source('lerobot', 'annotations') }} as a
      where a.dataset = e.dataset and a.episode_index = e.episode_index and a.style = 'subtask'
  )
order by e.dataset, e.episode_index
