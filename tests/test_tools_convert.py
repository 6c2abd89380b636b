"""convert_v21 (LeRobot v2.1 -> v3.0) and convert_image_to_video, checked against their inputs.

Oracles: the v2.1 fixture's own files (per-episode parquet rows, per-episode MP4 frames decoded
with PyAV, numpy over its values), the frames the image dataset was recorded from, our validator
and our loader. Every operation, failing ones included, must leave its input byte-for-byte
unchanged and a failure must leave no output.
"""

import importlib.util
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import FEATURES, make_frame
from tools_support import tree_digest

from lerobot_assets.checks.validate import validate_dataset
from lerobot_assets.format.episodes import read_episodes
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.stats_json import read_stats, unflatten_stats
from lerobot_assets.loading import LeRobotV3Dataset
from lerobot_assets.recording import DatasetWriter
from lerobot_assets.sources.lerobot_import import converted_root, resolve_dataset
from lerobot_assets.stats.dataset import read_image_histograms
from lerobot_assets.stats.image import ImageStatsAccumulator
from lerobot_assets.stats.numeric import numeric_stats
from lerobot_assets.tools.convert_v21 import NotAV21DatasetError, convert_v21
from lerobot_assets.tools.image_to_video import NoImageFeaturesError, convert_image_to_video
from lerobot_assets.tools.output import OutputExistsError, OutputIsInputError
from lerobot_assets.video.config import VideoEncoderConfig

FIXTURES = Path(__file__).resolve().parent / "fixtures"
V21 = FIXTURES / "lerobot-v21-tiny"
V3_LEROBOT = FIXTURES / "lerobot-v3-tiny"
CAMS = ["observation.images.front", "observation.images.wrist"]
LENGTHS = [10, 12, 9]


def _load_fixture_script():
    spec = importlib.util.spec_from_file_location("make_v21_fixture", FIXTURES / "make_v21_fixture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_v21 = _load_fixture_script()


def decode_all(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def v21_episode_frames(root: Path, key: str, ep: int) -> np.ndarray:
    return decode_all(root / f"videos/chunk-000/{key}/episode_{ep:06d}.mp4")


def v21_rows(root: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(root / f"data/chunk-000/episode_{ep:06d}.parquet") for ep in range(3)])


def data_table(root: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted((root / "data").rglob("*.parquet"))])


def assert_valid(root: Path) -> None:
    report = validate_dataset(root)
    assert report.ok and not report.errors, report.errors


# ----------------------------------------------------------------------------- convert_v21
@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    before = tree_digest(V21)
    out = tmp_path_factory.mktemp("v21") / "v3"
    seen: list[tuple[str, int, int]] = []
    result = convert_v21(V21, out, progress=lambda label, done, total: seen.append((label, done, total)))
    assert tree_digest(V21) == before
    assert (result.operation, result.episodes, result.frames, result.output) == ("convert-v21", 3, 31, out)
    assert result.bytes > 0 and ("data", 3, 3) in seen
    assert result.notes == ["image stats computed from the frames for 6 of 6 episode cameras"]
    return out


def test_v21_fixture_is_what_the_script_writes(tmp_path: Path) -> None:
    """The committed fixture is reproducible: the script writes the same bytes again."""
    assert tree_digest(make_v21.write_v21_dataset(tmp_path / "again")) == tree_digest(V21)


def test_convert_v21_layout_and_info(converted: Path) -> None:
    assert_valid(converted)
    raw = json.loads((converted / "meta/info.json").read_text())
    assert raw["codebase_version"] == "v3.0"
    assert "total_chunks" not in raw and "total_videos" not in raw
    assert raw["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert raw["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert (raw["total_episodes"], raw["total_frames"], raw["total_tasks"]) == (3, 31, 2)
    assert (raw["data_files_size_in_mb"], raw["video_files_size_in_mb"], raw["splits"]) == (100, 200, {"train": "0:3"})
    front = raw["features"]["observation.images.front"]["info"]
    assert (front["video.codec"], front["video.height"], front["video.width"], front["is_depth_map"]) == ("av1", 48, 64, False)
    assert sorted(str(p.relative_to(converted)) for p in converted.rglob("*") if p.is_file()) == [
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/image_histograms/chunk-000/file-000.parquet",
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "videos/observation.images.front/chunk-000/file-000.mp4",
        "videos/observation.images.wrist/chunk-000/file-000.mp4",
    ]
    eps = read_episodes(converted).to_pylist()
    legacy = [json.loads(line) for line in (V21 / "meta/episodes.jsonl").read_text().splitlines()]
    assert [(e["episode_index"], e["tasks"], e["length"]) for e in eps] == [
        (r["episode_index"], r["tasks"], r["length"]) for r in legacy
    ]
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [(0, 10), (10, 22), (22, 31)]
    # One row group per episode, as LeRobot's recorder writes them.
    assert [pq.ParquetFile(converted / "data/chunk-000/file-000.parquet").metadata.row_group(i).num_rows for i in range(3)] == LENGTHS


def test_convert_v21_data_equals_the_v21_rows(converted: Path) -> None:
    got, want = data_table(converted), v21_rows(V21)
    assert got.column_names == want.column_names
    for name in got.column_names:
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
    ds = LeRobotV3Dataset(converted, return_uint8=True)
    assert len(ds) == 31
    for i in (0, 9, 10, 30):
        item = ds[i]
        assert np.array_equal(item["observation.state"].numpy(), np.asarray(want.column("observation.state")[i].as_py(), np.float32))
        assert int(item["episode_index"]) == want.column("episode_index")[i].as_py()
        assert item["task"] == ["pick the cube", "place the cube", "pick the cube"][int(item["episode_index"])]


def test_convert_v21_frames_are_the_v21_frames_stream_copied(converted: Path) -> None:
    eps = read_episodes(converted).to_pylist()
    ds = LeRobotV3Dataset(converted, return_uint8=True)
    for key in CAMS:
        whole = decode_all(converted / f"videos/{key}/chunk-000/file-000.mp4")
        legacy = [v21_episode_frames(V21, key, ep) for ep in range(3)]
        assert np.array_equal(whole, np.concatenate(legacy))
        ends = np.cumsum(LENGTHS) / 30
        for e, start, end in zip(eps, [0.0, *ends[:-1]], ends):
            assert e[f"videos/{key}/from_timestamp"] == pytest.approx(start, abs=1e-12)
            assert e[f"videos/{key}/to_timestamp"] == pytest.approx(end, abs=1e-12)
        # Through the loader: every frame is the v2.1 episode's frame at that position.
        for i in range(len(ds)):
            ep = int(ds[i]["episode_index"])
            frame_index = int(ds[i]["frame_index"])
            assert np.array_equal(ds[i][key].numpy().transpose(1, 2, 0), legacy[ep][frame_index])


def test_convert_v21_stats_are_exact(converted: Path) -> None:
    rows = v21_rows(V21)
    stats = read_stats(converted)
    for key in ("observation.state", "action", "timestamp", "index"):
        values = np.asarray(rows.column(key).to_pylist(), dtype=np.float64)
        expected = numeric_stats(values)
        for stat in ("min", "max", "mean", "std", "q01", "q50", "q99"):
            np.testing.assert_allclose(stats[key][stat], expected[stat], rtol=1e-12, err_msg=f"{key}.{stat}")
    eps = read_episodes(converted).to_pylist()
    hists = read_image_histograms(converted, CAMS)
    for ep, row in enumerate(eps):
        per_ep = unflatten_stats(row)
        part = rows.filter(pa.compute.equal(rows["episode_index"], ep))
        np.testing.assert_allclose(per_ep["action"]["q90"], numeric_stats(np.asarray(part.column("action").to_pylist()))["q90"])
        for key in CAMS:
            acc = ImageStatsAccumulator()
            for frame in v21_episode_frames(V21, key, ep):
                acc.update(frame)
            expected = acc.stats()
            assert expected is not None
            assert np.array_equal(hists[key][ep], acc.hist)
            for stat in ("min", "max", "mean", "std", "q10", "q90"):
                np.testing.assert_allclose(per_ep[key][stat], expected[stat], err_msg=f"{key}.{stat} ep {ep}")
    front = ImageStatsAccumulator()
    for ep in range(3):
        for frame in v21_episode_frames(V21, "observation.images.front", ep):
            front.update(frame)
    assert front.hist is not None
    np.testing.assert_allclose(stats["observation.images.front"]["q50"], front.stats()["q50"])  # type: ignore[index]
    assert int(stats["observation.images.front"]["count"][0]) == 31


def test_convert_v21_rolls_files_over_at_the_size_limits(tmp_path: Path) -> None:
    out = tmp_path / "v3"
    convert_v21(V21, out, data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6)
    assert_valid(out)
    eps = read_episodes(out).to_pylist()
    assert [(e["data/chunk_index"], e["data/file_index"]) for e in eps] == [(0, 0), (0, 1), (0, 2)]
    for key in CAMS:
        assert [(e[f"videos/{key}/file_index"], e[f"videos/{key}/from_timestamp"]) for e in eps] == [(0, 0.0), (1, 0.0), (2, 0.0)]
        for ep in range(3):
            assert np.array_equal(decode_all(out / f"videos/{key}/chunk-000/file-{ep:03d}.mp4"), v21_episode_frames(V21, key, ep))
    assert data_table(out).column("index").to_pylist() == list(range(31))


def test_convert_v21_reads_every_source_chunk_and_numbers_output_chunks(tmp_path: Path) -> None:
    """chunks_size=2: v2.1 puts episode 2 under chunk-001; the output's third file is chunk-001/file-000."""
    src = tmp_path / "v21"
    shutil.copytree(V21, src)
    info = json.loads((src / "meta/info.json").read_text())
    info["chunks_size"] = 2
    (src / "meta/info.json").write_text(json.dumps(info, indent=4))
    for old in [src / "data/chunk-000/episode_000002.parquet", *(src / "videos/chunk-000").glob("*/episode_000002.mp4")]:
        new = src / str(old.relative_to(src)).replace("chunk-000", "chunk-001")
        new.parent.mkdir(parents=True, exist_ok=True)
        old.rename(new)
    out = tmp_path / "v3"
    convert_v21(src, out, data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6)
    assert_valid(out)
    eps = read_episodes(out).to_pylist()
    assert [(e["data/chunk_index"], e["data/file_index"]) for e in eps] == [(0, 0), (0, 1), (1, 0)]
    assert (out / "videos/observation.images.front/chunk-001/file-000.mp4").is_file()
    assert np.array_equal(
        decode_all(out / "videos/observation.images.wrist/chunk-001/file-000.mp4"),
        v21_episode_frames(V21, "observation.images.wrist", 2),
    )
    assert data_table(out).column("observation.state").to_pylist() == v21_rows(V21).column("observation.state").to_pylist()


def test_convert_v21_carries_complete_episode_stats_and_computes_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "v21"
    shutil.copytree(V21, src)
    lines = [json.loads(line) for line in (src / "meta/episodes_stats.jsonl").read_text().splitlines()]
    front = lines[0]["stats"]["observation.images.front"]
    for i, q in enumerate(("q01", "q10", "q50", "q90", "q99")):
        front[q] = [[[0.1 * (i + 1)]]] * 3  # a complete entry: carried as it is
    lines[0]["stats"]["observation.state"]["mean"] = [999.0] * 6  # numeric stats are always recomputed
    del lines[2]  # no stats for episode 2: computed
    (src / "meta/episodes_stats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    before = tree_digest(src)
    out = tmp_path / "v3"
    convert_v21(src, out)
    assert tree_digest(src) == before
    assert_valid(out)
    eps = [unflatten_stats(r) for r in read_episodes(out).to_pylist()]
    np.testing.assert_allclose(eps[0]["observation.images.front"]["q50"], [[[0.3]]] * 3)
    np.testing.assert_allclose(eps[0]["observation.images.front"]["mean"], front["mean"])
    state0 = np.asarray(pq.read_table(V21 / "data/chunk-000/episode_000000.parquet").column("observation.state").to_pylist())
    np.testing.assert_allclose(eps[0]["observation.state"]["mean"], state0.mean(0), rtol=1e-12)
    hists = read_image_histograms(out, CAMS)
    assert sorted(hists["observation.images.front"]) == [1, 2] and sorted(hists["observation.images.wrist"]) == [0, 1, 2]
    assert "observation.images.front" in read_stats(out)


def test_convert_v21_image_mode(tmp_path: Path) -> None:
    src = make_v21.write_v21_dataset(tmp_path / "v21-images", image_mode=True)
    before = tree_digest(src)
    out = tmp_path / "v3"
    convert_v21(src, out)
    assert tree_digest(src) == before
    assert_valid(out)
    info = DatasetInfo.load(out)
    assert info.image_keys == CAMS and info.video_path is None
    got = data_table(out)
    legacy = pa.concat_tables([pq.read_table(src / f"data/chunk-000/episode_{ep:06d}.parquet") for ep in range(3)])
    assert got.column("observation.images.wrist").to_pylist() == legacy.column("observation.images.wrist").to_pylist()
    ds = LeRobotV3Dataset(out, return_uint8=True)
    expected = make_v21.episode_frames(1)["observation.images.front"][4]
    assert np.array_equal(ds[14]["observation.images.front"].numpy().transpose(1, 2, 0), expected)
    assert sorted(read_image_histograms(out, CAMS)["observation.images.front"]) == [0, 1, 2]


def _broken_copy(tmp_path: Path, edit) -> Path:
    src = tmp_path / "v21"
    shutil.copytree(V21, src)
    edit(src)
    return src


@pytest.mark.parametrize(
    "edit, error, named",
    [
        (lambda r: (r / "videos/chunk-000/observation.images.wrist/episode_000001.mp4").unlink(), FileNotFoundError,
         "observation.images.wrist/episode_000001.mp4"),
        (lambda r: (r / "data/chunk-000/episode_000002.parquet").unlink(), FileNotFoundError, "episode_000002.parquet"),
        (lambda r: (r / "meta/episodes.jsonl").write_text(
            (V21 / "meta/episodes.jsonl").read_text().replace('"length": 12', '"length": 13')), ValueError,
         "episode_000001.parquet: 12 rows"),
        (lambda r: (r / "meta/tasks.jsonl").write_text('{"task_index": 0, "task": "pick the cube"}\n'), ValueError,
         "'place the cube' is not in"),
        (lambda r: (r / "meta/episodes.jsonl").write_text("{not json\n"), ValueError, "episodes.jsonl:1: not JSON"),
    ],
)
def test_convert_v21_errors_name_the_file_and_write_nothing(tmp_path: Path, edit, error, named: str) -> None:
    src = _broken_copy(tmp_path, edit)
    before = tree_digest(src)
    out = tmp_path / "out"
    with pytest.raises(error, match=named.replace("(", r"\(")):
        convert_v21(src, out)
    assert tree_digest(src) == before
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out") and not p.name.endswith(".lock")]


def test_convert_v21_accepts_info_without_total_chunks_and_total_videos(tmp_path: Path) -> None:
    """LeRobot's converter raises KeyError on an info.json without them; both forms convert here."""
    src = tmp_path / "v21"
    shutil.copytree(V21, src)
    info = json.loads((src / "meta/info.json").read_text())
    del info["total_chunks"], info["total_videos"]
    (src / "meta/info.json").write_text(json.dumps(info, indent=4))
    convert_v21(src, tmp_path / "out")
    assert_valid(tmp_path / "out")


def test_convert_v21_refuses_other_versions(tmp_path: Path) -> None:
    before = tree_digest(V3_LEROBOT)
    with pytest.raises(NotAV21DatasetError, match=r"lerobot-v3-tiny/meta/info.json: codebase_version is 'v3.0', not 'v2.1'"):
        convert_v21(V3_LEROBOT, tmp_path / "out")
    assert tree_digest(V3_LEROBOT) == before and not (tmp_path / "out").exists()


def test_convert_v21_output_rules(tmp_path: Path) -> None:
    src = tmp_path / "v21"
    shutil.copytree(V21, src)
    before = tree_digest(src)
    out = tmp_path / "out"
    convert_v21(src, out)
    with pytest.raises(OutputExistsError):
        convert_v21(src, out)
    convert_v21(src, out, overwrite=True)
    with pytest.raises(OutputIsInputError):
        convert_v21(src, src / "inside")
    assert tree_digest(src) == before
    assert_valid(out)


def test_import_resolves_a_v21_root_to_its_conversion(tmp_path: Path) -> None:
    src = tmp_path / "v21"
    shutil.copytree(V21, src)
    before = tree_digest(src)
    downloads = tmp_path / "home/downloads/tiny"
    root = resolve_dataset(str(src), download_dir=downloads)
    assert root == converted_root(downloads) and root.parent == downloads.parent
    assert_valid(root)
    stamp = (root / "meta/info.json").stat().st_mtime_ns
    assert resolve_dataset(str(src), download_dir=downloads) == root
    assert (root / "meta/info.json").stat().st_mtime_ns == stamp  # reused, not converted again
    shutil.rmtree(src / "videos/chunk-000/observation.images.wrist")
    shutil.copytree(V21 / "videos/chunk-000/observation.images.front", src / "videos/chunk-000/observation.images.wrist")
    # The input changed (other files): converted again. The wrist camera now holds the front frames.
    info = json.loads((src / "meta/info.json").read_text())
    info["features"]["observation.images.wrist"]["shape"] = [48, 64, 3]
    (src / "meta/info.json").write_text(json.dumps(info, indent=4))
    again = resolve_dataset(str(src), download_dir=downloads)
    assert again == root and (root / "meta/info.json").stat().st_mtime_ns != stamp
    assert DatasetInfo.load(root).features["observation.images.wrist"].info["video.width"] == 64  # type: ignore[index]
    assert tree_digest(src) != before  # (edited by this test, never by the import)
    # A v3 root resolves to itself.
    assert resolve_dataset(str(V3_LEROBOT), download_dir=tmp_path / "other") == V3_LEROBOT


# ----------------------------------------------------------------------------- image -> video
IMAGE_KEY = "observation.images.top"


@pytest.fixture(scope="module")
def image_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[dict]]]:
    """Our writer's dataset with two video cameras and one image camera (PNG in the parquet)."""
    root = tmp_path_factory.mktemp("images") / "ds"
    features = dict(FEATURES) | {IMAGE_KEY: {"dtype": "image", "shape": [24, 32, 3], "names": ["height", "width", "channels"]}}
    rng = np.random.default_rng(3)
    episodes = []
    with DatasetWriter.create(root, fps=30, features=features, robot_type="so100") as w:
        for i, n in enumerate([7, 5, 9]):
            frames = []
            for t in range(n):
                frame = make_frame(rng, t, ["pick", "place"][i % 2])
                y, x = np.mgrid[0:24, 0:32]
                frame[IMAGE_KEY] = np.stack([(x * 6 + t * 9) % 256, (y * 7 + i * 30) % 256, np.full_like(x, 128)], -1).astype(np.uint8)
                w.add_frame(frame)
                frames.append(frame)
            w.save_episode()
            episodes.append(frames)
    return root, episodes


def test_image_to_video(image_dataset: tuple[Path, list[list[dict]]], tmp_path: Path) -> None:
    src, episodes = image_dataset
    before = tree_digest(src)
    out = tmp_path / "video"
    result = convert_image_to_video(src, out)
    assert tree_digest(src) == before
    assert (result.episodes, result.frames) == (3, 21)
    assert_valid(out)
    info = DatasetInfo.load(out)
    feature = info.features[IMAGE_KEY]
    assert feature.dtype == "video" and feature.info is not None
    assert (feature.info["video.codec"], feature.info["video.g"], feature.info["video.height"]) == ("av1", 2, 24)
    assert list(info.features) == list(DatasetInfo.load(src).features)  # same order, same keys

    old, new = data_table(src), data_table(out)
    assert IMAGE_KEY not in new.column_names
    assert new.column_names == [c for c in old.column_names if c != IMAGE_KEY]
    for name in new.column_names:
        assert new.column(name).to_pylist() == old.column(name).to_pylist(), name
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in (out / "data").rglob("*.parquet")] == [3]

    # The existing cameras are copied unchanged.
    for key in CAMS:
        assert (out / f"videos/{key}/chunk-000/file-000.mp4").read_bytes() == (src / f"videos/{key}/chunk-000/file-000.mp4").read_bytes()

    # Decoded frames close to the recorded images, at the right positions; each episode starts on a keyframe.
    ds = LeRobotV3Dataset(out, return_uint8=True)
    flat = [f for ep in episodes for f in ep]
    diffs = [np.abs(ds[i][IMAGE_KEY].numpy().transpose(1, 2, 0).astype(int) - flat[i][IMAGE_KEY].astype(int)).mean() for i in range(len(ds))]
    assert max(diffs) < 6, diffs
    rows = read_episodes(out).to_pylist()
    with av.open(str(out / f"videos/{IMAGE_KEY}/chunk-000/file-000.mp4")) as c:
        stream = c.streams.video[0]
        keyframes = {round(float(p.pts * stream.time_base) * 30) for p in c.demux(stream) if p.size and p.is_keyframe}
    assert {round(r[f"videos/{IMAGE_KEY}/from_timestamp"] * 30) for r in rows} <= keyframes
    assert [r[f"videos/{IMAGE_KEY}/to_timestamp"] for r in rows] == pytest.approx([7 / 30, 12 / 30, 21 / 30], abs=1e-12)

    # Episode rows complete: tasks and exact stats of the encoded images, histograms in the sidecar.
    old_rows = read_episodes(src).to_pylist()
    hists = read_image_histograms(out, [IMAGE_KEY, *CAMS])
    for r, o, frames in zip(rows, old_rows, episodes):
        assert r["tasks"] == o["tasks"]
        acc = ImageStatsAccumulator()
        for f in frames:
            acc.update(f[IMAGE_KEY])
        assert np.array_equal(hists[IMAGE_KEY][r["episode_index"]], acc.hist)
        assert np.array_equal(hists[CAMS[0]][r["episode_index"]], read_image_histograms(src, CAMS)[CAMS[0]][o["episode_index"]])
        expected = acc.stats()
        assert expected is not None
        got = unflatten_stats(r)
        for stat in ("min", "max", "mean", "std", "count", "q01", "q99"):
            np.testing.assert_allclose(got[IMAGE_KEY][stat], expected[stat])
        np.testing.assert_allclose(got["action"]["q50"], unflatten_stats(o)["action"]["q50"])
    new_stats, old_stats = read_stats(out), read_stats(src)
    for key in (IMAGE_KEY, "observation.state", CAMS[1]):
        for stat in ("mean", "q10", "q90", "count"):
            np.testing.assert_allclose(new_stats[key][stat], old_stats[key][stat], err_msg=f"{key}.{stat}")


def test_image_to_video_after_v21_image_mode_conversion_with_another_encoder(tmp_path: Path) -> None:
    """A LeRobot image-mode dataset (v2.1, converted) whose every camera is an image, to H.264."""
    v21 = make_v21.write_v21_dataset(tmp_path / "v21", image_mode=True)
    v3 = tmp_path / "v3"
    convert_v21(v21, v3)
    before = tree_digest(v3)
    out = tmp_path / "video"
    convert_image_to_video(v3, out, VideoEncoderConfig(vcodec="libx264", crf=10, g=2), workers=2)
    assert tree_digest(v3) == before
    assert_valid(out)
    info = DatasetInfo.load(out)
    assert info.video_keys == CAMS and info.video_path is not None
    assert info.features[CAMS[0]].info["video.codec"] == "h264"  # type: ignore[index]
    ds = LeRobotV3Dataset(out, return_uint8=True)
    for i, (ep, t) in enumerate((ep, t) for ep, n in enumerate(LENGTHS) for t in range(n)):
        expected = make_v21.episode_frames(ep)[CAMS[1]][t]
        assert np.abs(ds[i][CAMS[1]].numpy().transpose(1, 2, 0).astype(int) - expected.astype(int)).mean() < 4


def test_image_to_video_without_images_names_the_dtypes(tmp_path: Path) -> None:
    before = tree_digest(V3_LEROBOT)
    out = tmp_path / "out"
    with pytest.raises(NoImageFeaturesError, match=r"no image features.*float32: observation.state, action.*video: observation.images.front, observation.images.wrist"):
        convert_image_to_video(V3_LEROBOT, out)
    assert tree_digest(V3_LEROBOT) == before and not out.exists()


def test_image_to_video_refuses_an_existing_output(image_dataset: tuple[Path, list[list[dict]]], tmp_path: Path) -> None:
    src, _ = image_dataset
    before = tree_digest(src)
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError):
        convert_image_to_video(src, tmp_path / "out")
    assert tree_digest(src) == before and list((tmp_path / "out").iterdir()) == []
