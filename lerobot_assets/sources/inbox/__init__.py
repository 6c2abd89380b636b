"""The raw recording format of the inbox (`lerobot-assets/raw-v1`): validation, reading, writing.

A session is a folder holding `session.json`, one `episode_<n>/` folder per episode (a
`frames.parquet` plus, per camera, an MP4 or a folder of PNG frames) and, written last, the
`_COMPLETE` marker. docs/raw-format.md is the specification; this package is its reference
implementation. Pure library: no Dagster import.

- `spec`: the format's file names and the schema of `session.json`
- `errors`: `RawProblem` / `RawFormatError`, naming the file and the row
- `session`: the validated session (`RawSession`) and facts about its folder (fingerprint, size)
- `validate`: `validate_session` / `read_session`
- `read`: an episode's frames, decoded, as a dataset writer takes them; `preview_frame`
- `write`: `RawSessionWriter` and `write_session`

Every problem names the file and, where it applies, the row (0-based frame number in the episode's
`frames.parquet`), so a user can fix the recording without reading this code.
"""

from lerobot_assets.sources.inbox.errors import RawFormatError, RawProblem
from lerobot_assets.sources.inbox.read import iter_episode_frames, preview_frame
from lerobot_assets.sources.inbox.session import (
    RawCamera,
    RawEpisode,
    RawSession,
    episode_dirs,
    is_complete,
    session_bytes,
    session_fingerprint,
)
from lerobot_assets.sources.inbox.spec import (
    COMPLETE_MARKER,
    EPISODE_PREFIX,
    FORMAT,
    FRAMES_FILE,
    SESSION_FILE,
    CameraSpec,
    NumericFeatureSpec,
    SessionSpec,
)
from lerobot_assets.sources.inbox.validate import read_session, read_spec, validate_session
from lerobot_assets.sources.inbox.write import PNG_COMPRESS_LEVEL, RawSessionWriter, png_bytes, write_session

__all__ = [
    "COMPLETE_MARKER",
    "EPISODE_PREFIX",
    "FORMAT",
    "FRAMES_FILE",
    "PNG_COMPRESS_LEVEL",
    "SESSION_FILE",
    "CameraSpec",
    "NumericFeatureSpec",
    "RawCamera",
    "RawEpisode",
    "RawFormatError",
    "RawProblem",
    "RawSession",
    "RawSessionWriter",
    "SessionSpec",
    "episode_dirs",
    "is_complete",
    "iter_episode_frames",
    "png_bytes",
    "preview_frame",
    "read_session",
    "read_spec",
    "session_bytes",
    "session_fingerprint",
    "validate_session",
    "write_session",
]
