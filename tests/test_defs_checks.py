"""Blocking checks fail on a corrupted dataset and stop the assets downstream of it in the run."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_defs_support import (
    add_sessions,
    check_metadata,
    checks,
    dataset_defs,
    make_inbox_session,
    materialize_dataset,
    materialize_session,
    materialized,
    metadata,
    resources,
    session_defs,
)

import lerobot_assets.defs.datasets.assets as merge_module  # the asset calls merge_datasets through its module
import lerobot_assets.defs.ingest.assets as assets_module
from lerobot_assets.checks.stats import stats_problems
from lerobot_assets.format.features import Feature
from lerobot_assets.home import HomeLayout


def _session_and_merge(instance: dg.DagsterInstance, home: Path, key: str) -> dg.ExecuteInProcessResult:
    """One run: the session's assets and check, then the merged dataset and its stats."""
    add_sessions(instance, [key])
    return dg.materialize(
        [*session_defs(), *dataset_defs()], partition_key=key, instance=instance, resources=resources(home), raise_on_error=False
    )


def _corrupt_session_with(monkeypatch: pytest.MonkeyPatch, damage) -> None:  # type: ignore[no-untyped-def]
    real = assets_module.build_session_dataset

    def build(summary, output, **kw):  # type: ignore[no-untyped-def]
        result = real(summary, output, **kw)
        damage(Path(output))
        return result

    monkeypatch.setattr(assets_module, "build_session_dataset", build)


def test_healthy_run_materializes_everything(instance: dg.DagsterInstance, home: Path) -> None:
    make_inbox_session(home, "a", [4, 3])
    result = _session_and_merge(instance, home, "inbox-a")
    assert result.success
    assert materialized(result) == {"raw_episodes", "session_dataset", "session_videos", "lerobot_dataset", "dataset_stats"}
    assert all(checks(result).values()) and len(checks(result)) == 4


def test_missing_video_file_blocks_downstream(instance: dg.DagsterInstance, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_inbox_session(home, "a", [4, 3])
    _corrupt_session_with(monkeypatch, lambda root: next((root / "videos").rglob("*.mp4")).unlink())
    result = _session_and_merge(instance, home, "inbox-a")
    assert not result.success
    assert checks(result) == {"session_dataset_valid": False}
    assert materialized(result) == {"raw_episodes", "session_dataset", "session_videos"}  # lerobot_dataset never ran
    problems = check_metadata(result, "session_dataset_valid")["problems"]
    assert "videos/observation.images.cam/chunk-000/file-000.mp4" in problems
    assert not HomeLayout(home).dataset().exists()


def test_shifted_timestamps_fail_validation(instance: dg.DagsterInstance, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def shift(root: Path) -> None:
        path = next(root.glob("data/*/*.parquet"))
        table = pq.read_table(path)
        ts = table.column("timestamp").to_numpy().copy()
        ts[5:] += np.float32(0.05)  # episode 1 drifts half a frame
        i = table.schema.get_field_index("timestamp")
        pq.write_table(table.set_column(i, table.schema.field(i), pa.array(ts, pa.float32())), path)

    make_inbox_session(home, "a", [4, 3])
    _corrupt_session_with(monkeypatch, shift)
    result = _session_and_merge(instance, home, "inbox-a")
    assert not result.success and checks(result) == {"session_dataset_valid": False}
    md = check_metadata(result, "session_dataset_valid")
    assert md["errors"] >= 1 and "timestamp" in md["problems"]
    assert "lerobot_dataset" not in materialized(result)


def test_wrong_total_blocks_dataset_stats(instance: dg.DagsterInstance, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_inbox_session(home, "a", [4, 3])
    make_inbox_session(home, "b", [5])
    for key in ("inbox-a", "inbox-b"):
        assert materialize_session(instance, home, key).success
    real = merge_module.merge_datasets

    def merge(sources, output, **kw):  # type: ignore[no-untyped-def]
        result = real(sources, output, **kw)
        info_path = Path(output) / "meta" / "info.json"
        info = json.loads(info_path.read_text())
        info["total_frames"] += 1
        info_path.write_text(json.dumps(info))
        return result

    monkeypatch.setattr(merge_module, "merge_datasets", merge)
    result = materialize_dataset(instance, home)
    assert not result.success
    assert checks(result) == {"lerobot_dataset_valid": False, "lerobot_dataset_totals": False}
    assert materialized(result) == {"lerobot_dataset"}  # dataset_stats blocked
    totals = check_metadata(result, "lerobot_dataset_totals")
    assert "meta/info.json: 3 episodes / 13 frames, sessions sum to 3 / 12" in totals["problems"]
    assert "| **sum** | **3** | **12** |" in totals["totals"]


def test_stale_merge_fails_totals(instance: dg.DagsterInstance, home: Path) -> None:
    """A session changed after the merge: the totals check names it until lerobot_dataset is rebuilt."""
    import shutil

    make_inbox_session(home, "a", [4])
    assert materialize_session(instance, home, "inbox-a").success
    assert materialize_dataset(instance, home).success
    shutil.rmtree(home / "inbox" / "a")
    make_inbox_session(home, "a", [6])
    assert materialize_session(instance, home, "inbox-a").success
    checker = dg.materialize(
        dataset_defs(), instance=instance, resources=resources(home), selection=dg.AssetSelection.checks_for_assets("lerobot_dataset"),
        raise_on_error=False,
    )
    assert checks(checker)["lerobot_dataset_totals"] is False
    assert "session inbox-a: merged as 1 episodes / 4 frames, now holds 1 / 6" in check_metadata(checker, "lerobot_dataset_totals")["problems"]
    rebuilt = materialize_dataset(instance, home)
    assert rebuilt.success and metadata(rebuilt, "lerobot_dataset")["frames"] == 6


def test_stats_problems() -> None:
    features = {
        "observation.state": Feature(dtype="float32", shape=[2]),
        "observation.images.cam": Feature(dtype="video", shape=[8, 8, 3]),
        "note": Feature(dtype="string", shape=[1]),
    }
    good = {
        "observation.state": {"min": np.zeros(2), "max": np.ones(2), "mean": np.full(2, 0.5), "std": np.full(2, 0.1), "count": np.array([10])},
        "observation.images.cam": {"min": np.zeros((3, 1, 1)), "max": np.ones((3, 1, 1)), "mean": np.full((3, 1, 1), 0.5), "std": np.full((3, 1, 1), 0.2), "count": np.array([5])},
    }
    assert stats_problems(good, features, 10) == []
    bad = {k: dict(v) for k, v in good.items()}
    bad["observation.state"]["mean"] = np.array([np.nan, 0.5])
    bad["observation.state"]["std"] = np.array([-0.1, 0.1])
    bad["observation.state"]["count"] = np.array([9])
    bad["observation.images.cam"]["count"] = np.array([11])
    assert stats_problems(bad, features, 10) == [
        "observation.state/mean: holds NaN or inf",
        "observation.state/std: negative",
        "observation.state/count: 9, dataset has 10 frames",
        "observation.images.cam/count: 11, dataset has 10 frames",
    ]
    del bad["observation.images.cam"]
    assert "observation.images.cam: no statistics" in stats_problems(bad, features, 10)
