"""inbox_sensor watches `<home>/inbox/` for complete recording sessions.

A folder whose `_COMPLETE` marker appeared becomes the partition `inbox-<folder>`; the sessions'
automation conditions (on_missing) then build it, like every other newly registered session (sim,
import). A marker that changed for a session already registered (a re-delivery) requests a
session_job run for it. The cursor maps folder -> marker token (mtime), so each delivery counts once;
folders without the marker are left for a later tick. The sensor never parses a session: a malformed
one fails its own run (with the file and row), and the sensor and the other sessions go on.
"""

import json
from typing import Any

import dagster as dg

from lerobot_assets.defs.ingest.jobs import session_job
from lerobot_assets.defs.ingest.partitions import SESSIONS, sessions_partitions
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.home import inbox_session_key
from lerobot_assets.sources.inbox import COMPLETE_MARKER


def scan_inbox(home: DataHome) -> dict[str, str]:
    """{folder: marker token} of every inbox folder holding a `_COMPLETE` marker (any fsspec home).

    Lists the inbox and looks for each marker by its exact path: the home's path is never read as a
    glob pattern (a home named `data[1]` would match other folders)."""
    fs, root = home.filesystem()
    inbox = f"{root.rstrip('/')}/inbox"
    if not fs.isdir(inbox):
        return {}
    found: dict[str, str] = {}
    for entry in fs.ls(inbox, detail=True):
        if entry.get("type") != "directory":
            continue
        folder = entry["name"].rstrip("/").split("/")[-1]
        marker = f"{inbox}/{folder}/{COMPLETE_MARKER}"
        try:
            info: dict[str, Any] = fs.info(marker)
        except FileNotFoundError:
            continue
        # Local files have an mtime; object stores a LastModified or an ETag.
        token = info.get("mtime") or info.get("LastModified") or info.get("ETag") or info.get("created") or ""
        found[folder] = str(token)
    return found


@dg.sensor(
    job=session_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Adds a partition for each complete inbox session (marker _COMPLETE), which automation then builds; "
        "requests a session_job run when a registered session is delivered again."
    ),
)
def inbox_sensor(context: dg.SensorEvaluationContext, home: DataHome) -> dg.SensorResult:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    found = scan_inbox(home)
    new_keys: list[str] = []
    requests: list[dg.RunRequest] = []
    # Read once: one query per folder costs a connection each on PostgreSQL (~40 ms a folder).
    registered = set(context.instance.get_dynamic_partitions(SESSIONS))
    for folder, token in sorted(found.items()):
        if seen.get(folder) == token:
            continue
        seen[folder] = token
        try:
            key = inbox_session_key(folder)
        except ValueError as e:
            context.log.warning(f"ignoring inbox folder {folder!r}: {e}")
            continue
        if key in registered:
            requests.append(
                dg.RunRequest(run_key=f"{key}@{token}", partition_key=key, tags={"lerobot_assets/source": "inbox"})
            )
        elif key not in new_keys:
            new_keys.append(key)
    cursor = json.dumps(seen, sort_keys=True)
    if not requests and not new_keys:
        return dg.SensorResult(skip_reason=f"no new complete session among {len(found)} in the inbox", cursor=cursor)
    if new_keys:
        context.log.info(f"new complete inbox sessions (automation builds them): {new_keys}")
    if requests:
        context.log.info(f"inbox sessions delivered again: {[r.partition_key for r in requests]}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[sessions_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor,
    )


ingest_sensors = [inbox_sensor]
