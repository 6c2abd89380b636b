"""Inbox and import sessions on a data home in object storage (a moto S3 server on loopback): the
inbox sensor lists the remote inbox, the session is built from the downloaded folder (its fingerprint
the same at each download), an import registered by the job is read back from the remote home, and
the merged dataset holds both, renumbered."""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from sql_fixtures import moto_s3, upload
from test_defs_support import (
    TINY_SIM,
    add_sessions,
    checks,
    dataset_defs,
    failure_messages,
    make_inbox_session,
    materialize_session,
    session_defs,
)

from lerobot_assets.defs.resources import DataHome, SimSourceResource, SqlVarsResource, VideoEncoderResource
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.format.versions import follow_pointer, read_pointer
from lerobot_assets.home.remote import RemoteHome

pytest.importorskip("moto.server")
BUCKET = "lerobot"
HOME = f"s3://{BUCKET}/team-home"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto_s3(BUCKET) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        yield endpoint


def _resources(local: Path) -> dict[str, Any]:
    return {
        "home": DataHome(root=HOME, local_dir=str(local)),
        "encoder": VideoEncoderResource(),
        "sim": SimSourceResource(**TINY_SIM),
        "sql": SqlVarsResource(),
    }


def test_inbox_and_import_sessions_on_s3(s3: str, instance: dg.DagsterInstance, tmp_path: Path) -> None:
    from lerobot_assets.defs.definitions import defs
    from lerobot_assets.defs.ingest.sensors import inbox_sensor

    # A recording uploaded to the remote inbox, as a recorder on another machine would.
    staged = tmp_path / "staged"
    make_inbox_session(staged, "rig1", [3, 2], ["pick"])
    upload(s3, staged / "inbox" / "rig1", f"{BUCKET}/team-home/inbox/rig1")

    sensor = inbox_sensor(dg.build_sensor_context(instance=instance, resources={"home": DataHome(root=HOME)}))
    assert [list(r.partition_keys) for r in sensor.dynamic_partitions_requests] == [["inbox-rig1"]]
    add_sessions(instance, ["inbox-rig1"])

    # Each step runs on its own "machine" (its own local dir): nothing reaches it but through S3.
    first = dg.materialize(session_defs(), partition_key="inbox-rig1", instance=instance, resources=_resources(tmp_path / "m1"), raise_on_error=False)
    assert first.success, failure_messages(first)
    assert checks(first) == {"session_dataset_valid": True}

    # An import of a dataset built elsewhere (on a local home), read from its local path.
    other = tmp_path / "other_home"
    make_inbox_session(other, "x", [4, 2], ["stack"], start=50.0)
    with dg.instance_for_test() as other_instance:
        assert materialize_session(other_instance, other, "inbox-x").success
    source = other / "sessions" / "inbox-x"
    imported = defs.resolve_job_def("register_import_session").execute_in_process(
        instance=instance,
        run_config={
            "ops": {"add_import": {"config": {"name": "tiny", "source": str(source)}}},
            "resources": {"home": {"config": {"root": HOME, "local_dir": str(tmp_path / "m2")}}},
        },
    )
    assert imported.success
    home = RemoteHome(HOME, local_dir=tmp_path / "reader")
    spec = json.loads(home.fs.cat_file(home.remote("imports/tiny.json")))
    assert spec == {"name": "tiny", "source": str(source), "revision": None}
    second = dg.materialize(session_defs(), partition_key="import-tiny", instance=instance, resources=_resources(tmp_path / "m3"), raise_on_error=False)
    assert second.success, failure_messages(second)

    # The raw manifest names its inbox folder relative to the home, so any machine resolves it.
    raw = home.fetch("raw/inbox-rig1")
    assert raw is not None
    assert json.loads((raw.path / "manifest.json").read_text())["source"] == "inbox/rig1"

    merged = dg.materialize(dataset_defs(), instance=instance, resources=_resources(tmp_path / "m4"), raise_on_error=False)
    assert merged.success and all(checks(merged).values()), failure_messages(merged)
    pointer = home.pointer("datasets/lerobot_dataset")
    assert pointer is not None and pointer.version == "v-000002"  # merged, then its stats
    meta = DatasetMeta(home.fs.unstrip_protocol(follow_pointer(home.fs, home.remote("datasets/lerobot_dataset"))), fs=None)
    assert meta.tasks == ["pick", "stack"]
    assert meta.episodes.column("length").to_pylist() == [3, 2, 4, 2]
    assert meta.info.total_frames == 11

    # The session datasets are published versions with a pointer; the inbox is left as uploaded.
    for session in ("inbox-rig1", "import-tiny"):
        assert read_pointer(home.fs, home.remote(f"sessions/{session}")) is not None
    before = sorted(home.fs.find(home.remote("inbox/rig1")))
    assert [os.path.relpath(p, home.remote("inbox/rig1")) for p in before] == sorted(
        p.relative_to(staged / "inbox" / "rig1").as_posix() for p in (staged / "inbox" / "rig1").rglob("*") if p.is_file()
    )

    # Built again on a machine that downloads the inbox folder anew: the fingerprint recorded by
    # raw_episodes still matches (downloaded files keep their objects' modification times).
    again = dg.materialize(session_defs(), partition_key="inbox-rig1", instance=instance, resources=_resources(tmp_path / "m5"), raise_on_error=False)
    assert again.success, failure_messages(again)
    rebuilt = home.fetch("sessions/inbox-rig1")
    assert rebuilt is not None and rebuilt.version == "v-000002"
    state = pq.read_table(rebuilt.path / "data/chunk-000/file-000.parquet").column("observation.state").to_pylist()
    np.testing.assert_allclose([s[0] for s in state], [0, 1, 2, 1000, 1001])


@pytest.mark.slow
def test_demo_on_an_s3_home(s3: str, tmp_path: Path) -> None:
    """`lerobot-assets demo --home s3://...`: the whole graph (sessions, merge, stats, byte index, SQL,
    curation, splits, annotations, training, evaluation) publishes every output as a pointer-published
    version; the Dagster instance lives on local disk."""
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    local = tmp_path / "local"
    env = os.environ | {"SDL_VIDEODRIVER": "dummy", "SVT_LOG": "1", "AWS_ENDPOINT_URL": s3, "LEROBOT_ASSETS_LOCAL": str(local)}
    env.pop("DAGSTER_HOME", None)
    url = f"s3://{BUCKET}/demo"
    args = ["demo", "--home", url, "--sessions", "2", "--episodes", "2", "--max-steps", "10", "--no-top-camera",
            "--train-steps", "5", "--eval-episodes", "1"]
    proc = subprocess.run([str(bin_dir / "lerobot-assets"), *args], env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "lerobot_dataset: rebuild of 2 sessions, 4 episodes, 40 frames" in out
    assert "curated_dataset: kept 4 of 4 episodes" in out and "policy_checkpoint_loads OK" in out
    assert f"dataset:  {url}/datasets/lerobot_dataset" in out

    home = RemoteHome(url, local_dir=tmp_path / "elsewhere")  # a machine that ran none of it
    for rel in ("sessions/sim-s0000-0001", "raw/sim-s0002-0003", "datasets/lerobot_dataset", "datasets/curated_dataset",
                "datasets/splits/train", "datasets/splits/val", "datasets/annotated_dataset",
                "training/policy_checkpoint", "evaluations/policy_eval"):
        assert home.pointer(rel) is not None, rel
    # No version without its info.json is left behind (each is complete, or was collected).
    for rel in ("datasets/lerobot_dataset", "datasets/curated_dataset", "sessions/sim-s0000-0001"):
        for version in home.fs.ls(home.remote(rel)):
            if version.rstrip("/").rsplit("/", 1)[-1].startswith("v-"):
                assert home.fs.isfile(f"{version}/meta/info.json"), version
    merged = home.fetch("datasets/lerobot_dataset")
    assert merged is not None
    meta = DatasetMeta(merged.path)
    assert (meta.info.total_episodes, meta.info.total_frames) == (4, 40)
    assert (merged.path / "meta" / "stats.json").is_file() and (merged.path / "meta" / "byte_index").is_dir()
    # The checkpoint's `last` symlink (an object store has none) comes back from the pointer's links.
    training = home.fetch("training/policy_checkpoint")
    assert training is not None
    run = training.path / os.readlink(training.path / "current")
    assert (run / "checkpoints" / "last").is_symlink() and (run / "checkpoints" / "last" / "pretrained_model" / "model.safetensors").is_file()
    dagster_home = local / next(p.name for p in local.iterdir()) / "dagster"
    assert (dagster_home / "dagster.yaml").is_file()
    # The UI's path metadata names the published version in the bucket, not the step's deleted scratch.
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("lerobot_dataset"))
        assert event is not None and event.asset_materialization is not None
        assert event.asset_materialization.metadata["path"].value == f"{url}/datasets/lerobot_dataset/v-000001"
        stats = instance.get_latest_materialization_event(dg.AssetKey("dataset_stats"))
        assert stats is not None and stats.asset_materialization is not None
        # v-000002 or v-000003: stats and the byte index each publish a version, in either order.
        path = stats.asset_materialization.metadata["path"].value
        assert path in {f"{url}/datasets/lerobot_dataset/v-00000{n}/meta/stats.json" for n in (2, 3)}, path
        assert home.fs.isfile(path), path

    # validate and info take the prefix's URL: the version is downloaded (info: meta/ only) and named.
    cli = [str(bin_dir / "lerobot-assets")]
    checked = subprocess.run([*cli, "validate", f"{url}/datasets/lerobot_dataset"], env=env, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"OK {url}/datasets/lerobot_dataset/v-") and "4 episodes, 40 frames" in checked.stdout
    shown = subprocess.run([*cli, "info", f"{url}/datasets/curated_dataset"], env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert f"dataset:     {url}/datasets/curated_dataset/v-000001" in shown.stdout and "episodes:    4" in shown.stdout
    assert "not probed (remote), 1 file" in shown.stdout
    # A broken remote dataset: the problem is named by its URL, not by a temporary copy.
    broken = home.fetch("datasets/splits/val")
    assert broken is not None
    home.fs.put(str(broken.path) + "/", f"{BUCKET}/broken/", recursive=True)
    home.fs.rm(f"{BUCKET}/broken/data/chunk-000/file-000.parquet")
    bad = subprocess.run([*cli, "validate", f"{url.rsplit('/', 1)[0]}/broken"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "ERROR data/chunk-000/file-000.parquet [episode 0]: data file is missing" in bad.stdout
    assert bad.stderr.startswith(f"INVALID s3://{BUCKET}/broken: ")
    assert "/tmp" not in bad.stdout + bad.stderr

    # A prefix holding something else is refused, untouched.
    home.fs.pipe_file(f"{BUCKET}/precious/thesis.tex", b"...")
    proc = subprocess.run([str(bin_dir / "lerobot-assets"), "demo", "--home", f"s3://{BUCKET}/precious"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "not a lerobot-assets data home" in proc.stdout + proc.stderr
    assert home.fs.find(f"{BUCKET}/precious") == [f"{BUCKET}/precious/thesis.tex"]


def test_a_step_that_loses_a_publication_race_runs_again(s3: str, instance: dg.DagsterInstance, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """dataset_stats reads the merged dataset; before it publishes, another step publishes a new version
    of it. Publishing would drop that step's work, so nothing is published and the step is retried on top
    of the new version: the result holds both."""
    import lerobot_assets.defs.datasets.assets as dataset_assets
    from lerobot_assets.defs.datasets.assets import dataset_stats, lerobot_dataset

    add_sessions(instance, ["sim-s0000-0001"])
    res = _resources(tmp_path / "m1")
    assert dg.materialize(session_defs(), partition_key="sim-s0000-0001", instance=instance, resources=res).success
    assert dg.materialize([lerobot_dataset], instance=instance, resources=res).success
    other = RemoteHome(HOME, local_dir=tmp_path / "other")
    real = dataset_assets.compute_dataset_stats
    calls = []

    def interloper(root: Path) -> Any:
        calls.append(root)
        if len(calls) == 1:  # another step publishes the merged dataset meanwhile
            with other.workspace("interloper") as ws:
                ws.pull("datasets/lerobot_dataset")
                (ws.layout.root / "datasets/lerobot_dataset/meta/note.txt").write_text("another step's output")
                ws.write("datasets/lerobot_dataset")
        return real(root)

    monkeypatch.setattr(dataset_assets, "compute_dataset_stats", interloper)
    result = dg.materialize([dataset_stats], instance=instance, resources=res, raise_on_error=False)
    assert result.success, failure_messages(result)
    assert len(calls) == 2  # the first attempt lost the race and published nothing
    pointer = other.pointer("datasets/lerobot_dataset")
    assert pointer is not None and pointer.version == "v-000003" and pointer.previous == "v-000002"
    final = other.fetch("datasets/lerobot_dataset")
    assert final is not None
    assert (final.path / "meta/note.txt").read_text() == "another step's output"
    assert json.loads((final.path / "meta/stats.json").read_text())["action"]["count"] == [DatasetMeta(final.path).info.total_frames]
