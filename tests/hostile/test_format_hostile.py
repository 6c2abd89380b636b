"""Hostile and careless input to the format layer, the validator, the byte index and the dataset
commands (issue "Hostile and careless input", items 5, 7, 8, 11, 12).

Each case breaks a copy of the LeRobot-written fixture one way and runs the real command line:
the command must answer with one line naming the file and the problem (or, for `validate`, a
problem line), exit 1 (2: not a dataset), never hang (every run has a timeout), never leave the
input changed and never write anywhere: the whole temporary directory, the input and everything
around it, hashes the same before and after.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import FIXTURE
from hostile_support import assert_one_line_error, run_cli, tree_digest

EPISODES = "meta/episodes/chunk-000/file-000.parquet"
DATA = "data/chunk-000/file-000.parquet"
FRONT = "observation.images.front"
FRONT_VIDEO = f"videos/{FRONT}/chunk-000/file-000.mp4"
# A hang fails its case after this long instead of blocking the suite (a good run takes ~1.5 s).
CASE_TIMEOUT_S = 30

pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason="LeRobot-written fixture not available")


def copy_fixture(tmp_path: Path) -> Path:
    """A writable copy at tmp_path/ds/ds: escapes of one and two levels still land inside tmp_path."""
    root = tmp_path / "ds" / "ds"
    shutil.copytree(FIXTURE, root)
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


# --------------------------------------------------------------------------- ways to break a copy
def edit_info(root: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    result = edit(info)
    path.write_text(json.dumps(info if result is None else result, indent=4))


def rename_columns(path: Path, rename: Callable[[str], str]) -> None:
    table = pq.read_table(path)
    pq.write_table(table.rename_columns([rename(c) for c in table.column_names]), path)


def rename_camera(root: Path, new: str, *, in_info: bool = True) -> None:
    """Camera FRONT renamed to `new` everywhere a forger would rename it: info.json (keeping key
    order), stats.json, the episodes columns, and its video folder moved to where `new` points."""
    if in_info:
        edit_info(root, lambda info: info.update(features={(new if k == FRONT else k): v for k, v in info["features"].items()}))
        stats = json.loads((root / "meta/stats.json").read_text())
        stats[new] = stats.pop(FRONT)
        (root / "meta/stats.json").write_text(json.dumps(stats))
    rename_columns(root / EPISODES, lambda c: c.replace(f"/{FRONT}/", f"/{new}/"))
    target = Path(os.path.normpath(root / "videos" / new))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(root / "videos" / FRONT, target)


def move_data_outside(root: Path) -> None:
    shutil.move(root / "data", root.parent / "outside_data")
    edit_info(root, lambda info: info.update(data_path="../outside_data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"))


def absolute_video_path(root: Path) -> None:
    elsewhere = root.parent / "abs_videos"
    shutil.move(root / "videos", elsewhere)
    edit_info(root, lambda info: info.update(video_path=f"{elsewhere}/{{video_key}}/chunk-{{chunk_index:03d}}/file-{{file_index:03d}}.mp4"))


def make_fifo(rel: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / rel).unlink()
        os.mkfifo(root / rel)
    return setup


def link_to_dev_zero(rel: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / rel).unlink()
        (root / rel).symlink_to("/dev/zero")
    return setup


def truncate(rel: str, keep: float) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        data = (root / rel).read_bytes()
        (root / rel).write_bytes(data[: int(len(data) * keep)])
    return setup


def huge_info(root: Path) -> None:
    # Sparse: 65 MiB on paper, nothing on disk; one byte over the 64 MiB cap.
    os.truncate(root / "meta/info.json", 65 * 2**20)


def remove(rel: str) -> Callable[[Path], None]:
    return lambda root: (root / rel).unlink()


def set_info(**changes: Any) -> Callable[[Path], None]:
    return lambda root: edit_info(root, lambda info: info.update(changes))


def null_task(root: Path) -> None:
    table = pq.read_table(root / EPISODES)
    tasks = table.column("tasks").to_pylist()
    tasks[1] = [*tasks[1], None]
    pq.write_table(table.set_column(table.column_names.index("tasks"), "tasks", pa.array(tasks, table.schema.field("tasks").type)),
                   root / EPISODES)


def drop_column(rel: str, name: str) -> Callable[[Path], None]:
    return lambda root: pq.write_table(pq.read_table(root / rel).drop_columns([name]), root / rel)


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Path], None]
    command: str  # validate | info | byte-index
    code: int
    fragment: str  # in the one `error:` line, or (validate, exit 1) in an ERROR problem line


# 12: metadata that is not a regular file, or too large; byte-index without info.json.
METADATA_FILE_CASES = [
    Case("no-info/byte-index", remove("meta/info.json"), "byte-index", 1, "meta/info.json is missing"),
    Case("info-fifo/validate", make_fifo("meta/info.json"), "validate", 1, "ERROR meta/info.json: is a FIFO"),
    Case("info-fifo/info", make_fifo("meta/info.json"), "info", 1, "meta/info.json: is a FIFO"),
    Case("info-fifo/byte-index", make_fifo("meta/info.json"), "byte-index", 1, "meta/info.json: is a FIFO"),
    Case("info-dev-zero/validate", link_to_dev_zero("meta/info.json"), "validate", 1, "ERROR meta/info.json: is a character device"),
    Case("info-dev-zero/info", link_to_dev_zero("meta/info.json"), "info", 1, "meta/info.json: is a character device"),
    Case("info-dev-zero/byte-index", link_to_dev_zero("meta/info.json"), "byte-index", 1, "meta/info.json: is a character device"),
    Case("info-huge/validate", huge_info, "validate", 1, "ERROR meta/info.json: is larger than 64 MiB"),
    Case("info-huge/byte-index", huge_info, "byte-index", 1, "meta/info.json: is larger than 64 MiB"),
    Case("stats-fifo/validate", make_fifo("meta/stats.json"), "validate", 1, "ERROR meta/stats.json: is a FIFO"),
    Case("stats-dev-zero/validate", link_to_dev_zero("meta/stats.json"), "validate", 1, "ERROR meta/stats.json: is a character device"),
    Case("tasks-fifo/validate", make_fifo("meta/tasks.parquet"), "validate", 1, "ERROR meta/tasks.parquet: is a FIFO"),
    Case("tasks-fifo/info", make_fifo("meta/tasks.parquet"), "info", 1, "meta/tasks.parquet: is a FIFO"),
    Case("episodes-fifo/validate", make_fifo(EPISODES), "validate", 1, f"ERROR {EPISODES}: is a FIFO"),
    Case("episodes-fifo/info", make_fifo(EPISODES), "info", 1, f"{EPISODES}: is a FIFO"),
    Case("episodes-fifo/byte-index", make_fifo(EPISODES), "byte-index", 1, f"{EPISODES}: is a FIFO"),
    Case("data-fifo/validate", make_fifo(DATA), "validate", 1, f"ERROR {DATA} [episode 0]: data file is a FIFO"),
    Case("video-fifo/validate", make_fifo(FRONT_VIDEO), "validate", 1, f"ERROR {FRONT_VIDEO} [episode 0]: video file is a FIFO"),
    Case("video-fifo/byte-index", make_fifo(FRONT_VIDEO), "byte-index", 1, f"{FRONT_VIDEO}: video file is a FIFO"),
]
# 11: one line naming the file, not a traceback or a bare parser message (exit 0: must not crash).
ONE_LINE_CASES = [
    Case("info-truncated/byte-index", truncate("meta/info.json", 0.05), "byte-index", 1, "meta/info.json: invalid JSON"),
    Case("info-truncated/info", truncate("meta/info.json", 0.05), "info", 1, "meta/info.json: invalid JSON"),
    Case("info-truncated/validate", truncate("meta/info.json", 0.05), "validate", 1, "ERROR meta/info.json: invalid JSON"),
    Case("episodes-half/byte-index", truncate(EPISODES, 0.5), "byte-index", 1, f"{EPISODES}: unreadable episodes parquet"),
    Case("episodes-half/info", truncate(EPISODES, 0.5), "info", 1, f"{EPISODES}: unreadable episodes parquet"),
    Case("info-array/info", lambda r: edit_info(r, lambda info: [info]), "info", 1,
         "meta/info.json: is not a JSON object (it holds a JSON array)"),
    Case("info-array/byte-index", lambda r: edit_info(r, lambda info: [info]), "byte-index", 1,
         "meta/info.json: is not a JSON object (it holds a JSON array)"),
    Case("info-array/validate", lambda r: edit_info(r, lambda info: [info]), "validate", 1,
         "ERROR meta/info.json: is not a JSON object (it holds a JSON array)"),
    Case("info-wrong-types/info", set_info(fps="thirty", total_episodes=[3]), "info", 1,
         "meta/info.json: does not match the info.json schema at fps: Input should be a valid integer, unable to parse string "
         "as an integer (got 'thirty') (and 1 more problems)"),
    Case("feature-shape-not-a-list/info", lambda r: edit_info(r, lambda info: info["features"]["action"].update(shape=6)), "info", 1,
         "meta/info.json: does not match the info.json schema at features.action.shape: shape must be a list of dimensions"),
    Case("fps-zero/validate", set_info(fps=0), "validate", 1,
         "ERROR meta/info.json: does not match the info.json schema at fps: Input should be greater than 0"),
    Case("fps-zero/info", set_info(fps=0), "info", 1, "meta/info.json: does not match the info.json schema at fps"),
    Case("episodes-null-task/validate", null_task, "validate", 1, f"ERROR {EPISODES}: column 'tasks' holds null task names"),
    Case("episodes-half-location-pair/validate", drop_column(EPISODES, "meta/episodes/file_index"), "validate", 0, "0 errors"),
]
# 8: escapes from the root through a camera key, data_path or video_path.
ESCAPE_CASES = [
    Case("camera-key-dotdot/validate", lambda r: rename_camera(r, "../../escaped_cam"), "validate", 1,
         "ERROR meta/info.json: does not match the info.json schema at features: feature name '../../escaped_cam' contains '/'"),
    Case("camera-key-dotdot/info", lambda r: rename_camera(r, "../../escaped_cam"), "info", 1,
         "meta/info.json: does not match the info.json schema at features: feature name '../../escaped_cam'"),
    Case("camera-key-dotdot/byte-index", lambda r: rename_camera(r, "../../escaped_cam"), "byte-index", 1,
         "camera key '../../escaped_cam' contains '/'"),
    Case("episodes-column-key-dotdot/byte-index", lambda r: rename_camera(r, "../../escaped_cam", in_info=False), "byte-index", 1,
         f"{EPISODES}: column videos/../../escaped_cam/...: camera key '../../escaped_cam' contains '/'"),
    Case("camera-key-dotdot-only/validate", lambda r: rename_camera(r, "..", in_info=True), "validate", 1,
         "feature name '..' is '..'"),
    Case("data-path-dotdot/validate", move_data_outside, "validate", 1,
         "ERROR meta/info.json: does not match the info.json schema at data_path: data_path '../outside_data/"),
    Case("data-path-dotdot/info", move_data_outside, "info", 1, "has a '..' part (it would leave the dataset root)"),
    Case("video-path-absolute/validate", absolute_video_path, "validate", 1, "is absolute (it must be relative to the dataset root)"),
    Case("video-path-absolute/byte-index", absolute_video_path, "byte-index", 1, "video_path '/"),
]
# 5: a template we cannot honour is named up front.
TEMPLATE_CASES = [
    Case("data-path-unknown-placeholder/validate", set_info(data_path="data/{episode_index}.parquet"), "validate", 1,
         "data_path 'data/{episode_index}.parquet' has the placeholder {episode_index}"),
    Case("data-path-no-file-index/info", set_info(data_path="data/chunk-{chunk_index:03d}/file.parquet"), "info", 1,
         "lacks {file_index}"),
    Case("video-path-glob/byte-index",
         set_info(video_path="videos/{video_key}/*/file-{chunk_index:03d}-{file_index:03d}.mp4"), "byte-index", 1,
         "contains glob characters"),
    Case("video-path-char-spec/validate",
         set_info(video_path="videos/{video_key}/chunk-{chunk_index:c}/file-{file_index:03d}.mp4"), "validate", 1,
         "formats {chunk_index} with 'c'"),
]
CASES = [*METADATA_FILE_CASES, *ONE_LINE_CASES, *ESCAPE_CASES, *TEMPLATE_CASES]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_metadata(tmp_path: Path, case: Case) -> None:
    root = copy_fixture(tmp_path)
    case.setup(root)
    before = tree_digest(tmp_path)
    proc = run_cli([case.command, str(root)], cwd=tmp_path, timeout=CASE_TIMEOUT_S)
    if case.code == 0:
        assert proc.returncode == 0 and case.fragment in proc.stdout, proc.stdout + proc.stderr
    elif case.command == "validate" and case.code == 1:
        detail = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        assert proc.returncode == 1, detail
        assert "Traceback" not in proc.stdout + proc.stderr, detail
        assert any(case.fragment in line for line in proc.stdout.splitlines()), detail
        assert "INVALID" in proc.stderr, detail
    else:
        assert_one_line_error(proc, case.code, case.fragment)
    assert tree_digest(tmp_path) == before  # nothing changed, nothing written, in or around the input


# --------------------------------------------------------------------------- 5: custom templates
CUSTOM_DATA = "data/chunk-{chunk_index:03d}/part-{file_index:03d}.parquet"
CUSTOM_VIDEO = "videos/{video_key}/chunk-{chunk_index:03d}/clip-{file_index:03d}.mp4"


def custom_templates(root: Path) -> None:
    (root / DATA).rename(root / "data/chunk-000/part-000.parquet")
    for video in sorted((root / "videos").glob("*/chunk-000/file-000.mp4")):
        video.rename(video.with_name("clip-000.mp4"))
    edit_info(root, lambda info: info.update(data_path=CUSTOM_DATA, video_path=CUSTOM_VIDEO))


def test_custom_templates_are_listed_from_the_templates(tmp_path: Path) -> None:
    from lerobot_assets.format.episodes import read_episodes
    from lerobot_assets.format.meta import DatasetMeta
    from lerobot_assets.format.templates import dataset_files

    root = copy_fixture(tmp_path)
    custom_templates(root)
    meta = DatasetMeta(root)
    # The files the dataset's own templates name; before, DatasetMeta named LeRobot's defaults.
    assert meta.data_file(0, 0) == root / "data/chunk-000/part-000.parquet"
    assert meta.video_file(FRONT, 0, 0) == root / f"videos/{FRONT}/chunk-000/clip-000.mp4"
    files = dataset_files(meta.info.data_path, meta.info.video_path, meta.info.video_keys, read_episodes(root).to_pydict())
    assert [(f.kind, f.rel, f.video_key, f.episodes) for f in files] == [
        ("data", "data/chunk-000/part-000.parquet", None, (0, 1, 2)),
        ("video", f"videos/{FRONT}/chunk-000/clip-000.mp4", FRONT, (0, 1, 2)),
        ("video", "videos/observation.images.wrist/chunk-000/clip-000.mp4", "observation.images.wrist", (0, 1, 2)),
    ]
    assert all((root / f.rel).is_file() for f in files)
    proc = run_cli(["validate", str(root)], cwd=tmp_path, timeout=CASE_TIMEOUT_S)
    assert proc.returncode == 0 and "0 errors, 0 warnings" in proc.stdout, proc.stdout + proc.stderr
    proc = run_cli(["byte-index", str(root)], cwd=tmp_path, timeout=CASE_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    segments = pq.read_table(root / "meta/byte_index/segments.parquet")
    assert sorted(set(segments.column("path").to_pylist())) == [
        f"videos/{FRONT}/chunk-000/clip-000.mp4", "videos/observation.images.wrist/chunk-000/clip-000.mp4"]


@pytest.mark.parametrize(("template", "kind", "problem"), [
    ("data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet", "data", None),
    ("data/{chunk_index}/{file_index}.parquet", "data", None),
    ("videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4", "video", None),
    ("../data/{chunk_index}/{file_index}.parquet", "data", "has a '..' part"),
    ("/data/{chunk_index}/{file_index}.parquet", "data", "is absolute"),
    ("data/{chunk_index}//{file_index}.parquet", "data", "has an empty or '.' part"),
    ("data\\{chunk_index}\\{file_index}.parquet", "data", "contains a backslash"),
    ("data/{chunk_index}/{file_index}.parquet", "video", "lacks {video_key}"),
    ("videos/{video_key:.2}/{chunk_index}/{file_index}.mp4", "video", "formats {video_key} with a spec"),
    ("data/{chunk_index!r}/{file_index}.parquet", "data", "converts {chunk_index!r}"),
    ("data/{chunk_index.real}/{file_index}.parquet", "data", "has the placeholder {chunk_index.real}"),
    ("data/{}/{file_index}.parquet", "data", "has the placeholder {}"),
    ("data/{chunk_index/{file_index}.parquet", "data", "is not a format string"),
    ("data/[ab]/{chunk_index}/{file_index}.parquet", "data", "contains glob characters"),
    (None, "data", "is a NoneType, not a string"),
])
def test_template_rules(template: Any, kind: Any, problem: str | None) -> None:
    from lerobot_assets.format.templates import template_problem

    found = template_problem(template, kind)
    assert (found is None) if problem is None else (found is not None and problem in found), found


@pytest.mark.parametrize(("key", "problem"), [
    ("observation.images.front", None),
    ("cam..left", None),
    ("..", "is '..'"),
    (".", "is '.'"),
    ("../../x", "contains '/'"),
    ("/abs/path", "contains '/'"),
    ("a\\b", "contains a backslash"),
    ("a\x00b", "control character"),
    ("", "is empty"),
])
def test_key_rules(key: str, problem: str | None) -> None:
    from lerobot_assets.format.names import name_problem

    found = name_problem(key, "key")
    assert (found is None) if problem is None else (found is not None and problem in found), found


# --------------------------------------------------------------------------- 8: merge and inbox
def test_merge_of_an_escaping_source_writes_nothing_outside(tmp_path: Path) -> None:
    from lerobot_assets.tools.merge import merge_datasets

    root = copy_fixture(tmp_path)
    rename_camera(root, "../../escaped_cam")
    before = tree_digest(tmp_path)
    output = tmp_path / "out" / "merged"
    with pytest.raises(ValueError, match=r"feature name '\.\./\.\./escaped_cam' contains '/'"):
        merge_datasets([("bad", root)], output)
    after = tree_digest(tmp_path)
    appeared = sorted(set(after) - set(before))
    # Only the merge's own lock beside the output (and its folder); no escaped_cam anywhere new.
    assert all(p in ("out", "out/.merged.lock") for p in appeared), appeared
    assert not output.exists()


@pytest.mark.parametrize("escape", ["relative", "absolute"])
def test_inbox_camera_key_must_be_a_name(tmp_path: Path, escape: str) -> None:
    from test_defs_support import CAM, make_inbox_session

    from lerobot_assets.sources.inbox import RawFormatError, read_session

    session = make_inbox_session(tmp_path, "s1", [3])
    key = "../../../../ESCAPED_CAM" if escape == "relative" else str(tmp_path / "abs" / "cam")
    # The PNG frames the forged key points at exist, so nothing but the key itself is wrong.
    shutil.copytree(session / "episode_000000" / CAM, os.path.normpath(session / "episode_000000" / key))
    spec_path = session / "session.json"
    spec = json.loads(spec_path.read_text())
    spec["cameras"] = {key: spec["cameras"][CAM]}
    spec_path.write_text(json.dumps(spec))
    before = tree_digest(tmp_path)
    with pytest.raises(RawFormatError) as err:
        read_session(session)
    assert str(err.value).splitlines()[0] == f"{spec_path}: cameras: camera key {key!r} contains '/' (a key is one path component)"
    assert tree_digest(tmp_path) == before


def test_inbox_session_json_fifo_is_named(tmp_path: Path) -> None:
    from test_defs_support import make_inbox_session

    from lerobot_assets.sources.inbox import validate_session

    session = make_inbox_session(tmp_path, "s1", [3])
    (session / "session.json").unlink()
    os.mkfifo(session / "session.json")
    _, problems = _with_timeout(lambda: validate_session(session), CASE_TIMEOUT_S)
    assert [str(p) for p in problems] == [f"{session / 'session.json'}: is a FIFO"]


def _with_timeout(fn: Callable[[], Any], seconds: float) -> Any:
    """fn() in a worker thread; fails the test (instead of hanging it) when it takes longer."""
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as FutureTimeout

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(fn).result(timeout=seconds)
    except FutureTimeout:
        pytest.fail(f"hung for more than {seconds} s")
    finally:
        pool.shutdown(wait=False)


# --------------------------------------------------------------------------- 7: validate during an append
APPEND_FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [2], "names": None},
    "action": {"dtype": "float32", "shape": [2], "names": None},
    "observation.images.cam": {"dtype": "video", "shape": [16, 24, 3], "names": ["height", "width", "channels"]},
}


APPENDER = """
import sys
import numpy as np
from lerobot_assets.recording import DatasetWriter

writer = DatasetWriter.open(sys.argv[1])
print("ready", flush=True)
t = 0
while True:  # 3-frame episodes until killed
    for _ in range(3):
        writer.add_frame({
            "observation.state": np.full(2, t, np.float32),
            "action": np.full(2, -t, np.float32),
            "observation.images.cam": np.full((16, 24, 3), t % 256, np.uint8),
            "task": "append",
        })
        t += 1
    writer.save_episode()
"""


def test_validate_during_an_append_sees_one_version(tmp_path: Path) -> None:
    import numpy as np

    from lerobot_assets.checks.validate import validate_dataset
    from lerobot_assets.recording import DatasetWriter

    root = tmp_path / "ds"
    with DatasetWriter.create(root, fps=30, features=APPEND_FEATURES, robot_type="test") as writer:
        for _ in range(3):
            writer.add_frame({"observation.state": np.zeros(2, np.float32), "action": np.zeros(2, np.float32),
                              "observation.images.cam": np.zeros((16, 24, 3), np.uint8), "task": "append"})
        writer.save_episode()
    assert validate_dataset(root).ok
    env = os.environ | {"SDL_VIDEODRIVER": "dummy", "SVT_LOG": "1"}
    appender = subprocess.Popen([sys.executable, "-c", APPENDER, str(root)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert appender.stdout is not None and appender.stdout.readline().strip() == "ready"
        seen: set[int] = set()
        deadline = time.monotonic() + 60  # a loaded machine appends slowly; 5 versions take ~1 s here
        while time.monotonic() < deadline and len(seen) < 5:
            report = validate_dataset(root)
            assert report.ok, "\n".join(str(p) for p in report.problems) + "\n" + report.summary()
            assert not report.warnings, [str(p) for p in report.warnings]
            seen.add(report.num_episodes)
        assert appender.poll() is None, "the appender died"
        # The validations really ran while the dataset grew, at several versions.
        assert len(seen) >= 3, seen
    finally:
        appender.kill()
        appender.wait(10)
