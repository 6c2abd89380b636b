{{ config(severity='error') }}
-- A video camera with episodes has MP4 files on disk.
select dataset, video_key, episodes, video_files
from {{ ref('camera_summary') }}
where dtype = 'video' and episodes > 0 and video_files = 0
