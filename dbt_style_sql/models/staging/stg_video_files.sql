{{ config(materialized='view') }}
-- One row per MP4 file, with camera, chunk and file index parsed from its path.
select
    dataset,
    regexp_extract(relative_path, '^videos/(.+)/chunk-[0-9]+/file-[0-9]+\.mp4$', 1) as video_key,
    cast(regexp_extract(relative_path, '/chunk-([0-9]+)/file-[0-9]+\.mp4$', 1) as bigint) as chunk_index,
    cast(regexp_extract(relative_path, '/file-([0-9]+)\.mp4$', 1) as bigint) as file_index,
    bytes,
    path
from {{ source('lerobot', 'video_files') }}
