{{ config(materialized='table') }}
-- One row per episode with quality flags; n_flags = 0 means nothing looked wrong.
-- Thresholds are vars: min_episode_seconds, idle_motion_threshold, max_frame_gap_periods, timestamp_tolerance_s.
with episodes as (
    select
        e.*,
        i.fps,
        e.length / i.fps as duration_s,
        -- motion = size of the box the episode's state (action) stays in: |max - min| over all joints,
        -- from the per-episode stats the format stores (exact extrema), so no frame scan is needed
        greatest(list_distance(e.state_max, e.state_min), list_distance(e.action_max, e.action_min)) as motion
    from {{ ref('stg_episodes') }} as e
    left join {{ ref('stg_info') }} as i using (dataset)
),

frames as (
    -- one row per episode: an episode whose frames sit in several data files (never written so by
    -- LeRobot or us) is summed over them, so it still gets one row and its counts add up
    select
        dataset,
        episode_index,
        sum(n_frames) as n_frames,
        min(min_timestamp_step) as min_timestamp_step,
        max(max_timestamp_step) as max_timestamp_step,
        bool_or(state_nonfinite) as state_nonfinite,
        bool_or(action_nonfinite) as action_nonfinite
    from {{ ref('int_episode_frame_checks') }}
    group by dataset, episode_index
),

byte_counts as (
    -- real per-episode frame counts of each camera, when a byte index was built
    select dataset, video_key, episode_index, count(*) as n_indexed_frames
    from {{ ref('stg_byte_index') }}
    group by dataset, video_key, episode_index
),

segments as (
    select
        v.*,
        -- segments of one MP4 file must not overlap: compare with the previous one in that file
        lag(v.to_timestamp) over (
            partition by v.dataset, v.video_key, v.video_chunk_index, v.video_file_index
            order by v.from_timestamp, v.episode_index
        ) as previous_to_timestamp
    from {{ ref('stg_episode_videos') }} as v
),

video as (
    select
        s.dataset,
        s.episode_index,
        count(*) as n_video_segments,
        -- byte-index counts when present, else the segment's duration in frames
        min(coalesce(b.n_indexed_frames, cast(round(s.duration_s * e.fps) as bigint))) as min_video_frames,
        max(coalesce(b.n_indexed_frames, cast(round(s.duration_s * e.fps) as bigint))) as max_video_frames,
        bool_or(
            s.from_timestamp is null
            or s.to_timestamp is null
            or s.from_timestamp < 0
            or s.to_timestamp <= s.from_timestamp
            or s.from_timestamp < s.previous_to_timestamp - {{ var('timestamp_tolerance_s', 0.0001) }}
        ) as inconsistent_video_timestamps
    from segments as s
    join episodes as e using (dataset, episode_index)
    left join byte_counts as b using (dataset, video_key, episode_index)
    group by s.dataset, s.episode_index
),

flags as (
    select
        e.dataset,
        e.episode_index,
        e.tasks,
        e.length,
        e.fps,
        e.duration_s,
        f.n_frames,
        v.n_video_segments,
        v.min_video_frames,
        v.max_video_frames,
        f.max_timestamp_step,
        e.motion,
        coalesce(f.n_frames, 0) <> e.length as frame_count_mismatch,
        coalesce(v.min_video_frames <> e.length or v.max_video_frames <> e.length, false) as video_length_mismatch,
        coalesce(v.inconsistent_video_timestamps, false) as inconsistent_video_timestamps,
        coalesce(f.max_timestamp_step > {{ var('max_frame_gap_periods', 1.5) }} / e.fps, false) as timestamp_gap,
        coalesce(f.min_timestamp_step <= 0, false) as non_monotonic_timestamps,
        coalesce(f.state_nonfinite or f.action_nonfinite, false) as has_nan_or_inf,
        coalesce(e.motion < {{ var('idle_motion_threshold', 0.001) }}, false) as idle,
        coalesce(e.length < {{ var('min_episode_seconds', 0.5) }} * e.fps, false) as too_short
    from episodes as e
    left join frames as f using (dataset, episode_index)
    left join video as v using (dataset, episode_index)
)

select
    *,
    frame_count_mismatch::int + video_length_mismatch::int + inconsistent_video_timestamps::int
        + timestamp_gap::int + non_monotonic_timestamps::int + has_nan_or_inf::int
        + idle::int + too_short::int as n_flags
from flags
order by dataset, episode_index
