"""The inbox sensor: discovers a complete session once, ignores incomplete ones, survives malformed ones."""

import os
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from test_defs_support import (
    failure_messages,
    make_inbox_session,
    materialize_session,
    metadata,
    tree,
)

from lerobot_assets.defs.ingest.sensors import inbox_sensor, registered_sessions_sensor
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.sources.inbox import COMPLETE_MARKER


def _tick(instance: dg.DagsterInstance, home: Path, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"home": DataHome(root=str(home))})
    return inbox_sensor(context)


def _apply(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    """What the daemon does with a sensor result's partition requests."""
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_discovers_complete_session_once(instance: dg.DagsterInstance, home: Path) -> None:
    assert _tick(instance, home, None).run_requests == []  # no inbox yet: nothing, no error
    make_inbox_session(home, "a", [3])
    make_inbox_session(home, "b", [2], complete=False)  # still being recorded
    first = _tick(instance, home, None)
    assert [r.partition_key for r in first.run_requests] == ["inbox-a"]
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [["inbox-a"]]
    assert first.run_requests[0].run_key.startswith("inbox-a@")
    _apply(instance, first)

    second = _tick(instance, home, first.cursor)
    assert second.run_requests == [] and second.dynamic_partitions_requests == []
    assert second.cursor == first.cursor

    (home / "inbox" / "b" / COMPLETE_MARKER).write_text("")  # recording of b finished
    third = _tick(instance, home, second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["inbox-b"]
    assert [list(r.partition_keys) for r in third.dynamic_partitions_requests] == [["inbox-b"]]
    _apply(instance, third)
    assert list(instance.get_dynamic_partitions("sessions")) == ["inbox-a", "inbox-b"]

    # A re-delivered session (marker rewritten) is requested again, without a second partition.
    marker = home / "inbox" / "a" / COMPLETE_MARKER
    st = marker.stat()
    os.utime(marker, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    fourth = _tick(instance, home, third.cursor)
    assert [r.partition_key for r in fourth.run_requests] == ["inbox-a"]
    assert fourth.run_requests[0].run_key != first.run_requests[0].run_key
    assert fourth.dynamic_partitions_requests == []


def test_folder_that_cannot_name_a_session_is_skipped(instance: dg.DagsterInstance, home: Path) -> None:
    make_inbox_session(home, "bad name!", [2])
    make_inbox_session(home, "ok", [2])
    result = _tick(instance, home, None)
    assert [r.partition_key for r in result.run_requests] == ["inbox-ok"]
    assert _tick(instance, home, result.cursor).run_requests == []


def test_malformed_session_fails_its_own_run(instance: dg.DagsterInstance, home: Path) -> None:
    make_inbox_session(home, "good", [3, 2])
    bad = make_inbox_session(home, "broken", [5])
    frames = bad / "episode_000000" / "frames.parquet"
    table = pq.read_table(frames)
    ts = np.arange(5) / 10
    ts[3] = 0.45  # row 3 is half a frame late
    pq.write_table(table.set_column(0, "timestamp", pa.array(ts)), frames)
    before = tree(home / "inbox")

    result = _tick(instance, home, None)
    assert sorted(r.partition_key for r in result.run_requests) == ["inbox-broken", "inbox-good"]
    _apply(instance, result)
    runs = {r.partition_key: materialize_session(instance, home, r.partition_key) for r in result.run_requests}

    assert not runs["inbox-broken"].success
    message = "\n".join(failure_messages(runs["inbox-broken"]))
    assert f"{frames}: row 3: timestamp 0.45 s, expected 0.3 s" in message
    assert runs["inbox-good"].success
    assert metadata(runs["inbox-good"], "session_dataset")["episodes"] == 2
    assert tree(home / "inbox") == before  # nothing in the inbox is deleted or changed
    # The sensor keeps going: the malformed session is not requested again, a new one is.
    make_inbox_session(home, "later", [2])
    later = _tick(instance, home, result.cursor)
    assert [r.partition_key for r in later.run_requests] == ["inbox-later"]


def test_sensor_lists_a_remote_inbox(instance: dg.DagsterInstance) -> None:
    """The home is resolved through fsspec: the sensor lists an object store the same way (memory://
    here); writing datasets needs a local home, and says so."""
    import fsspec
    import pytest

    fs = fsspec.filesystem("memory")
    fs.pipe("/remote-home/inbox/s1/session.json", b"{}")
    fs.pipe("/remote-home/inbox/s1/_COMPLETE", b"")
    fs.pipe("/remote-home/inbox/s2/session.json", b"{}")  # incomplete
    try:
        context = dg.build_sensor_context(instance=instance, resources={"home": DataHome(root="memory://remote-home")})
        result = inbox_sensor(context)
        assert [r.partition_key for r in result.run_requests] == ["inbox-s1"]
        assert not DataHome(root="memory://remote-home").is_local()
        with pytest.raises(NotImplementedError, match="local filesystem"):
            DataHome(root="memory://remote-home").layout()
    finally:
        fs.rm("/remote-home", recursive=True)


def test_registered_sessions_sensor(instance: dg.DagsterInstance, home: Path) -> None:
    instance.add_dynamic_partitions("sessions", ["sim-s0000-0001", "inbox-x", "import-y"])
    first = registered_sessions_sensor(dg.build_sensor_context(instance=instance))
    assert [r.partition_key for r in first.run_requests] == ["sim-s0000-0001", "import-y"]  # inbox: its own sensor
    again = registered_sessions_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert again.run_requests == []
    instance.add_dynamic_partitions("sessions", ["sim-s0002-0003"])
    third = registered_sessions_sensor(dg.build_sensor_context(instance=instance, cursor=again.cursor))
    assert [r.partition_key for r in third.run_requests] == ["sim-s0002-0003"]
