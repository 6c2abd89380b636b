"""remove_features, add_features and modify_tasks: output values against the input (the oracle),
inputs byte-for-byte unchanged, errors that name the bad argument and write nothing."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import FIXTURE, record
from test_tools_rewrite import CAMS, assert_same_frames, assert_stats_equal_numpy, check_output, column, data_table, items
from tools_support import tree_digest

from lerobot_assets.checks.validate import validate_dataset
from lerobot_assets.format.atomic import write_parquet
from lerobot_assets.format.meta import DatasetMeta
from lerobot_assets.format.stats_json import unflatten_stats
from lerobot_assets.stats.dataset import read_image_histograms
from lerobot_assets.tools.features import add_features, remove_features
from lerobot_assets.tools.tasks import modify_tasks

REWARD = {"dtype": "float32", "shape": [1], "names": None}
TOTAL = 60  # FIXTURE: episodes of 20, 25 and 15 frames


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ours") / "ds"
    w, _ = record(root, [5, 7, 6])
    w.finalize()
    return root


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> Path:
    """The fixture with undeclared annotation columns in its data parquet."""
    root = tmp_path_factory.mktemp("annotated") / "ds"
    shutil.copytree(FIXTURE, root)
    path = root / "data/chunk-000/file-000.parquet"
    t = pq.read_table(path)
    t = t.append_column("language_persistent", pa.array([[f"say {i}"] for i in range(t.num_rows)], pa.list_(pa.string())))
    t = t.append_column("language_events", pa.array([None] * t.num_rows, pa.string()))
    eps = t.column("episode_index").to_pylist()
    write_parquet(path, [t.filter(pa.array([e == k for e in eps])) for k in range(3)])
    return root


def stats_of(root: Path) -> dict:
    return json.loads((root / "meta/stats.json").read_text())


# ------------------------------------------------------------------------------------- remove
@pytest.mark.parametrize("src_name", ["fixture", "ours"])
def test_remove_camera_and_vector(tmp_path: Path, ours: Path, src_name: str) -> None:
    src = FIXTURE if src_name == "fixture" else ours
    before = tree_digest(src)
    gone = "observation.images.wrist"
    result = remove_features(src, [gone, "action"], tmp_path / "out")
    assert tree_digest(src) == before
    out = tmp_path / "out"
    assert result.episodes == 3
    check_output(out, src, [0, 1, 2])
    meta = DatasetMeta(out)
    assert gone not in meta.info.features and "action" not in meta.info.features
    assert not (out / "videos" / gone).exists()
    assert "action" not in pq.read_schema(out / "data/chunk-000/file-000.parquet").names
    assert not any(gone in c or "/action/" in c for c in meta.episodes.column_names)
    assert gone not in stats_of(out) and "action" not in stats_of(out)
    assert gone not in pq.read_schema(out / "meta/image_histograms/chunk-000/file-000.parquet").names
    # The other camera's file holds all its episodes: copied byte for byte.
    name = "videos/observation.images.front/chunk-000/file-000.mp4"
    assert (out / name).read_bytes() == (src / name).read_bytes()


def test_remove_errors_write_nothing(tmp_path: Path) -> None:
    before = tree_digest(FIXTURE)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="unknown feature 'observation.imagez.front' \\(did you mean 'observation.images.front'"):
        remove_features(FIXTURE, ["observation.imagez.front"], out)
    with pytest.raises(ValueError, match="'timestamp' is one of the index features"):
        remove_features(FIXTURE, ["timestamp"], out)
    with pytest.raises(ValueError, match="no features"):
        remove_features(FIXTURE, [], out)
    assert not out.exists()
    assert tree_digest(FIXTURE) == before


# ------------------------------------------------------------------------------------- add
def test_add_features_from_every_kind_of_values(tmp_path: Path) -> None:
    before = tree_digest(FIXTURE)
    rng = np.random.default_rng(0)
    reward = rng.standard_normal(TOTAL).astype(np.float32)
    force = rng.standard_normal((TOTAL, 3))
    np.save(tmp_path / "force.npy", force)
    # The parquet form: rows in any order, one per (episode, frame).
    starts, lengths = [0, 20, 45], [20, 25, 15]
    pairs = [(e, f) for e, n in enumerate(lengths) for f in range(n)]
    done = rng.integers(0, 2, TOTAL).astype(bool)
    order = rng.permutation(TOTAL)
    pq.write_table(
        pa.table({
            "episode_index": [pairs[i][0] for i in order],
            "frame_index": [pairs[i][1] for i in order],
            "value": done[order],
        }),
        tmp_path / "done.parquet",
    )
    result = add_features(
        FIXTURE,
        {
            "reward": (REWARD, reward),
            "force": ({"dtype": "float64", "shape": [3], "names": ["x", "y", "z"]}, tmp_path / "force.npy"),
            "done": ({"dtype": "bool", "shape": [1]}, str(tmp_path / "done.parquet")),
            "progress": ({"dtype": "float32", "shape": [1]}, lambda row, ep, frame: frame / lengths[ep] + row["timestamp"] * 0),
            "note": ({"dtype": "string", "shape": [1]}, lambda row, ep, frame: f"e{ep}f{frame}"),
        },
        tmp_path / "out",
    )
    assert tree_digest(FIXTURE) == before
    out = tmp_path / "out"
    assert result.frames == TOTAL
    check_output(out, FIXTURE, [0, 1, 2])
    data = data_table(out)
    assert np.array_equal(np.asarray(data.column("reward").to_pylist(), np.float32), reward)
    assert np.array_equal(np.asarray(data.column("force").to_pylist()), force)
    assert data.column("done").to_pylist() == done.tolist()
    progress = np.concatenate([np.arange(n) / n for n in lengths]).astype(np.float32)
    assert np.array_equal(np.asarray(data.column("progress").to_pylist(), np.float32), progress)
    assert data.column("note").to_pylist() == [f"e{e}f{f}" for e, f in pairs]
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"]["force"] == {"dtype": "float64", "shape": [3], "names": ["x", "y", "z"]}
    assert list(info["features"])[-5:] == ["reward", "force", "done", "progress", "note"]
    # Exact stats for added numeric features (LeRobot's add_features leaves none).
    stats = stats_of(out)
    assert_stats_equal_numpy(stats, "reward", reward.astype(np.float64)[:, None])
    assert_stats_equal_numpy(stats, "force", force)
    assert_stats_equal_numpy(stats, "done", done.astype(np.float64)[:, None])
    assert "note" not in stats
    for r, lo, n in zip(DatasetMeta(out).episodes.to_pylist(), starts, lengths):
        ep = unflatten_stats(r)
        np.testing.assert_allclose(ep["force"]["q90"], np.quantile(force[lo : lo + n], 0.9, axis=0))
        np.testing.assert_allclose(ep["reward"]["max"], [reward[lo : lo + n].max()])
    assert validate_dataset(out).ok


def test_add_feature_errors_name_the_key(tmp_path: Path) -> None:
    before = tree_digest(FIXTURE)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="'action' exists already"):
        add_features(FIXTURE, {"action": (REWARD, np.zeros(TOTAL))}, out)
    with pytest.raises(ValueError, match="'reward': its info needs 'dtype' and 'shape'"):
        add_features(FIXTURE, {"reward": ({"dtype": "float32"}, np.zeros(TOTAL))}, out)
    with pytest.raises(ValueError, match="'reward': 59 values for 60 frames"):
        add_features(FIXTURE, {"reward": (REWARD, np.zeros(59))}, out)
    with pytest.raises(ValueError, match="'force': values have shape \\(60, 2\\), expected \\(frames, 3\\)"):
        add_features(FIXTURE, {"force": ({"dtype": "float32", "shape": [3]}, np.zeros((TOTAL, 2)))}, out)
    with pytest.raises(ValueError, match="'cam'.*not supported"):
        add_features(FIXTURE, {"cam": ({"dtype": "video", "shape": [8, 8, 3]}, np.zeros(TOTAL))}, out)
    rows = [(e, f) for e, n in enumerate([20, 25, 15]) for f in range(n)]
    missing = [r for r in rows if r != (1, 7)]
    pq.write_table(pa.table({"episode_index": [e for e, _ in missing], "frame_index": [f for _, f in missing],
                             "value": np.zeros(len(missing))}), tmp_path / "missing.parquet")
    with pytest.raises(ValueError, match="no value for \\(episode 1, frame 7\\)"):
        add_features(FIXTURE, {"reward": (REWARD, tmp_path / "missing.parquet")}, out)
    twice = [*rows, (2, 3)]
    pq.write_table(pa.table({"episode_index": [e for e, _ in twice], "frame_index": [f for _, f in twice],
                             "value": np.zeros(len(twice))}), tmp_path / "twice.parquet")
    with pytest.raises(ValueError, match="\\(episode 2, frame 3\\) appears 2 times"):
        add_features(FIXTURE, {"reward": (REWARD, tmp_path / "twice.parquet")}, out)
    assert not out.exists()
    assert tree_digest(FIXTURE) == before


# ------------------------------------------------------------------------------------- tasks
def test_modify_tasks_precedence_and_first_appearance(tmp_path: Path) -> None:
    # FIXTURE tasks: episode 0 "pick the cube", 1 "place the cube", 2 "pick the cube".
    before = tree_digest(FIXTURE)
    modify_tasks(
        FIXTURE, tmp_path / "out", new_task="other", episode_tasks={2: "stack"}, task_replacements={"pick the cube": "zebra"}
    )
    assert tree_digest(FIXTURE) == before
    out = tmp_path / "out"
    meta = DatasetMeta(out)
    # Episode 0: replacement of its task; 1: new_task; 2: episode_tasks wins over the replacement.
    assert meta.tasks == ["zebra", "other", "stack"]  # first appearance, not alphabetical
    assert meta.episodes.column("tasks").to_pylist() == [["zebra"], ["other"], ["stack"]]
    data = data_table(out)
    task_index = [0] * 20 + [1] * 25 + [2] * 15
    assert data.column("task_index").to_pylist() == task_index
    assert [it["task"] for it in items(out)] == ["zebra"] * 20 + ["other"] * 25 + ["stack"] * 15
    assert_stats_equal_numpy(stats_of(out), "task_index", np.asarray(task_index, np.float64)[:, None])
    for r, t in zip(meta.episodes.to_pylist(), [0, 1, 2]):
        assert unflatten_stats(r)["task_index"]["mean"].tolist() == [t]
    assert validate_dataset(out).ok
    # Only replacements: other episodes keep their tasks; indices by first appearance.
    modify_tasks(FIXTURE, tmp_path / "only", task_replacements={"place the cube": "aaa"})
    only = DatasetMeta(tmp_path / "only")
    assert only.tasks == ["pick the cube", "aaa"]
    assert only.episodes.column("tasks").to_pylist() == [["pick the cube"], ["aaa"], ["pick the cube"]]
    assert_same_frames(items(tmp_path / "only"), [dict(it, task="aaa" if it["task"] == "place the cube" else it["task"])
                                                   for it in items(FIXTURE)], CAMS)


def test_modify_tasks_errors_write_nothing(tmp_path: Path) -> None:
    before = tree_digest(FIXTURE)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="unknown task 'pick the cub' to replace \\(did you mean 'pick the cube'"):
        modify_tasks(FIXTURE, out, task_replacements={"pick the cub": "x"})
    with pytest.raises(ValueError, match="unknown episode 9 of 3"):
        modify_tasks(FIXTURE, out, episode_tasks={9: "x"})
    with pytest.raises(ValueError, match="empty"):
        modify_tasks(FIXTURE, out, new_task="  ")
    with pytest.raises(ValueError, match="empty"):
        modify_tasks(FIXTURE, out, episode_tasks={0: ""})
    with pytest.raises(ValueError, match="nothing to change"):
        modify_tasks(FIXTURE, out)
    assert not out.exists()
    assert tree_digest(FIXTURE) == before


# ------------------------------------------------------------------------------------- annotated
def test_annotated_dataset_through_every_column_edit(tmp_path: Path, annotated: Path) -> None:
    before = tree_digest(annotated)
    remove_features(annotated, ["action"], tmp_path / "removed")
    add_features(annotated, {"reward": (REWARD, np.arange(TOTAL, dtype=np.float32))}, tmp_path / "added")
    modify_tasks(annotated, tmp_path / "tasks", new_task="do it")
    assert tree_digest(annotated) == before
    want = pq.read_table(annotated / "data/chunk-000/file-000.parquet")
    for name in ["removed", "added", "tasks"]:
        out = tmp_path / name
        assert validate_dataset(out).ok, name
        got = data_table(out)
        for col in ["language_persistent", "language_events"]:
            assert got.column(col).to_pylist() == want.column(col).to_pylist(), (name, col)
            assert col not in stats_of(out)
    np.testing.assert_allclose(stats_of(tmp_path / "added")["reward"]["q10"], [np.quantile(np.arange(TOTAL), 0.1)])
    assert np.array_equal(column(data_table(tmp_path / "tasks"), "task_index"), np.zeros((TOTAL, 1)))
    assert sorted(read_image_histograms(tmp_path / "tasks", CAMS)[CAMS[0]]) == [0, 1, 2]


def test_remove_every_camera(tmp_path: Path) -> None:
    remove_features(FIXTURE, CAMS, tmp_path / "out")
    out = tmp_path / "out"
    info = json.loads((out / "meta/info.json").read_text())
    assert info["video_path"] is None and not (out / "videos").exists()
    assert not (out / "meta/image_histograms").exists()
    assert validate_dataset(out).ok
    assert_same_frames(items(out), items(FIXTURE), ["observation.state", "action"])
