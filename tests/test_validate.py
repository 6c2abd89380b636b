"""Validator and `validate` / `info` CLI: the LeRobot-written fixture is valid; each corruption of a
copy of it produces its specific problem, naming the file and the episode."""

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from lerobot_assets.checks.validate import NotAV3DatasetError, Problem, validate_dataset
from lerobot_assets.cli import app

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot-v3-tiny"
DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
FRONT = "videos/observation.images.front/chunk-000/file-000.mp4"
WRIST = "videos/observation.images.wrist/chunk-000/file-000.mp4"
LENGTHS = [20, 25, 15]

pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason="LeRobot-written fixture not available")


@pytest.fixture()
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(FIXTURE, root)
    return root


def _rewrite_data(root: Path, edit) -> None:
    """Apply edit(table) -> table to the data parquet, keeping one row group per episode."""
    path = root / DATA
    table = edit(pq.read_table(path))
    with pq.ParquetWriter(path, table.schema) as writer:
        start = 0
        for n in LENGTHS:
            writer.write_table(table.slice(start, n))
            start += n


def _replace_column(table: pa.Table, name: str, values: np.ndarray) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type))


def _errors(root: Path) -> list[Problem]:
    report = validate_dataset(root)
    assert not report.ok
    return report.errors


def _only(errors: list[Problem], file: str, episode: int | None, needle: str) -> Problem:
    hits = [p for p in errors if p.file == file and p.episode == episode and needle in p.message]
    assert hits, f"no error on {file} [episode {episode}] containing {needle!r}; got {[str(p) for p in errors]}"
    return hits[0]


def test_fixture_is_valid() -> None:
    report = validate_dataset(FIXTURE)
    assert report.ok, [str(p) for p in report.problems]
    assert report.problems == []
    assert (report.num_episodes, report.num_frames, report.num_data_files, report.num_video_files) == (3, 60, 1, 2)


def test_missing_video_file(copy: Path) -> None:
    (copy / FRONT).unlink()
    errors = _errors(copy)
    p = _only(errors, FRONT, 0, "video file is missing")
    assert "episodes 0, 1, 2" in p.message
    # The other camera is untouched and reports nothing.
    assert not [e for e in errors if e.file == WRIST]


def test_shifted_timestamps(copy: Path) -> None:
    def shift(t: pa.Table) -> pa.Table:
        ts = t.column("timestamp").to_numpy().copy()
        ts[20:45] += 0.5 / 30  # episode 1 off by half a frame
        return _replace_column(t, "timestamp", ts)

    _rewrite_data(copy, shift)
    errors = _errors(copy)
    p = _only(errors, DATA, 1, "timestamp != frame_index/fps")
    assert "25 frames off" in p.message
    assert {e.episode for e in errors} == {1}


def test_wrong_total_frames(copy: Path) -> None:
    info = json.loads((copy / "meta/info.json").read_text())
    info["total_frames"] = 61
    (copy / "meta/info.json").write_text(json.dumps(info, indent=4))
    errors = _errors(copy)
    _only(errors, "meta/info.json", None, "total_frames=61 but the episodes' lengths sum to 60")
    _only(errors, "meta/info.json", None, "total_frames=61 but the data files hold 60 rows")
    assert all(e.file == "meta/info.json" for e in errors)


def test_non_contiguous_index(copy: Path) -> None:
    def gap(t: pa.Table) -> pa.Table:
        index = t.column("index").to_numpy().copy()
        index[45:] += 1  # episode 2 starts at 46: a hole at 45
        return _replace_column(t, "index", index)

    _rewrite_data(copy, gap)
    p = _only(_errors(copy), DATA, 2, "index is not contiguous")
    assert "global row 45 holds index 46, expected 45" in p.message


def test_task_index_not_in_tasks(copy: Path) -> None:
    def bad_task(t: pa.Table) -> pa.Table:
        ti = t.column("task_index").to_numpy().copy()
        ti[0:20] = 7
        return _replace_column(t, "task_index", ti)

    _rewrite_data(copy, bad_task)
    p = _only(_errors(copy), DATA, 0, "task_index [7] not in meta/tasks.parquet (2 tasks)")
    assert "in 20 frames" in p.message


def test_truncated_episodes_parquet(copy: Path) -> None:
    path = copy / EPISODES
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    report = validate_dataset(copy)  # must not raise
    assert not report.ok
    _only(report.errors, EPISODES, None, "unreadable episodes parquet")


def test_to_timestamp_beyond_video_duration(copy: Path) -> None:
    path = copy / EPISODES
    table = pq.read_table(path)
    name = "videos/observation.images.front/to_timestamp"
    values = table.column(name).to_numpy().copy()
    values[2] = 3.0  # the file lasts 2.0 s
    i = table.schema.get_field_index(name)
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(values)), path)
    errors = _errors(copy)
    p = _only(errors, FRONT, 2, "outside the video's duration 2.000000 s")
    assert "[1.500000, 3.000000]" in p.message
    assert {(e.file, e.episode) for e in errors} == {(FRONT, 2)}


def test_video_segment_frame_count_mismatch(copy: Path) -> None:
    """Segments that stay inside the file but cover the wrong frames are caught by the packet count."""
    path = copy / EPISODES
    table = pq.read_table(path)
    for col, new in (("from_timestamp", [0.0, 0.7, 1.5]), ("to_timestamp", [0.7, 1.5, 2.0])):
        name = f"videos/observation.images.wrist/{col}"
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(new, pa.float64()))
    pq.write_table(table, path)
    errors = _errors(copy)
    _only(errors, WRIST, 0, "video holds 21 frames in [0.000000, 0.700000) s but the episode has 20")
    _only(errors, WRIST, 1, "video holds 24 frames")


def test_collapsed_row_groups_is_only_a_warning(copy: Path) -> None:
    table = pq.read_table(copy / DATA)
    pq.write_table(table, copy / DATA)  # one row group for all 60 rows, as lerobot's delete tool writes
    report = validate_dataset(copy)
    assert report.ok
    assert [(p.severity, p.file) for p in report.problems] == [("warning", DATA)]
    assert "1 row groups for 3 episodes" in report.problems[0].message


def test_episode_tasks_must_match_frames(copy: Path) -> None:
    path = copy / EPISODES
    table = pq.read_table(path)
    i = table.schema.get_field_index("tasks")
    tasks = pa.array([["pick the cube"], ["pick the cube"], ["pick the cube"]], table.schema.field(i).type)
    pq.write_table(table.set_column(i, table.schema.field(i), tasks), path)
    p = _only(_errors(copy), EPISODES, 1, "tasks ['pick the cube'] but its frames carry tasks ['place the cube']")
    assert p.severity == "error"


def test_stats_missing_entry_and_wrong_shape(copy: Path) -> None:
    stats = json.loads((copy / "meta/stats.json").read_text())
    del stats["action"]
    stats["observation.state"]["mean"] = [0.0] * 5
    del stats["timestamp"]["q99"]
    (copy / "meta/stats.json").write_text(json.dumps(stats))
    report = validate_dataset(copy)
    _only(report.errors, "meta/stats.json", None, "no entry for feature 'action'")
    _only(report.errors, "meta/stats.json", None, "observation.state/mean: shape (5,), expected (6,)")
    assert [str(p) for p in report.warnings] == ["WARNING meta/stats.json: timestamp: stat 'q99' is missing"]


def test_null_video_path_with_video_features_is_an_error_not_a_crash(copy: Path) -> None:
    info = json.loads((copy / "meta/info.json").read_text())
    info["video_path"] = None
    (copy / "meta/info.json").write_text(json.dumps(info, indent=4))
    errors = _errors(copy)
    _only(errors, "meta/info.json", None, "video_path is null but the dataset has video features")


def test_not_a_v3_dataset(tmp_path: Path) -> None:
    with pytest.raises(NotAV3DatasetError, match="meta/info.json is missing"):
        validate_dataset(tmp_path)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text(json.dumps({"codebase_version": "v2.1", "fps": 30, "features": {}}))
    with pytest.raises(NotAV3DatasetError, match="'v2.1' is not v3"):
        validate_dataset(tmp_path)


def test_validation_is_fast_on_many_episodes(tmp_path: Path) -> None:
    """3,000 episodes (video-free copy of the fixture): checks are vectorised, not per-row Python."""
    root = tmp_path / "many"
    (root / "meta/episodes/chunk-000").mkdir(parents=True)
    (root / "data/chunk-000").mkdir(parents=True)
    n_eps, length, fps = 3000, 10, 30
    n = n_eps * length
    info = json.loads((FIXTURE / "meta/info.json").read_text())
    for cam in ("observation.images.front", "observation.images.wrist"):
        del info["features"][cam]
    info.update(total_episodes=n_eps, total_frames=n, video_path=None)
    (root / "meta/info.json").write_text(json.dumps(info))
    shutil.copy(FIXTURE / "meta/tasks.parquet", root / "meta/tasks.parquet")
    stats = json.loads((FIXTURE / "meta/stats.json").read_text())
    for cam in ("observation.images.front", "observation.images.wrist"):
        del stats[cam]
    (root / "meta/stats.json").write_text(json.dumps(stats))
    schema = pq.read_schema(FIXTURE / DATA)
    ep = np.repeat(np.arange(n_eps), length)
    frame = np.tile(np.arange(length), n_eps)
    rng = np.random.default_rng(0)
    vec = pa.FixedSizeListArray.from_arrays(pa.array(rng.standard_normal(n * 6).astype(np.float32)), 6)
    data = pa.Table.from_arrays(
        [vec, vec, pa.array((frame / fps).astype(np.float32)), pa.array(frame), pa.array(ep),
         pa.array(np.arange(n)), pa.array(ep % 2)], schema=schema)
    pq.write_table(data, root / DATA, row_group_size=length)
    starts = np.arange(n_eps) * length
    episodes = pa.table({
        "episode_index": np.arange(n_eps), "tasks": [[["pick the cube", "place the cube"][e % 2]] for e in range(n_eps)],
        "length": np.full(n_eps, length), "data/chunk_index": np.zeros(n_eps, np.int64),
        "data/file_index": np.zeros(n_eps, np.int64), "dataset_from_index": starts, "dataset_to_index": starts + length,
    })
    pq.write_table(episodes, root / EPISODES)
    t0 = time.perf_counter()
    report = validate_dataset(root)
    elapsed = time.perf_counter() - t0
    assert report.ok, [str(p) for p in report.problems[:5]]
    assert (report.num_episodes, report.num_frames) == (n_eps, n)
    assert elapsed < 10, f"validation of {n_eps} episodes took {elapsed:.1f} s"
    # A systematic fault is listed per episode but capped, with one line counting the rest.
    bad = data.set_column(2, schema.field(2), pa.array((frame / fps + 0.01).astype(np.float32)))
    pq.write_table(bad, root / DATA, row_group_size=length)
    errors = validate_dataset(root, max_problems_per_check=20).errors
    assert len(errors) == 21
    assert [e.episode for e in errors[:20]] == list(range(20))
    assert errors[20].message.startswith("2980 more problems of this kind (timestamp) not listed")


# ---------------------------------------------------------------------------------- CLI
runner = CliRunner()


def test_cli_validate_ok() -> None:
    result = runner.invoke(app, ["validate", str(FIXTURE)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"OK {FIXTURE}: 3 episodes, 60 frames")


def test_cli_validate_errors(copy: Path) -> None:
    (copy / WRIST).unlink()
    info = json.loads((copy / "meta/info.json").read_text())
    info["total_episodes"] = 4
    (copy / "meta/info.json").write_text(json.dumps(info))
    result = runner.invoke(app, ["validate", str(copy)])
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert "ERROR meta/info.json: total_episodes=4 but meta/episodes has 3 episodes" in lines
    assert any(line.startswith(f"ERROR {WRIST} [episode 0]: video file is missing") for line in lines)
    assert all(line.startswith("ERROR ") for line in lines)


def test_cli_validate_warning_does_not_fail(copy: Path) -> None:
    pq.write_table(pq.read_table(copy / DATA), copy / DATA)
    result = runner.invoke(app, ["validate", str(copy)])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"WARNING {DATA}: 1 row groups for 3 episodes")
    assert lines[-1].startswith("OK ")


def test_cli_not_a_dataset(tmp_path: Path) -> None:
    for command in ("validate", "info"):
        result = runner.invoke(app, [command, str(tmp_path)])
        assert result.exit_code == 2
        assert "meta/info.json is missing" in result.output
        assert "Traceback" not in result.output


def test_cli_info() -> None:
    result = runner.invoke(app, ["info", str(FIXTURE)])
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in (
        "fps:         30", "robot_type:  so100", "episodes:    3", "frames:      60", "duration:    2.0 s",
        "[0] 'pick the cube': 2 episodes", "[1] 'place the cube': 1 episode",
        "observation.state", "float32  (6,)",
        "observation.images.front: av1 128x96 yuv420p 30 fps, 1 file, 11,674 bytes",
        "observation.images.wrist: av1 80x64 yuv420p 30 fps, 1 file, 9,991 bytes",
    ):
        assert expected in out, (expected, out)


def test_relative_root_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lerobot-assets validate tiny` from the parent folder: the same verdict as the absolute path."""
    import shutil

    shutil.copytree(FIXTURE, tmp_path / "tiny")
    monkeypatch.chdir(tmp_path)
    report = validate_dataset("tiny")
    assert report.ok, [str(p) for p in report.problems]
    assert (report.num_episodes, report.num_frames, report.num_data_files) == (3, 60, 1)
