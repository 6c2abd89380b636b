{{ config(materialized='table') }}
-- Per-episode facts read from the frames: row count, timestamp steps and non-finite values.
-- Kept apart from episode_quality so the one pass over the data parquet is materialized once.
with frame_flags as (
    -- Reduce the vectors to booleans before the window: the window then sorts scalars only.
    select
        dataset,
        episode_index,
        frame_index,
        "timestamp",
        -- list_distance(x, x) is 0 for finite vectors and NaN as soon as one element is NaN or inf
        -- (inf - inf = NaN): one vectorised kernel, no per-row lambda, no overflow for large values.
        isnan(list_distance(state, state)) as state_nonfinite,
        isnan(list_distance(action, action)) as action_nonfinite
    from {{ ref('stg_frames') }}
),
steps as (
    select
        *,
        "timestamp" - lag("timestamp") over (partition by dataset, episode_index order by frame_index) as dt
    from frame_flags
)
select
    dataset,
    episode_index,
    count(*) as n_frames,
    min(frame_index) as min_frame_index,
    max(frame_index) as max_frame_index,
    min("timestamp") as first_timestamp,
    max("timestamp") as last_timestamp,
    min(dt) as min_timestamp_step,
    max(dt) as max_timestamp_step,
    coalesce(bool_or(state_nonfinite), false) as state_nonfinite,
    coalesce(bool_or(action_nonfinite), false) as action_nonfinite
from steps
group by dataset, episode_index
