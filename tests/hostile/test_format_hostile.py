"""Hostile and careless input to the format layer, the validator, the byte index and the dataset
commands (issue "Hostile and careless input", items 11, 12).

Each case breaks a copy of the LeRobot-written fixture one way and runs the real command line:
the command must answer with one line naming the file and the problem (or, for `validate`, a
problem line), exit 1 (2: not a dataset), never hang (every run has a timeout), never leave the
input changed and never write anywhere: the whole temporary directory, the input and everything
around it, hashes the same before and after.
"""

import json
import os
import shutil
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
CASES = [*METADATA_FILE_CASES, *ONE_LINE_CASES]


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


# --------------------------------------------------------------------------- 12: the inbox's session.json
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
