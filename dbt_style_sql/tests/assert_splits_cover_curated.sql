{{ config(severity='warn') }}
-- The splits (datasets/splits/*) together hold exactly the curated dataset's episodes and frames.
-- A warning: the SQL models read the datasets as the last run left them, and curated_dataset and
-- dataset_splits are rebuilt after the models (their own blocking checks compare them by content).
with per_dataset as (
    select dataset, count(*) as episodes, sum(length) as frames
    from {{ ref('stg_episodes') }}
    group by dataset
),

curated as (
    select episodes, frames from per_dataset where dataset = 'datasets/curated_dataset'
),

splits as (
    select count(*) as n_splits, sum(episodes) as episodes, sum(frames) as frames
    from per_dataset
    where dataset like 'datasets/splits/%'
)

select c.episodes as curated_episodes, s.episodes as split_episodes, c.frames as curated_frames, s.frames as split_frames
from curated as c, splits as s
where s.n_splits > 0 and (c.episodes <> s.episodes or c.frames <> s.frames)
