{{ config(severity='error') }}
-- Each (dataset, episode_index) appears once.
select dataset, episode_index, count(*) as copies
from {{ ref('stg_episodes') }}
group by dataset, episode_index
having count(*) > 1
