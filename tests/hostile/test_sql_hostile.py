"""Hostile and careless input to the SQL layer (`sql`, `catalog`, QuerySession, Catalog).

Each case runs the installed `lerobot-assets` as a user does and checks the exit code, the one-line
error (or the exact answer) and that the input trees were not changed.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from hostile_support import CLI, assert_one_line_error, run_cli, tree_digest  # noqa: E402
from sql_fixtures import SyntheticSpec, find_lerobot_fixture, write_synthetic_dataset  # noqa: E402

FIXTURE = find_lerobot_fixture()  # LeRobot-written: 3 episodes, 60 frames


def csv_rows(stdout: str) -> list[str]:
    return stdout.strip().splitlines()[1:]


# ---- issue item 17: --root without --home queries only the roots --------------------------------


@pytest.fixture
def demo_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a `.demo_home` (the default home) with a 9-episode dataset, and no
    $LEROBOT_ASSETS_HOME: exactly where a user runs `sql --root ...` after `make demo`."""
    monkeypatch.delenv("LEROBOT_ASSETS_HOME", raising=False)
    write_synthetic_dataset(tmp_path / ".demo_home" / "datasets" / "demo", SyntheticSpec(n_episodes=9))
    return tmp_path


def test_sql_root_without_home_queries_only_the_roots(demo_cwd: Path) -> None:
    before = tree_digest(demo_cwd), tree_digest(FIXTURE)
    proc = run_cli(["sql", "SELECT count(*) AS n FROM episodes", "--root", str(FIXTURE), "--format", "csv"], cwd=demo_cwd)
    assert (proc.returncode, proc.stdout) == (0, "n\n3\n"), proc.stderr
    # the default home is still used when no --root is given, and added to the roots with --home
    proc = run_cli(["sql", "SELECT count(*) AS n FROM episodes", "--format", "csv"], cwd=demo_cwd)
    assert (proc.returncode, proc.stdout) == (0, "n\n9\n"), proc.stderr
    proc = run_cli(
        ["sql", "SELECT count(*) AS n FROM episodes", "--home", ".demo_home", "--root", str(FIXTURE), "--format", "csv"],
        cwd=demo_cwd,
    )
    assert (proc.returncode, proc.stdout) == (0, "n\n12\n"), proc.stderr
    assert (tree_digest(demo_cwd), tree_digest(FIXTURE)) == before
    assert "only the roots" in " ".join(run_cli(["sql", "--help"], cwd=demo_cwd).stdout.split())


def test_catalog_root_without_home_builds_only_the_roots(demo_cwd: Path) -> None:
    home_before, fixture_before = tree_digest(demo_cwd / ".demo_home"), tree_digest(FIXTURE)
    # where the catalog goes is not guessed: the default home is not the user's here
    proc = run_cli(["catalog", "--root", str(FIXTURE)], cwd=demo_cwd)
    assert_one_line_error(proc, 2, "--catalog")
    catalog = demo_cwd / "out" / "roots.duckdb"
    proc = run_cli(["catalog", "--root", str(FIXTURE), "--catalog", str(catalog)], cwd=demo_cwd)
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[2] for line in proc.stdout.splitlines() if line.startswith("dataset_summary")] == ["1"]
    proc = run_cli(
        ["sql", "SELECT dataset, episodes FROM dataset_summary", "--root", str(FIXTURE), "--catalog", str(catalog), "--format", "csv"],
        cwd=demo_cwd,
    )
    assert (proc.returncode, csv_rows(proc.stdout)) == (0, ["lerobot-v3-tiny,3"]), proc.stderr
    assert "dataset_summary  [model (table, catalog)]" in run_cli(
        ["sql", "--list", "--root", str(FIXTURE), "--catalog", str(catalog)], cwd=demo_cwd
    ).stdout
    assert (tree_digest(demo_cwd / ".demo_home"), tree_digest(FIXTURE)) == (home_before, fixture_before)
    assert "only the roots" in " ".join(run_cli(["catalog", "--help"], cwd=demo_cwd).stdout.split())


# ---- issue item 13: a home that does not exist is an error, unless created on purpose -------------


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["catalog", "--home", "{tmp}/mistyped"], 1, "data home {tmp}/mistyped does not exist"),
        (["catalog", "--home", "{tmp}/mistyped"], 1, "--create"),
        (["sql", "SELECT count(*) FROM episodes", "--home", "{tmp}/mistyped"], 1, "data home {tmp}/mistyped does not exist"),
        (["sql", "--list", "--home", "{tmp}/mistyped"], 1, "data home {tmp}/mistyped does not exist"),
        # the default home (no --home, no $LEROBOT_ASSETS_HOME) missing in the working directory
        (["sql", "SELECT count(*) FROM episodes"], 1, "data home {tmp}/.demo_home does not exist"),
        (["catalog"], 1, "data home {tmp}/.demo_home does not exist"),
        (["catalog", "--home", "{tmp}/a_file"], 1, "data home {tmp}/a_file is not a directory"),
    ],
)
def test_missing_home_is_an_error(
    args: list[str], code: int, fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEROBOT_ASSETS_HOME", raising=False)
    (tmp_path / "a_file").write_text("not a home")
    before = tree_digest(tmp_path)
    proc = run_cli([a.format(tmp=tmp_path) for a in args], cwd=tmp_path)
    assert_one_line_error(proc, code, fragment.format(tmp=tmp_path))
    assert tree_digest(tmp_path) == before


def test_catalog_create_makes_a_new_home(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    proc = run_cli(["catalog", "--home", str(home), "--create"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (home / "catalog" / "metadata.duckdb").is_file()
    # an existing (empty) home answers with no rows and says why
    proc = run_cli(["sql", "SELECT count(*) AS n FROM episodes", "--home", str(home), "--format", "csv"], cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "n\n0\n") and "no datasets found" in proc.stderr, proc.stderr[-3000:]


# ---- issue item 1: glob characters in paths are never patterns ------------------------------------

# Each hostile name holds `episodes` episodes of 20 frames; the decoys are what the name matches as a
# pattern (`ds[12]` matches ds1, `ds?` matches ds1 and dsa, `ds*` matches every ds...).
GLOB_NAMES = {"ds1": 3, "dsa": 4, "ds[12]": 2, "ds*": 5, "ds?": 6, "x]y": 1, "q[!a]": 7}


def _glob_home(home: Path) -> None:
    for i, (name, n) in enumerate(GLOB_NAMES.items()):
        write_synthetic_dataset(home / name, SyntheticSpec(n_episodes=n, lengths=[20] * n, seed=i))


@pytest.mark.parametrize("name", ["ds[12]", "ds*", "ds?", "x]y", "q[!a]"])
@pytest.mark.parametrize("catalog", [False, True], ids=["no-catalog", "catalog"])
def test_glob_characters_in_a_root_are_literal(name: str, catalog: bool, tmp_path: Path) -> None:
    _glob_home(tmp_path / "data")
    before = tree_digest(tmp_path / "data")
    root = str(tmp_path / "data" / name)
    query = "SELECT (SELECT count(*) FROM frames) AS frames, (SELECT count(*) FROM episodes) AS episodes, " \
            "(SELECT count(*) FROM video_files) AS videos, (SELECT total_episodes FROM info) AS info"
    args = ["sql", query, "--root", root, "--format", "csv"]
    if catalog:
        cat = tmp_path / "cat.duckdb"
        built = run_cli(["catalog", "--root", root, "--catalog", str(cat)], cwd=tmp_path)
        assert built.returncode == 0, built.stderr
        args += ["--catalog", str(cat)]
        assert "dataset_summary  [model (table, catalog)]" in run_cli(
            ["sql", "--list", "--root", root, "--catalog", str(cat)], cwd=tmp_path
        ).stdout
        args[1] = "SELECT episodes * 20 AS frames, episodes, video_files AS videos, total_episodes AS info FROM dataset_summary"
    else:
        args.append("--no-catalog")
    proc = run_cli(args, cwd=tmp_path)
    n = GLOB_NAMES[name]
    assert (proc.returncode, csv_rows(proc.stdout)) == (0, [f"{20 * n},{n},2,{n}"]), proc.stderr
    assert tree_digest(tmp_path / "data") == before


def test_glob_characters_in_a_home_are_literal(tmp_path: Path) -> None:
    # the home's own path holds glob characters too, beside a home its pattern would match
    home = tmp_path / "home[1]"
    _glob_home(home)
    write_synthetic_dataset(tmp_path / "home1" / "decoy", SyntheticSpec(n_episodes=9))
    before = tree_digest(tmp_path)
    expected = sorted(f"{name},{n},{20 * n}" for name, n in GLOB_NAMES.items())
    query = "SELECT dataset, episodes, frames FROM dataset_summary ORDER BY dataset"
    live = run_cli(["sql", query, "--home", str(home), "--format", "csv", "--no-catalog"], cwd=tmp_path)
    assert (live.returncode, csv_rows(live.stdout)) == (0, expected), live.stderr
    frames = run_cli(
        ["sql", "SELECT dataset, count(*) AS n, count(DISTINCT data_file) AS f FROM frames GROUP BY 1 ORDER BY 1",
         "--home", str(home), "--format", "csv", "--no-catalog"], cwd=tmp_path)
    assert csv_rows(frames.stdout) == sorted(f"{name},{20 * n},1" for name, n in GLOB_NAMES.items()), frames.stderr
    assert tree_digest(tmp_path) == before
    built = run_cli(["catalog", "--home", str(home)], cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    served = run_cli(["sql", query, "--home", str(home), "--format", "csv"], cwd=tmp_path)
    assert (served.returncode, csv_rows(served.stdout)) == (0, expected), served.stderr
    assert "dataset_summary  [model (table, catalog)]" in run_cli(["sql", "--list", "--home", str(home)], cwd=tmp_path).stdout


def test_backslash_with_glob_characters(tmp_path: Path) -> None:
    """DuckDB's glob splits on backslashes, so such a path cannot be escaped for read_parquet: a query
    session reads it through Arrow instead; a catalog (whose views any DuckDB client must be able to
    read) refuses it by name rather than reading something else."""
    root = tmp_path / "back\\slash" / "ds[1]"
    write_synthetic_dataset(root, SyntheticSpec(n_episodes=2, lengths=[20, 20]))
    write_synthetic_dataset(tmp_path / "back\\slash" / "ds1", SyntheticSpec(n_episodes=3))
    before = tree_digest(tmp_path)
    proc = run_cli(["sql", "SELECT count(*) AS n FROM frames", "--root", str(root), "--format", "csv"], cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "n\n40\n"), proc.stderr
    proc = run_cli(["sql", "SELECT * FROM read_parquet('/etc/passwd')", "--root", str(root)], cwd=tmp_path)
    assert_one_line_error(proc, 2, "Permission Error")
    assert tree_digest(tmp_path) == before
    proc = run_cli(["catalog", "--root", str(root), "--catalog", str(tmp_path / "cat.duckdb")], cwd=tmp_path)
    assert_one_line_error(proc, 1, f"{root}/meta/episodes/chunk-000/file-000.parquet: a path holding a backslash")
    # found under a home, it is skipped by the catalog (named), and the rest is built
    proc = run_cli(["catalog", "--home", str(tmp_path / "back\\slash"), "--catalog", str(tmp_path / "cat.duckdb")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _warning(proc.stderr).startswith(f"warning: skipped dataset ds[1] ({root}): {root}/meta/episodes/chunk-000/file-000.parquet")
    assert [line.split()[2] for line in proc.stdout.splitlines() if line.startswith("dataset_summary")] == ["1"]
    assert tree_digest(tmp_path / "back\\slash") == {k.removeprefix("back\\slash/"): v for k, v in before.items() if k.startswith("back\\slash/")}


def test_double_colon_in_a_local_path_is_not_a_url_chain(tmp_path: Path) -> None:
    """fsspec reads `a::b` as a chain of URLs: `.../x::y/ds` would stand for `.../x`."""
    write_synthetic_dataset(tmp_path / "x", SyntheticSpec(n_episodes=3))
    write_synthetic_dataset(tmp_path / "x::y" / "ds", SyntheticSpec(n_episodes=2, lengths=[20, 20]))
    write_synthetic_dataset(tmp_path / "h::1" / "inside", SyntheticSpec(n_episodes=1, lengths=[20]))
    before = tree_digest(tmp_path)
    proc = run_cli(["sql", "SELECT count(*) AS n FROM frames", "--root", str(tmp_path / "x::y" / "ds"), "--format", "csv"], cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "n\n40\n"), proc.stderr
    proc = run_cli(["sql", "SELECT dataset, count(*) AS n FROM frames GROUP BY 1", "--home", str(tmp_path / "h::1"), "--format", "csv"], cwd=tmp_path)
    assert (proc.returncode, csv_rows(proc.stdout)) == (0, ["inside,20"]), proc.stderr
    assert tree_digest(tmp_path) == before


def test_lockdown_still_holds_for_escaped_paths(tmp_path: Path) -> None:
    """The session allows its own files (and their literal patterns) only: the raw name `ds[12]`, which
    DuckDB would expand to ds1's file, stays refused."""
    _glob_home(tmp_path / "data")
    own = tmp_path / "data" / "ds[12]" / "data" / "chunk-000" / "file-000.parquet"
    for path, ok in [(str(own).replace("[", "[[]"), True), (str(own), False)]:
        query = f"SELECT count(*) AS n FROM read_parquet('{path}')"
        proc = run_cli(["sql", query, "--root", str(tmp_path / "data" / "ds[12]"), "--format", "csv"], cwd=tmp_path)
        if ok:
            assert (proc.returncode, proc.stdout) == (0, "n\n40\n"), proc.stderr
        else:
            assert_one_line_error(proc, 2, f'Permission Error: Cannot access file "{tmp_path}/data/ds1/data/chunk-000/file-000.parquet"')


# ---- issue item 10: --var values are typed literals, never SQL; the catalog is locked down ---------

INJECTION = "idle_motion_threshold=(SELECT count(*) FROM read_text('/etc/passwd'))"


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["catalog", "--home", "{home}", "--var", INJECTION], 2, "var idle_motion_threshold: expected a number"),
        (["sql", "SELECT count(*) FROM episode_quality", "--home", "{home}", "--var", INJECTION], 2,
         "var idle_motion_threshold: expected a number"),
        (["sql", "SELECT 1", "--home", "{home}", "--var", "min_episode_seconds"], 2, "--var min_episode_seconds: expected NAME=VALUE"),
        (["sql", "SELECT 1", "--home", "{home}", "--var", "min_episode_seconds=[1, 2]"], 2, "var min_episode_seconds: expected a number"),
        (["sql", "SELECT 1", "--home", "{home}", "--var", "min_episode_seconds=true"], 2, "var min_episode_seconds: expected a number"),
        (["catalog", "--home", "{home}", "--var", 'min_episode_seconds={"a": 1}'], 2, "var min_episode_seconds: expected a number"),
    ],
)
def test_vars_are_typed_literals(args: list[str], code: int, fragment: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_synthetic_dataset(home / "ds", SyntheticSpec(n_episodes=3))
    before = tree_digest(tmp_path)
    proc = run_cli([a.replace("{home}", str(home)) for a in args], cwd=tmp_path)
    assert_one_line_error(proc, code, fragment)
    assert tree_digest(tmp_path) == before  # no catalog started either


def test_valid_vars_still_apply(tmp_path: Path) -> None:
    lengths = [10, 20, 30]  # 0.33, 0.67 and 1.0 s at 30 fps
    write_synthetic_dataset(tmp_path / "ds", SyntheticSpec(n_episodes=3, lengths=lengths))
    query = "SELECT count(*) FILTER (WHERE too_short) AS short FROM episode_quality"
    for var, short in [(None, 1), ("min_episode_seconds=0.8", 2), ("min_episode_seconds=2", 3)]:
        extra = ["--var", var] if var else []
        proc = run_cli(["sql", query, "--root", str(tmp_path / "ds"), "--format", "csv", *extra], cwd=tmp_path)
        assert (proc.returncode, proc.stdout) == (0, f"short\n{short}\n"), proc.stderr


def _project_with(tmp_path: Path, files: dict[str, str]) -> Path:
    from lerobot_assets.sql import default_project_dir

    project = tmp_path / "project"
    shutil.copytree(default_project_dir(), project)
    for rel, text in files.items():
        (project / rel).write_text(text)
    return project


def test_string_and_list_vars_render_as_literals(tmp_path: Path) -> None:
    from lerobot_assets.sql import QuerySession, load_project

    project = _project_with(
        tmp_path,
        {"models/marts/labels.sql": "select {{ var('label', 'x') }} as label, {{ var('ids', [1, 2]) }} as ids, "
                                     "{{ var('label', 'x') ~ '!' }} as shout"},
    )
    hostile = "it's'; select 1 --"
    vars = {"label": hostile, "ids": [3, 4]}
    with QuerySession.open(None, [FIXTURE], project=load_project(project, vars=vars), vars=vars) as session:
        assert session.rows("select * from labels") == (["label", "ids", "shout"], [(hostile, [3, 4], hostile + "!")])
    with QuerySession.open(None, [FIXTURE], project=load_project(project)) as session:
        assert session.rows("select * from labels") == (["label", "ids", "shout"], [("x", [1, 2], "x!")])


def test_catalog_connection_reads_only_the_datasets_files(tmp_path: Path) -> None:
    from lerobot_assets.sql import Catalog, QueryError, load_project

    secret = tmp_path / "secret.txt"
    secret.write_text("not for the catalog")
    project = _project_with(
        tmp_path,
        {"models/marts/leak.sql": f"{{{{ config(materialized='table') }}}}\nselect content from read_text('{secret}')",
         "tests/assert_no_leak.sql": f"{{{{ config(model='task_summary') }}}}\nselect content from read_text('{secret}')"},
    )
    home = tmp_path / "home"
    write_synthetic_dataset(home / "ds", SyntheticSpec(n_episodes=2))
    catalog = Catalog(home, project=load_project(project))
    with pytest.raises(QueryError, match=f'Permission Error: Cannot access file "{secret}"'):
        catalog.materialize("leak")
    catalog.materialize_all(["task_summary"])  # the datasets' own files stay readable
    with pytest.raises(QueryError, match=f'Permission Error: Cannot access file "{secret}"'):
        catalog.run_data_test("assert_no_leak")


# ---- issue item 14: one corrupt dataset in a home is skipped, with a warning naming it -------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


# (what is broken in dataset `bad`, how, the file the warning names)
CORRUPTIONS = {
    "episodes footer": (lambda r: _truncate(r / "meta/episodes/chunk-000/file-000.parquet"), "meta/episodes/chunk-000/file-000.parquet"),
    "data footer": (lambda r: _truncate(r / "data/chunk-000/file-000.parquet"), "data/chunk-000/file-000.parquet"),
    "tasks garbage": (lambda r: (r / "meta/tasks.parquet").write_bytes(b"PAR1 garbage"), "meta/tasks.parquet"),
    "tasks missing": (lambda r: (r / "meta/tasks.parquet").unlink(), "required source 'tasks'"),
    "info not json": (lambda r: (r / "meta/info.json").write_text("{not json"), "meta/info.json"),
    "info a list": (lambda r: (r / "meta/info.json").write_text("[1, 2]"), "meta/info.json"),
    "stats not json": (lambda r: (r / "meta/stats.json").write_text('{"a": '), "meta/stats.json"),
}


@pytest.fixture
def home_with_bad(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    write_synthetic_dataset(home / "a", SyntheticSpec(n_episodes=3, seed=1))
    write_synthetic_dataset(home / "b", SyntheticSpec(n_episodes=2, seed=2))
    write_synthetic_dataset(home / "bad", SyntheticSpec(n_episodes=4, seed=3))
    return home


def _warning(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_dataset_in_a_home_is_skipped(kind: str, home_with_bad: Path) -> None:
    home = home_with_bad
    corrupt, named = CORRUPTIONS[kind]
    corrupt(home / "bad")
    datasets = {name: tree_digest(home / name) for name in ("a", "b", "bad")}
    query = "SELECT dataset, episodes FROM dataset_summary ORDER BY 1"
    proc = run_cli(["sql", query, "--home", str(home), "--format", "csv", "--no-catalog"], cwd=home)
    assert (proc.returncode, csv_rows(proc.stdout)) == (0, ["a,3", "b,2"]), proc.stderr
    warning = _warning(proc.stderr)
    assert warning.startswith(f"warning: skipped dataset bad ({home / 'bad'}): ") and named in warning, warning
    # ... and visible to SQL: a source lists what was left out, and why
    proc = run_cli(["sql", "SELECT dataset, problem FROM skipped_datasets", "--home", str(home), "--format", "csv"], cwd=home)
    assert proc.returncode == 0 and csv_rows(proc.stdout)[0].startswith("bad,") and named in proc.stdout, proc.stderr
    # the catalog builds for the rest, and sql answers from it
    proc = run_cli(["catalog", "--home", str(home)], cwd=home)
    assert proc.returncode == 0, proc.stderr
    assert named in _warning(proc.stderr)
    proc = run_cli(["sql", query, "--home", str(home), "--format", "csv"], cwd=home)
    assert (proc.returncode, csv_rows(proc.stdout)) == (0, ["a,3", "b,2"]), proc.stderr
    assert "dataset_summary  [model (table, catalog)]" in run_cli(["sql", "--list", "--home", str(home)], cwd=home).stdout
    assert {name: tree_digest(home / name) for name in ("a", "b", "bad")} == datasets


def test_corrupt_dataset_named_as_root_is_still_an_error(home_with_bad: Path) -> None:
    """A dataset the user names with --root is what they asked about: no answer without it."""
    corrupt, named = CORRUPTIONS["data footer"]
    corrupt(home_with_bad / "bad")
    proc = run_cli(["sql", "SELECT count(*) FROM frames", "--root", str(home_with_bad / "bad")], cwd=home_with_bad)
    assert_one_line_error(proc, 1, f"cannot read parquet file {home_with_bad / 'bad' / named}")


def test_skipped_datasets_in_the_library(home_with_bad: Path) -> None:
    from lerobot_assets.sql import Catalog, QuerySession

    CORRUPTIONS["info not json"][0](home_with_bad / "bad")
    with QuerySession.open(home_with_bad) as session:
        assert [d.name for d in session.datasets] == ["a", "b"]
        assert [(s.name, s.url) for s in session.skipped] == [("bad", str(home_with_bad / "bad"))]
        assert "meta/info.json" in session.skipped[0].problem
        assert session.rows("SELECT count(*) FROM episodes") == (["count_star()"], [(5,)])
    catalog = Catalog(home_with_bad)
    result = catalog.materialize("dataset_summary", with_upstream=True)
    assert result.row_count == 2 and [s.name for s in result.skipped] == ["bad"]
    assert [s.name for s in catalog.skipped] == ["bad"]


# ---- issue item 11 (SQL parts): absurd numbers, Ctrl-C, a full disk -------------------------------


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


HUGE = 10**30
ABSURD_INFO = {
    "total_episodes 10**30": (lambda d: d.update(total_episodes=HUGE), f"total_episodes={HUGE}"),
    "chunks_size 1e400": (lambda d: d.update(chunks_size=float("inf")), "chunks_size=inf"),
    "video height 10**30": (
        lambda d: d["features"]["observation.images.front"]["info"].update({"video.height": HUGE}),
        f"height={HUGE}",
    ),
}


@pytest.mark.parametrize("kind", list(ABSURD_INFO))
def test_absurd_numbers_in_info_json(kind: str, tmp_path: Path) -> None:
    edit, fragment = ABSURD_INFO[kind]
    write_synthetic_dataset(tmp_path / "home" / "good", SyntheticSpec(n_episodes=2))
    root = tmp_path / "home" / "absurd"
    shutil.copytree(FIXTURE, root)
    _edit_json(root / "meta/info.json", edit)
    before = tree_digest(tmp_path)
    info = root / "meta" / "info.json"
    proc = run_cli(["sql", "SELECT count(*) FROM episodes", "--root", str(root)], cwd=tmp_path)
    assert_one_line_error(proc, 1, f"{info}: {fragment}")
    # in a home it is skipped, naming the file and the value
    proc = run_cli(["sql", "SELECT dataset FROM info", "--home", str(tmp_path / "home"), "--format", "csv"], cwd=tmp_path)
    assert (proc.returncode, csv_rows(proc.stdout)) == (0, ["good"]), proc.stderr
    assert f"{info}: {fragment}" in _warning(proc.stderr)
    assert tree_digest(tmp_path) == before


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("output", ["table", "csv", "json"])
def test_ctrl_c_stops_a_running_query(output: str, tmp_path: Path) -> None:
    query = "SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3"  # minutes of work
    before = tree_digest(FIXTURE)
    env = os.environ | {"SDL_VIDEODRIVER": "dummy"}
    env.pop("LEROBOT_ASSETS_DEBUG", None)
    proc = subprocess.Popen(
        [str(CLI), "sql", query, "--root", str(FIXTURE), "--format", output],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A child inherits an ignored SIGINT (pytest run as a background job of a non-interactive
        # shell), and Python then installs no KeyboardInterrupt handler: give it the default back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # Interrupt the query itself, not the session's opening: wait until the process has used more
        # CPU than opening ever takes (about a second; the query keeps every core busy). CPU time, not
        # a wall-clock sleep, so a loaded machine (slow opening) does not move the signal into the open.
        deadline = time.monotonic() + 120
        while _cpu_seconds(proc.pid) < 4.0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the query never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert_one_line_error(done, 130, "interrupted")
    assert out == "" and tree_digest(FIXTURE) == before


def _with_file_size_limit(limit: int) -> Callable[[], None]:
    """A child whose writes past `limit` bytes fail with EFBIG, as on a full disk (SIGXFSZ ignored, or
    it would kill the process instead)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _catalog_with_limit(home: Path, limit: int) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SDL_VIDEODRIVER": "dummy"}
    env.pop("LEROBOT_ASSETS_DEBUG", None)
    return subprocess.run(
        [str(CLI), "catalog", "--home", str(home)], cwd=home, env=env, capture_output=True, text=True,
        timeout=300, preexec_fn=_with_file_size_limit(limit),
    )


def _catalog_contents(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall()]
        return {t: sorted(con.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in sorted(tables)}
    finally:
        con.close()


def test_full_disk_during_a_first_catalog_build_leaves_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_synthetic_dataset(home / "ds", SyntheticSpec(n_episodes=3))
    before = tree_digest(home)
    catalog = home / "catalog" / "metadata.duckdb"
    for limit in (4096, 64 * 1024):  # fails creating the file / fails writing the build
        proc = _catalog_with_limit(home, limit)
        assert_one_line_error(proc, 1, str(catalog))
        assert "File too large" in proc.stderr, proc.stderr
        assert tree_digest(home) == before  # no catalog file, no WAL, no catalog/ folder


def test_full_disk_during_a_rebuild_keeps_the_previous_catalog(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_synthetic_dataset(home / "ds", SyntheticSpec(n_episodes=3))
    assert run_cli(["catalog", "--home", str(home)], cwd=home).returncode == 0
    catalog = home / "catalog" / "metadata.duckdb"
    previous = _catalog_contents(catalog)
    write_synthetic_dataset(home / "more", SyntheticSpec(n_episodes=5, seed=7))  # so that everything rebuilds
    datasets = tree_digest(home / "ds"), tree_digest(home / "more")
    proc = _catalog_with_limit(home, 4096)
    assert_one_line_error(proc, 1, str(catalog))
    assert "File too large" in proc.stderr, proc.stderr
    assert _catalog_contents(catalog) == previous
    assert (tree_digest(home / "ds"), tree_digest(home / "more")) == datasets
    # and the next build, with room, completes
    assert run_cli(["catalog", "--home", str(home)], cwd=home).returncode == 0
    assert _catalog_contents(catalog)["dataset_summary"] != previous["dataset_summary"]
