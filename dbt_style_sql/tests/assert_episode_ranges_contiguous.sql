{{ config(severity='error') }}
-- Episodes tile the global frame index: each starts where the previous one ended and spans `length` frames.
with ordered as (
    select
        dataset,
        episode_index,
        length,
        dataset_from_index,
        dataset_to_index,
        coalesce(lag(dataset_to_index) over (partition by dataset order by episode_index), 0) as expected_from_index
    from {{ ref('stg_episodes') }}
)
select *
from ordered
where dataset_from_index <> expected_from_index
   or dataset_to_index - dataset_from_index <> length
