"""The data home and its recording sessions: where the home is and how it is laid out (`layout`),
session names (`keys`), a session's raw episodes (`raw`) and its v3 dataset (`build`).

The layer both the CLI and the Dagster layer call; it sits on top of the sources, the writer and the
tools. Pure library: no Dagster import.
"""

from lerobot_assets.home.build import SessionBuild, build_session_dataset
from lerobot_assets.home.keys import (
    SessionKey,
    import_session_key,
    inbox_session_key,
    next_free_seed,
    overlapping_sim_sessions,
    parse_session_key,
    sim_session_key,
    sim_session_keys,
)
from lerobot_assets.home.layout import DEFAULT_HOME, HOME_ENV, MERGED_DATASET, HomeLayout, default_home
from lerobot_assets.home.raw import RawSummary, normalize_session, raw_preview, read_raw_summary

__all__ = [
    "DEFAULT_HOME",
    "HOME_ENV",
    "MERGED_DATASET",
    "HomeLayout",
    "RawSummary",
    "SessionBuild",
    "SessionKey",
    "build_session_dataset",
    "default_home",
    "import_session_key",
    "inbox_session_key",
    "next_free_seed",
    "normalize_session",
    "overlapping_sim_sessions",
    "parse_session_key",
    "raw_preview",
    "read_raw_summary",
    "sim_session_key",
    "sim_session_keys",
]
