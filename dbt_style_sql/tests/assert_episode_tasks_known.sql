{{ config(severity='error') }}
-- Every task named by an episode is in meta/tasks.parquet.
select dataset, task, episodes
from {{ ref('task_summary') }}
where task_index is null
