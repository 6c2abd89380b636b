"""Sensors that turn new sessions into runs.

- inbox_sensor watches `<home>/inbox/`: a folder whose `_COMPLETE` marker appeared (or changed)
  becomes the partition `inbox-<folder>` and a session_job run. The cursor maps folder -> marker
  token (mtime), so each complete session is requested once; folders without the marker are left
  for a later tick. The sensor never parses a session: a malformed one fails its own run (with the
  file and row), and the sensor and the other sessions go on.
- registered_sessions_sensor requests a session_job run for each sim or import session registered
  (by the register jobs) and never materialized; its cursor lists the sessions already requested.
"""

import json
from typing import Any

import dagster as dg

from lerobot_assets.defs.ingest.assets import SESSION_DATASET
from lerobot_assets.defs.ingest.jobs import session_job
from lerobot_assets.defs.ingest.partitions import SESSIONS, sessions_partitions
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.home import inbox_session_key
from lerobot_assets.sources.inbox import COMPLETE_MARKER


def scan_inbox(home: DataHome) -> dict[str, str]:
    """{folder: marker token} of every inbox folder holding a `_COMPLETE` marker (any fsspec home)."""
    fs, root = home.filesystem()
    inbox = f"{root.rstrip('/')}/inbox"
    if not fs.exists(inbox):
        return {}
    found: dict[str, str] = {}
    for marker in fs.glob(f"{inbox}/*/{COMPLETE_MARKER}"):
        folder = marker.rstrip("/").split("/")[-2]
        info: dict[str, Any] = fs.info(marker)
        # Local files have an mtime; object stores a LastModified or an ETag.
        token = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("created") or ""
        found[folder] = str(token)
    return found


@dg.sensor(
    job=session_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition and requests a session_job run for each complete inbox session (marker _COMPLETE).",
)
def inbox_sensor(context: dg.SensorEvaluationContext, home: DataHome) -> dg.SensorResult:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    found = scan_inbox(home)
    new_keys: list[str] = []
    requests: list[dg.RunRequest] = []
    for folder, token in sorted(found.items()):
        if seen.get(folder) == token:
            continue
        seen[folder] = token
        try:
            key = inbox_session_key(folder)
        except ValueError as e:
            context.log.warning(f"ignoring inbox folder {folder!r}: {e}")
            continue
        if key not in new_keys and not context.instance.has_dynamic_partition(SESSIONS, key):
            new_keys.append(key)
        requests.append(
            dg.RunRequest(run_key=f"{key}@{token}", partition_key=key, tags={"lerobot_assets/source": "inbox"})
        )
    cursor = json.dumps(seen, sort_keys=True)
    if not requests:
        return dg.SensorResult(skip_reason=f"no new complete session among {len(found)} in the inbox", cursor=cursor)
    context.log.info(f"new complete inbox sessions: {[r.partition_key for r in requests]}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[sessions_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor,
    )


@dg.sensor(
    job=session_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a session_job run for each registered sim/import session that was never materialized.",
)
def registered_sessions_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    keys = list(context.instance.get_dynamic_partitions(SESSIONS))
    requested = set(json.loads(context.cursor)) if context.cursor else set()
    requested &= set(keys)  # forget removed sessions: the cursor stays as small as the partition set
    materialized = context.instance.get_materialized_partitions(SESSION_DATASET)
    todo = [k for k in keys if k not in requested and k not in materialized and k.startswith(("sim-", "import-"))]
    requested |= set(todo)
    cursor = json.dumps(sorted(requested))
    if not todo:
        return dg.SensorResult(skip_reason="no registered session waiting", cursor=cursor)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=k, partition_key=k, tags={"lerobot_assets/source": "registered"}) for k in todo],
        cursor=cursor,
    )


ingest_sensors = [inbox_sensor, registered_sessions_sensor]
