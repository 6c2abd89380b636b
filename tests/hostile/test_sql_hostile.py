"""Hostile and careless input to the SQL layer (`sql`, `catalog`, QuerySession, Catalog).

Each case runs the installed `lerobot-assets` as a user does and checks the exit code, the one-line
error (or the exact answer) and that the input trees were not changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from hostile_support import assert_one_line_error, run_cli, tree_digest  # noqa: E402
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
