"""kill -9 at many points inside every operation that writes, then a plain re-run: the result must
equal an uninterrupted run's (same files, same episodes and frames, same table contents, valid), with
no stray temp files.

The kill points are the operation's durable filesystem steps (see fault_runner.py), counted in an
uninterrupted run; each test kills before the first and the last step and at seeded random steps in
between, so every run checks the same points.
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_defs_support import make_inbox_session

from lerobot_assets.checks.validate import validate_dataset
from lerobot_assets.home import HomeLayout, normalize_session

RUNNER = Path(__file__).with_name("fault_runner.py")
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot-v3-tiny"
POINTS = 4  # kill points per operation, besides the first and the last step
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Operation:
    name: str
    args: list[str]  # fault_runner arguments: ["--cli", ...] or ["--py", code]
    setup: Callable[[Path], None]  # prepares the state before the operation, in a fresh folder
    target: str  # what the operation writes, relative to the folder
    signature: Callable[[Path], Any]  # what must equal the uninterrupted run's
    functions: str = ""  # extra kill points: entries of these functions (see fault_runner.py)


def _run(op: Operation, cwd: Path, fault_at: int = 0, count_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "SDL_VIDEODRIVER": "dummy", "SVT_LOG": "1", "LEROBOT_FAULT_AT": str(fault_at), "LEROBOT_FAULT_FUNCTIONS": op.functions,
    }
    if count_file is not None:
        env["LEROBOT_FAULT_COUNT_FILE"] = str(count_file)
    return subprocess.run([sys.executable, str(RUNNER), *op.args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _files(root: Path) -> list[str]:
    """Every file and folder under `root` except the writer's lock file (a plain re-run leaves it)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name != "writer.lock")


def _table(paths: list[Path], drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    if not paths:
        return []
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    return table.drop_columns([c for c in table.column_names if c.startswith(drop)]).to_pylist()


def dataset_signature(root: Path) -> dict[str, Any]:
    report = validate_dataset(root)
    assert report.ok, [str(p) for p in report.problems]
    info = json.loads((root / "meta" / "info.json").read_text())
    return {
        "files": _files(root),
        "totals": (info["total_episodes"], info["total_frames"], info["total_tasks"]),
        "data": _table(sorted(root.glob("data/*/*.parquet"))),
        "episodes": _table(sorted(root.glob("meta/episodes/*/*.parquet")), drop=("stats/",)),
        "tasks": pq.read_table(root / "meta" / "tasks.parquet").to_pylist(),
    }


def byte_index_signature(root: Path) -> dict[str, Any]:
    index = root / "meta" / "byte_index"
    volatile = ("file_mtime_ns", "file_fingerprint")
    return {"files": _files(root), **{p.name: _table([p], drop=volatile) for p in sorted(index.glob("*.parquet"))}}


def catalog_signature(home: Path) -> dict[str, Any]:
    from lerobot_assets.sql import QuerySession

    with QuerySession.open(home) as session:
        served = dict(session.served)
        models = sorted(session.project.models)
        # Rows may hold absolute paths, which differ between the reference folder and this one.
        rows = {m: sorted(repr(r).replace(str(home), "<home>") for r in session.query(f'SELECT * FROM "{m}"').to_pylist()) for m in models}
    assert served and all(how != "computed" for how in served.values()), served  # answered from the catalog
    return {"files": _files(home / "catalog"), "rows": rows}


# ------------------------------------------------------------------------------------------ setups
def _nothing(folder: Path) -> None:
    pass


def _raw_session(folder: Path) -> None:
    make_inbox_session(folder / "home", "a", [4, 3, 5])
    normalize_session("inbox-a", HomeLayout(folder / "home"))


def _two_sessions(folder: Path) -> None:
    from lerobot_assets.home import build_session_dataset, read_raw_summary

    layout = HomeLayout(folder / "home")
    for name, lengths in (("a", [4, 3]), ("b", [5])):
        make_inbox_session(layout.root, name, lengths, start=100.0 if name == "b" else 0.0)
        normalize_session(f"inbox-{name}", layout)
        build_session_dataset(read_raw_summary(layout, f"inbox-{name}"), layout.session(f"inbox-{name}"))


def _merged_a_then_two(folder: Path) -> None:
    from lerobot_assets.tools.merge import merge_datasets

    _two_sessions(folder)
    layout = HomeLayout(folder / "home")
    merge_datasets([("inbox-a", layout.session("inbox-a"))], layout.dataset())


def _fixture_copy(folder: Path) -> None:
    shutil.copytree(FIXTURE, folder / "ds")


def _fixture_home(folder: Path) -> None:
    shutil.copytree(FIXTURE, folder / "home" / "datasets" / "tiny")


_BUILD = (
    "from pathlib import Path\n"
    "from lerobot_assets.home import HomeLayout, build_session_dataset, read_raw_summary\n"
    "layout = HomeLayout(Path('home').absolute())\n"
    "build_session_dataset(read_raw_summary(layout, 'inbox-a'), layout.session('inbox-a'))\n"
)
_MERGE = (
    "from pathlib import Path\n"
    "from lerobot_assets.home import HomeLayout\n"
    "from lerobot_assets.tools.merge import merge_datasets\n"
    "layout = HomeLayout(Path('home').absolute())\n"
    "merge_datasets([(s, layout.session(s)) for s in ('inbox-a', 'inbox-b')], layout.dataset())\n"
)

def _edit_signature(out: Path) -> dict[str, Any]:
    """The edit's output, and its input byte for byte as the setup left it (killed or not)."""
    from tools_support import tree_digest

    return {"output": dataset_signature(out), "input": tree_digest(out.parent / "ds") == tree_digest(FIXTURE)}


OPERATIONS = [
    Operation("record-sim", ["--cli", "record-sim", "--root", "ds", "--episodes", "3", "--max-steps", "20", "--no-top-camera"],
              _nothing, "ds", dataset_signature),
    Operation("session build", ["--py", _BUILD], _raw_session, "home/sessions/inbox-a", dataset_signature),
    Operation("merge (new)", ["--py", _MERGE], _two_sessions, "home/datasets/lerobot_dataset", dataset_signature),
    Operation("merge (append)", ["--py", _MERGE], _merged_a_then_two, "home/datasets/lerobot_dataset", dataset_signature),
    Operation("byte-index", ["--cli", "byte-index", "ds"], _fixture_copy, "ds", byte_index_signature),
    # --overwrite: a kill after the swap leaves the finished output, which the re-run replaces.
    Operation("edit delete", ["--cli", "edit", "delete", "ds", "--episodes", "1", "--out", "out", "--overwrite"],
              _fixture_copy, "out", _edit_signature),
    # DuckDB writes its file itself: kill between the models' builds and their freshness records too.
    Operation("catalog", ["--cli", "catalog", "--home", "home"], _fixture_home, "home", catalog_signature,
              functions="Catalog._materialize_one,Catalog._build_incremental,Catalog._fingerprint,Catalog.refresh_sources"),
]


def _no_strays(folder: Path) -> None:
    build = re.compile(r"\..+\.[a-z0-9-]+-[0-9a-f]{8}")  # an edit's build directory (tools.output)
    strays = [
        str(p.relative_to(folder)) for p in folder.rglob("*")
        if ".tmp" in p.name or ".old-" in p.name or p.name.startswith(".tmp-") or build.fullmatch(p.name)
    ]
    assert strays == [], f"stray temp files after the re-run: {strays}"


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
def test_kill_anywhere_then_rerun_equals_an_uninterrupted_run(op: Operation, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    reference.mkdir()
    op.setup(reference)
    count_file = tmp_path / "count"
    done = _run(op, reference, count_file=count_file)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = op.signature(reference / op.target)
    steps = int(count_file.read_text())
    assert steps > 0

    rng = random.Random(f"faults:{op.name}")
    points = sorted({1, steps, *rng.sample(range(1, steps + 1), min(POINTS, steps))})
    for point in points:
        folder = tmp_path / f"kill-{point}"
        folder.mkdir()
        op.setup(folder)
        killed = _run(op, folder, fault_at=point)
        assert killed.returncode == -9, f"{op.name}: step {point} of {steps} was not reached ({killed.returncode}): {killed.stderr[-2000:]}"
        rerun = _run(op, folder)
        assert rerun.returncode == 0, f"{op.name}: re-run after a kill at step {point}/{steps} failed:\n{rerun.stderr[-3000:]}"
        assert op.signature(folder / op.target) == expected, f"{op.name}: killed at step {point}/{steps}, the re-run differs"
        _no_strays(folder)
        shutil.rmtree(folder)
