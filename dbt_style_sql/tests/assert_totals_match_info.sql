{{ config(severity='error') }}
-- Counted episodes, frames and tasks equal the totals in meta/info.json.
select dataset, episodes, total_episodes, frames, total_frames, tasks, total_tasks
from {{ ref('dataset_summary') }}
where not totals_match_info
