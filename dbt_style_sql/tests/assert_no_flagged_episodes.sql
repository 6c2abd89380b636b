{{ config(severity='warn') }}
-- Episodes with any quality flag. A warning, not a failure: curation decides what to drop.
select *
from {{ ref('episode_quality') }}
where n_flags > 0
