{{ config(materialized='incremental', per_file_of='lerobot.frames') }}
-- Per-episode facts read from the frames, per data file: row count, timestamp steps, non-finite values.
-- The one pass over the data parquet, kept apart from episode_quality and incremental: an episode's rows
-- live in one data file, so the catalog recomputes only new or changed files, and query sessions reuse
-- its rows for every file unchanged since.
with frame_flags as (
    -- Reduce the vectors to booleans before the window: the window then sorts scalars only.
    select
        dataset,
        data_file,
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
        "timestamp" - lag("timestamp") over (partition by dataset, data_file, episode_index order by frame_index) as dt
    from frame_flags
)
select
    dataset,
    data_file,
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
group by dataset, data_file, episode_index
