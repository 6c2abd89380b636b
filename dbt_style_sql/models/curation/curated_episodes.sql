{{ config(materialized='table') }}
-- Episodes of the merged dataset that curation keeps, one row each: the Dagster asset
-- curated_dataset writes the merged dataset minus every episode not listed here (stream copy).
-- Rules, each a var so a run can tighten them without editing SQL:
--   curation_max_flags     keep episodes with at most this many episode_quality flags (default 0)
--   curation_min_seconds   and at least this long (default 0: episode_quality's too_short flag already applies)
--   curation_max_seconds   and at most this long (default 0: no limit); a PushT expert that hits the
--                          step limit failed to push the T home, so a limit just under it drops failures
--   curation_tasks         and, when not empty, with one of these tasks
with quality as (
    select *
    from {{ ref('episode_quality') }}
    where dataset = {{ var('curation_dataset', 'datasets/lerobot_dataset') }}
)

select
    episode_index,
    length,
    duration_s,
    tasks,
    n_flags
from quality
where n_flags <= {{ var('curation_max_flags', 0) }}
  and duration_s >= {{ var('curation_min_seconds', 0.0) }}
  and ({{ var('curation_max_seconds', 0.0) }} <= 0 or duration_s <= {{ var('curation_max_seconds', 0.0) }})
  and (len({{ var('curation_tasks', []) }}) = 0 or list_has_any(tasks, {{ var('curation_tasks', []) }}))
order by episode_index
