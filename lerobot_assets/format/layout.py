"""Path templates and chunk/file numbering of the LeRobot v3.0 layout."""

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
# Our sidecar (LeRobot ignores it): per-episode 256-level pixel histograms per camera, so image
# quantiles aggregate exactly across episodes, merges and subsets.
IMAGE_HIST_PATH = "meta/image_histograms/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
# Scratch space of the writer inside the root; never holds committed data.
STAGING_DIR = ".staging"
# The writer's redo journal (recording/commit.py): present exactly while a commit is being
# published, so a reader seeing it knows the files on disk may mix two versions.
COMMIT_JOURNAL_PATH = f"{STAGING_DIR}/commit.json"
# Names of the temp siblings atomic writes publish from (`format.atomic.temp_sibling`:
# `.<name>.<random>.tmp<suffix>`); never part of a committed version.
WRITER_TEMP_GLOB = ".*.tmp*"

INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def data_path(chunk_index: int, file_index: int) -> str:
    return DATA_PATH.format(chunk_index=chunk_index, file_index=file_index)


def video_path(video_key: str, chunk_index: int, file_index: int) -> str:
    return VIDEO_PATH.format(video_key=video_key, chunk_index=chunk_index, file_index=file_index)


def episodes_path(chunk_index: int, file_index: int) -> str:
    return EPISODES_PATH.format(chunk_index=chunk_index, file_index=file_index)


def image_hist_path(chunk_index: int, file_index: int) -> str:
    return IMAGE_HIST_PATH.format(chunk_index=chunk_index, file_index=file_index)


def next_chunk_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    """The (chunk, file) after this one: a chunk directory holds at most `chunks_size` files."""
    if file_index >= chunks_size - 1:
        return chunk_index + 1, 0
    return chunk_index, file_index + 1
