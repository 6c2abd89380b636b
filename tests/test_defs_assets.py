"""In-process materializations of the asset graph: each source, the merge, append vs rebuild."""

import hashlib
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_defs_support import (
    CAM,
    FIXTURE,
    add_sessions,
    check_metadata,
    checks,
    make_inbox_session,
    materialize_dataset,
    materialize_session,
    metadata,
    read_json,
    tree,
)

from lerobot_assets.format import DatasetMeta
from lerobot_assets.home import HomeLayout
from lerobot_assets.sources.lerobot_import import ImportSpec, hub_repo, register_import, resolve_dataset


def test_sim_session(instance: dg.DagsterInstance, home: Path) -> None:
    result = materialize_session(instance, home, "sim-s0000-0001")
    assert result.success
    assert checks(result) == {"session_dataset_valid": True}
    raw = metadata(result, "raw_episodes")
    built = metadata(result, "session_dataset")
    layout = HomeLayout(home)
    assert raw["episodes"] == 2 and raw["kind"] == "sim"
    assert raw["details"]["seeds"] == [0, 1] and raw["details"]["max_steps"] == 12
    # max_steps=12 and no success that early: every episode runs 12 steps.
    assert raw["frames"] == built["frames"] == 24 == built["dagster/row_count"]
    assert raw["duration_s"] == pytest.approx(2.4)
    assert (layout.raw("sim-s0000-0001") / "episode_000001" / "observation.image" / "000011.png").is_file()
    meta = DatasetMeta(layout.session("sim-s0000-0001"))
    assert meta.info.total_episodes == 2 and meta.info.robot_type == "pusht"
    assert meta.video_keys == ["observation.image"]
    assert built["codec"] == "observation.image: av1 32x32 yuv420p"
    assert built["bytes"] > 0 and built["dropped_frames"] == 0
    assert "data:image/png;base64," in built["preview"] and Path(built["preview_path"]).is_file()
    assert "| `observation.state` |" in built["stats"]
    assert check_metadata(result, "session_dataset_valid")["errors"] == 0
    # The encoded videos, from the same build: per camera codec, size, files, bytes and duration.
    videos = metadata(result, "session_videos")
    files = sorted(layout.session("sim-s0000-0001").glob("videos/observation.image/*/*.mp4"))
    assert videos["video_files"] == len(files) == 1
    assert videos["bytes"] == sum(p.stat().st_size for p in files)
    assert videos["codec"] == {"observation.image": "av1"}
    assert videos["duration_s"] == pytest.approx(2.4)  # 2 episodes x 12 frames at 10 fps
    assert f"| `observation.image` | av1 | 32x32 | yuv420p | 1 | {videos['bytes']:,} | 2.40 |" in videos["cameras"]
    assert "data:image/png;base64," in videos["preview"]
    assert (layout.previews / "session_videos" / "sim-s0000-0001" / "observation.image.png").is_file()


def _data(root: Path) -> dict[str, np.ndarray]:
    t = pa.concat_tables([pq.read_table(p) for p in sorted(root.glob("data/*/*.parquet"))])
    return {
        "episode_index": t.column("episode_index").to_numpy(),
        "index": t.column("index").to_numpy(),
        "task_index": t.column("task_index").to_numpy(),
        "frame_index": t.column("frame_index").to_numpy(),
        "state0": np.array([v[0] for v in t.column("observation.state").to_pylist()]),
    }


def test_inbox_sessions_merge_renumbers(instance: dg.DagsterInstance, home: Path) -> None:
    make_inbox_session(home, "a", [5, 7], ["pick", "place"])
    make_inbox_session(home, "b", [4, 6, 3], ["place", "stack"], camera_format="mp4", start=50.0)
    before = tree(home / "inbox")
    for key in ("inbox-a", "inbox-b"):
        result = materialize_session(instance, home, key)
        assert result.success and checks(result) == {"session_dataset_valid": True}
    assert metadata(result, "raw_episodes")["cameras"] == {CAM: "mp4"}
    merged = materialize_dataset(instance, home)
    assert merged.success
    assert checks(merged) == {"lerobot_dataset_valid": True, "lerobot_dataset_totals": True, "dataset_stats_sane": True}
    md = metadata(merged, "lerobot_dataset")
    assert (md["mode"], md["sessions"], md["episodes"], md["frames"]) == ("rebuild", 2, 5, 25)
    assert md["session_names"] == ["inbox-a", "inbox-b"] and md["skipped_sessions"] == {}
    root = HomeLayout(home).dataset()
    meta = DatasetMeta(root)
    assert meta.tasks == ["pick", "place", "stack"]
    assert meta.episodes.column("episode_index").to_pylist() == [0, 1, 2, 3, 4]
    assert meta.episodes.column("length").to_pylist() == [5, 7, 4, 6, 3]
    assert meta.episodes.column("dataset_from_index").to_pylist() == [0, 5, 12, 16, 22]
    data = _data(root)
    np.testing.assert_array_equal(data["index"], np.arange(25))
    np.testing.assert_array_equal(data["episode_index"], np.repeat(np.arange(5), [5, 7, 4, 6, 3]))
    # Session b's "place" (its task 0) is task 1 here and its "stack" (its task 1) is task 2.
    np.testing.assert_array_equal(data["task_index"], np.repeat([0, 1, 1, 2, 1], [5, 7, 4, 6, 3]))
    # Values are copied exactly: episode 3 is b's second episode, state[0] = 50 + 1000 + t.
    np.testing.assert_array_equal(data["state0"][data["episode_index"] == 3], 1050.0 + np.arange(6))
    stats = metadata(merged, "dataset_stats")
    assert (stats["episodes"], stats["frames"]) == (5, 25) and "`observation.state`" in stats["stats"]
    assert read_json(root / "meta" / "stats.json")["observation.state"]["count"] == [25]
    assert tree(home / "inbox") == before  # nothing in the inbox was touched


def test_append_then_rebuild(instance: dg.DagsterInstance, home: Path) -> None:
    make_inbox_session(home, "a", [3, 4])
    make_inbox_session(home, "b", [5])
    for key in ("inbox-a", "inbox-b"):
        assert materialize_session(instance, home, key).success
    first = metadata(materialize_dataset(instance, home), "lerobot_dataset")
    assert (first["mode"], first["episodes"], first["frames"]) == ("rebuild", 3, 12)

    again = metadata(materialize_dataset(instance, home), "lerobot_dataset")
    assert (again["mode"], again["sessions_added"]) == ("unchanged", [])

    make_inbox_session(home, "c", [2, 2], ["other task"])
    assert materialize_session(instance, home, "inbox-c").success
    appended = materialize_dataset(instance, home)
    md = metadata(appended, "lerobot_dataset")
    assert (md["mode"], md["sessions_added"], md["episodes"], md["frames"]) == ("append", ["inbox-c"], 5, 16)
    assert checks(appended) == {"lerobot_dataset_valid": True, "lerobot_dataset_totals": True, "dataset_stats_sane": True}

    # Session b is recorded again (6 + 1 frames instead of 5) and re-materialized: rebuild.
    shutil.rmtree(home / "inbox" / "b")
    make_inbox_session(home, "b", [6, 1])
    assert materialize_session(instance, home, "inbox-b").success
    rebuilt = materialize_dataset(instance, home)
    md = metadata(rebuilt, "lerobot_dataset")
    assert (md["mode"], md["episodes"], md["frames"]) == ("rebuild", 6, 18)
    assert rebuilt.success and all(checks(rebuilt).values())
    meta = DatasetMeta(HomeLayout(home).dataset())
    assert meta.episodes.column("length").to_pylist() == [3, 4, 6, 1, 2, 2]  # a, b, c: registration order
    assert meta.tasks == ["pick the cube", "other task"]
    np.testing.assert_array_equal(_data(HomeLayout(home).dataset())["index"], np.arange(18))


def test_failed_session_is_not_merged(instance: dg.DagsterInstance, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lerobot_assets.defs.ingest.assets as assets_module

    make_inbox_session(home, "good", [3])
    make_inbox_session(home, "bad", [4])
    assert materialize_session(instance, home, "inbox-good").success
    real = assets_module.build_session_dataset

    def corrupt(summary, output, **kw):  # type: ignore[no-untyped-def]
        build = real(summary, output, **kw)
        next((output / "videos").rglob("*.mp4")).unlink()
        return build

    monkeypatch.setattr(assets_module, "build_session_dataset", corrupt)
    bad = materialize_session(instance, home, "inbox-bad")
    assert not bad.success and checks(bad) == {"session_dataset_valid": False}
    monkeypatch.undo()
    add_sessions(instance, ["inbox-never"])  # registered, never materialized
    merged = materialize_dataset(instance, home)
    md = metadata(merged, "lerobot_dataset")
    assert merged.success and md["session_names"] == ["inbox-good"] and md["frames"] == 3
    assert md["skipped_sessions"] == {
        "inbox-bad": "its latest session_dataset_valid check failed",
        "inbox-never": "not materialized yet",
    }
    # Fixed by a new materialization: the session is merged again.
    assert materialize_session(instance, home, "inbox-bad").success
    md = metadata(materialize_dataset(instance, home), "lerobot_dataset")
    assert (md["session_names"], md["mode"], md["frames"]) == (["inbox-good", "inbox-bad"], "append", 7)


def _hash_tree(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_import_local_dataset(instance: dg.DagsterInstance, home: Path) -> None:
    before = _hash_tree(FIXTURE)
    register_import(HomeLayout(home).imports, ImportSpec(name="tiny", source=str(FIXTURE)))
    result = materialize_session(instance, home, "import-tiny")
    assert result.success and checks(result) == {"session_dataset_valid": True}
    raw = metadata(result, "raw_episodes")
    assert (raw["kind"], raw["format"], raw["episodes"], raw["frames"]) == ("import", "lerobot-v3", 3, 60)
    assert raw["tasks"] == ["pick the cube", "place the cube"]
    session_root = HomeLayout(home).session("import-tiny")
    meta = DatasetMeta(session_root)
    assert (meta.info.total_episodes, meta.info.total_frames, meta.info.robot_type) == (3, 60, "so100")
    # Stream copy, not a re-encode: the video bytes are the fixture's.
    for key in meta.video_keys:
        rel = f"videos/{key}/chunk-000/file-000.mp4"
        assert (session_root / rel).read_bytes() == (FIXTURE / rel).read_bytes()
    merged = materialize_dataset(instance, home)
    assert merged.success and metadata(merged, "lerobot_dataset")["episodes"] == 3
    assert _hash_tree(FIXTURE) == before  # the source dataset is never modified


def test_import_lerobot_v21_dataset(instance: dg.DagsterInstance, home: Path) -> None:
    """A v2.1 root imports through tools.convert_v21: converted beside the downloads, never in place,
    its videos stream-copied into the session."""
    v21 = FIXTURE.parent / "lerobot-v21-tiny"
    before = _hash_tree(v21)
    register_import(HomeLayout(home).imports, ImportSpec(name="old", source=str(v21)))
    result = materialize_session(instance, home, "import-old")
    assert result.success and checks(result) == {"session_dataset_valid": True}
    raw = metadata(result, "raw_episodes")
    assert (raw["kind"], raw["format"], raw["episodes"], raw["frames"]) == ("import", "lerobot-v3", 3, 31)
    assert raw["tasks"] == ["pick the cube", "place the cube"]
    meta = DatasetMeta(HomeLayout(home).session("import-old"))
    assert (meta.info.codebase_version, meta.info.total_frames) == ("v3.0", 31)
    assert _hash_tree(v21) == before


def test_import_together_with_inbox_sessions(instance: dg.DagsterInstance, home: Path, tmp_path: Path) -> None:
    """An import of a dataset this pipeline wrote elsewhere merges with inbox sessions, renumbered."""
    other = tmp_path / "other_home"
    make_inbox_session(other, "x", [4, 2], ["stack"])
    with dg.instance_for_test() as other_instance:
        assert materialize_session(other_instance, other, "inbox-x").success
    make_inbox_session(home, "a", [3], ["pick"])
    register_import(HomeLayout(home).imports, ImportSpec(name="x", source=str(HomeLayout(other).session("inbox-x"))))
    for key in ("inbox-a", "import-x"):
        assert materialize_session(instance, home, key).success
    merged = materialize_dataset(instance, home)
    assert merged.success and all(checks(merged).values())
    meta = DatasetMeta(HomeLayout(home).dataset())
    assert meta.tasks == ["pick", "stack"]
    assert meta.episodes.column("length").to_pylist() == [3, 4, 2]
    np.testing.assert_array_equal(_data(HomeLayout(home).dataset())["task_index"], [0] * 3 + [1] * 6)


def test_hub_source_uses_snapshot_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Hub path is the real code; only the network call is replaced."""
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((repo_id, kwargs))
        shutil.copytree(FIXTURE, kwargs["local_dir"], dirs_exist_ok=True)
        return str(kwargs["local_dir"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    assert hub_repo("lerobot/pusht") == ("lerobot/pusht", None)
    assert hub_repo("hf://datasets/lerobot/pusht@v3.0") == ("lerobot/pusht", "v3.0")
    assert hub_repo(str(FIXTURE)) is None and hub_repo("./relative/path") is None
    root = resolve_dataset("hf://datasets/lerobot/pusht@v3.0", download_dir=tmp_path / "dl")
    assert root == tmp_path / "dl" and (root / "meta" / "info.json").is_file()
    repo_id, kwargs = calls[0]
    assert repo_id == "lerobot/pusht" and kwargs["repo_type"] == "dataset" and kwargs["revision"] == "v3.0"
    with pytest.raises(FileNotFoundError, match="not a LeRobot dataset root"):
        resolve_dataset(str(tmp_path), download_dir=tmp_path / "dl2")


def test_register_jobs(instance: dg.DagsterInstance, home: Path) -> None:
    from lerobot_assets.defs.definitions import defs

    register = defs.resolve_job_def("register_sim_sessions")

    def sim(**config):  # type: ignore[no-untyped-def]
        return register.execute_in_process(
            instance=instance, run_config={"ops": {"add_sim_sessions": {"config": config}}}, raise_on_error=False
        )

    assert sim(sessions=2, episodes_per_session=5).success
    assert sim(sessions=1, episodes_per_session=5).success  # continues after the highest seed
    assert list(instance.get_dynamic_partitions("sessions")) == ["sim-s0000-0004", "sim-s0005-0009", "sim-s0010-0014"]
    overlapping = sim(sessions=1, episodes_per_session=4, first_seed=3)
    assert not overlapping.success
    assert len(instance.get_dynamic_partitions("sessions")) == 3

    imported = defs.resolve_job_def("register_import_session").execute_in_process(
        instance=instance,
        run_config={
            "ops": {"add_import": {"config": {"name": "tiny", "source": str(FIXTURE)}}},
            "resources": {"home": {"config": {"root": str(home)}}},
        },
    )
    assert imported.success
    assert read_json(home / "imports" / "tiny.json") == {"name": "tiny", "source": str(FIXTURE), "revision": None}
    assert list(instance.get_dynamic_partitions("sessions"))[-1] == "import-tiny"
