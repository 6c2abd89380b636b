"""Ingest checks: each session's dataset passes the validator and holds exactly its raw episodes.

Blocking: a failure stops downstream assets in the same run and fails `dagster asset materialize`.
"""

import warnings
from typing import Any

import dagster as dg

from lerobot_assets.defs.checks_common import validation_result
from lerobot_assets.defs.ingest.assets import SESSION_CHECK, SESSION_DATASET
from lerobot_assets.defs.ingest.partitions import sessions_partitions
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.home.validation import validate_session


def _session_dataset_valid(context: dg.AssetCheckExecutionContext, home: DataHome) -> dg.AssetCheckResult:
    session = context.partition_key
    with home.workspace(f"session_check-{session}") as ws:
        ws.pull(f"sessions/{session}")
        ws.pull(f"raw/{session}")
        result = validate_session(ws.layout, session)
        ws.write(f"checks/{session}.json")
    expected: dict[str, Any] = {}
    if result.expected_episodes is not None and result.expected_frames is not None:
        expected = {
            "expected_episodes": dg.MetadataValue.int(result.expected_episodes),
            "expected_frames": dg.MetadataValue.int(result.expected_frames),
        }
    return validation_result(result.report, result.problems, expected)


# Partitioned like its asset, so each session's result is recorded (and shown) per session; that
# is a Dagster "preview" feature in 1.13, whose warning says nothing actionable here.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*")
    session_dataset_valid = dg.asset_check(
        asset=SESSION_DATASET,
        name=SESSION_CHECK,
        blocking=True,
        partitions_def=sessions_partitions,
        description="The session's v3 dataset passes the library validator and holds exactly its raw episodes and frames.",
    )(_session_dataset_valid)


session_checks = [session_dataset_valid]
