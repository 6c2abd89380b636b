"""The inbox sensor discovers a complete session once (its partition; automation builds it), ignores
incomplete ones, re-requests re-delivered ones, survives malformed ones; new sessions are built by
their automation conditions."""

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

from lerobot_assets.defs.ingest.sensors import inbox_sensor
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
    assert first.run_requests == []  # a new session is built by its automation condition
    assert [list(r.partition_keys) for r in first.dynamic_partitions_requests] == [["inbox-a"]]
    _apply(instance, first)

    second = _tick(instance, home, first.cursor)
    assert second.run_requests == [] and second.dynamic_partitions_requests == []
    assert second.cursor == first.cursor

    (home / "inbox" / "b" / COMPLETE_MARKER).write_text("")  # recording of b finished
    third = _tick(instance, home, second.cursor)
    assert third.run_requests == []
    assert [list(r.partition_keys) for r in third.dynamic_partitions_requests] == [["inbox-b"]]
    _apply(instance, third)
    assert list(instance.get_dynamic_partitions("sessions")) == ["inbox-a", "inbox-b"]

    # A re-delivered session (marker rewritten) is requested again, without a second partition.
    marker = home / "inbox" / "a" / COMPLETE_MARKER
    st = marker.stat()
    os.utime(marker, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    fourth = _tick(instance, home, third.cursor)
    assert [r.partition_key for r in fourth.run_requests] == ["inbox-a"]
    assert fourth.run_requests[0].run_key.startswith("inbox-a@")
    assert fourth.dynamic_partitions_requests == []
    fifth = _tick(instance, home, fourth.cursor)
    assert fifth.run_requests == [] and fifth.dynamic_partitions_requests == []


def test_folder_that_cannot_name_a_session_is_skipped(instance: dg.DagsterInstance, home: Path) -> None:
    make_inbox_session(home, "bad name!", [2])
    make_inbox_session(home, "ok", [2])
    result = _tick(instance, home, None)
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["inbox-ok"]]
    again = _tick(instance, home, result.cursor)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []


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
    [added] = result.dynamic_partitions_requests
    assert sorted(added.partition_keys) == ["inbox-broken", "inbox-good"]
    _apply(instance, result)
    runs = {key: materialize_session(instance, home, key) for key in added.partition_keys}

    assert not runs["inbox-broken"].success
    message = "\n".join(failure_messages(runs["inbox-broken"]))
    assert f"{frames}: row 3: timestamp 0.45 s, expected 0.3 s" in message
    assert runs["inbox-good"].success
    assert metadata(runs["inbox-good"], "session_dataset")["episodes"] == 2
    assert tree(home / "inbox") == before  # nothing in the inbox is deleted or changed
    # The sensor keeps going: the malformed session is not requested again, a new one is.
    make_inbox_session(home, "later", [2])
    later = _tick(instance, home, result.cursor)
    assert [list(r.partition_keys) for r in later.dynamic_partitions_requests] == [["inbox-later"]]


def test_sensor_lists_a_remote_inbox(instance: dg.DagsterInstance) -> None:
    """The home is resolved through fsspec: the sensor lists an object store the same way (memory://
    here); steps read and write a remote home through workspaces, never through layout()."""
    import fsspec
    import pytest

    fs = fsspec.filesystem("memory")
    fs.pipe("/remote-home/inbox/s1/session.json", b"{}")
    fs.pipe("/remote-home/inbox/s1/_COMPLETE", b"")
    fs.pipe("/remote-home/inbox/s2/session.json", b"{}")  # incomplete
    try:
        context = dg.build_sensor_context(instance=instance, resources={"home": DataHome(root="memory://remote-home")})
        result = inbox_sensor(context)
        assert [list(r.partition_keys) for r in result.dynamic_partitions_requests] == [["inbox-s1"]]
        assert not DataHome(root="memory://remote-home").is_local()
        with pytest.raises(ValueError, match="is remote: use DataHome.workspace"):
            DataHome(root="memory://remote-home").layout()
    finally:
        fs.rm("/remote-home", recursive=True)


def test_new_sessions_are_built_by_automation(instance: dg.DagsterInstance) -> None:
    """Any newly registered session (sim, import, inbox) is requested once by its automation condition:
    raw episodes and the session build together; nothing downstream until sessions exist."""
    from definitions import defs

    session_keys = [dg.AssetKey("raw_episodes"), dg.AssetKey("session_dataset"), dg.AssetKey("session_videos")]
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.total_requested == 0
    instance.add_dynamic_partitions("sessions", ["sim-s0000-0001", "inbox-x", "import-y"])
    second = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    for key in session_keys:
        assert second.get_requested_partitions(key) == {"sim-s0000-0001", "inbox-x", "import-y"}
    assert second.total_requested == 9  # nothing else: the merge waits for built sessions
    third = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=second.cursor)
    assert third.total_requested == 0  # requested once, not on every tick
    instance.add_dynamic_partitions("sessions", ["sim-s0002-0003"])
    fourth = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=third.cursor)
    assert {k.to_user_string(): fourth.get_requested_partitions(k) for k in session_keys} == {
        k.to_user_string(): {"sim-s0002-0003"} for k in session_keys
    }
