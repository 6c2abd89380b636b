"""`lerobot-assets sql`: output formats, --list, read-only refusals, exit codes, remote roots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sql_fixtures import SyntheticSpec, find_lerobot_fixture, moto_s3, upload, write_synthetic_dataset  # noqa: E402

from lerobot_assets.cli import app  # noqa: E402

FIXTURE = find_lerobot_fixture()
runner = CliRunner()


def sql(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["sql", *args], env=env)


def test_table_output() -> None:
    result = sql("--root", str(FIXTURE), "select task, episodes, frames from task_summary")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "task" in lines[1] and "episodes" in lines[1] and "frames" in lines[1]
    assert any("pick the cube" in line and "│        2 │" in line and "35" in line for line in lines)
    assert any("place the cube" in line and "25" in line for line in lines)


def test_csv_and_json_output() -> None:
    query = "select episode_index, tasks, length, length / 30 as seconds from episodes order by episode_index"
    result = sql("--root", str(FIXTURE), "--format", "csv", query)
    assert result.exit_code == 0
    assert result.stdout == (
        "episode_index,tasks,length,seconds\n"
        '0,"[""pick the cube""]",20,0.6666666666666666\n'
        '1,"[""place the cube""]",25,0.8333333333333334\n'
        '2,"[""pick the cube""]",15,0.5\n'
    )
    result = sql("--root", str(FIXTURE), "--format", "json", query + " limit 1")
    assert json.loads(result.stdout) == [{"episode_index": 0, "tasks": ["pick the cube"], "length": 20, "seconds": 20 / 30}]
    result = sql("--root", str(FIXTURE), "--format", "json", "select 'nan'::double as x, 'inf'::double as y, null as z")
    assert json.loads(result.stdout) == [{"x": "NaN", "y": "Infinity", "z": None}]


def test_list_shows_views_and_columns() -> None:
    result = sql("--root", str(FIXTURE), "--list")
    assert result.exit_code == 0
    out = result.stdout
    for view in ("episodes", "frames", "tasks", "info", "stats", "stg_episodes", "episode_quality", "task_summary",
                 "dataset_summary", "camera_summary"):
        assert f"\n{view}  [" in "\n" + out, view
    assert "episodes  [source lerobot.episodes from asset lerobot_dataset]" in out
    assert "task_summary  [model (table)]" in out
    assert "    videos/observation.images.front/from_timestamp  DOUBLE" in out
    listed = json.loads(sql("--root", str(FIXTURE), "--list", "--format", "json").stdout)
    frames = next(r for r in listed if r["name"] == "frames")
    assert frames["kind"] == "source"
    assert [c["name"] for c in frames["columns"]][:5] == ["dataset", "data_file", "index", "episode_index", "frame_index"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("selec 1", "Parser Error: syntax error"),
        ("select nope from episodes", "Binder Error"),
        ("select * from no_such_view", "Catalog Error"),
        ("copy episodes to 'out.parquet'", "refused: COPY statement"),
        ("create table t (x int)", "refused: CREATE statement"),
        ("delete from tasks", "refused: DELETE statement"),
        ("attach 'x.duckdb'", "refused: ATTACH statement"),
        ("select 1; select 2", "one statement at a time"),
        ("select * from read_csv('/etc/passwd')", "Permission Error"),
    ],
)
def test_bad_and_refused_statements_exit_2(query: str, message: str, tmp_path: Path) -> None:
    result = sql("--root", str(FIXTURE), query)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert not (Path.cwd() / "out.parquet").exists()


def test_home_from_environment(tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path / "home" / "datasets" / "a", SyntheticSpec(n_episodes=3, lengths=[10, 11, 12]))
    result = sql("--format", "csv", "select dataset, frames from dataset_summary", env={"LEROBOT_ASSETS_HOME": str(tmp_path / "home")})
    assert result.stdout == "dataset,frames\ndatasets/a,33\n"
    # an existing home without datasets answers with no rows and says why (a missing one is an error:
    # tests/hostile/test_sql_hostile.py)
    (tmp_path / "empty").mkdir()
    result = sql("--home", str(tmp_path / "empty"), "--format", "csv", "select count(*) as n from episodes")
    assert result.exit_code == 0 and result.stdout == "n\n0\n" and "no datasets found" in result.stderr


def test_corrupted_shard_exit_1_names_file(tmp_path: Path) -> None:
    written = write_synthetic_dataset(tmp_path / "ds", SyntheticSpec(n_episodes=4, episodes_per_meta_file=2))
    bad = written.meta_files[1]
    bad.write_bytes(bad.read_bytes()[:100])
    result = sql("--root", str(tmp_path / "ds"), "select count(*) from episodes")
    assert result.exit_code == 1
    assert f"cannot read parquet file {bad}" in result.stderr and "Traceback" not in result.output


def test_remote_root_through_storage_options() -> None:
    pytest.importorskip("moto.server")
    with moto_s3() as endpoint:
        upload(endpoint, FIXTURE, "lerobot/tiny")
        query = "select * from task_summary"
        local = sql("--root", str(FIXTURE), "--format", "json", query)
        remote = sql("--root", "s3://lerobot/tiny", "--storage-option", f"endpoint_url={endpoint}",
                     "--storage-option", "client_kwargs.region_name=us-east-1", "--format", "json", query)
        assert remote.exit_code == 0, remote.output
        local_rows = json.loads(local.stdout)
        for row in local_rows:
            row["dataset"] = "tiny"  # the dataset name is the root's last path component
        assert json.loads(remote.stdout) == local_rows


def test_console_script_has_no_traceback() -> None:
    exe = Path(sys.executable).with_name("lerobot-assets")
    if not exe.exists():
        pytest.skip("console script not installed")
    done = subprocess.run([str(exe), "sql", "--root", str(FIXTURE), "selec 1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: Parser Error") and "Traceback" not in done.stderr
    done = subprocess.run([str(exe), "sql", "--root", str(FIXTURE), "--format", "csv", "select count(*) as n from frames"],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "n\n60\n")


def test_catalog_is_used_when_current_and_can_be_ignored(tmp_path: Path) -> None:
    from lerobot_assets.sql import Catalog

    home = tmp_path / "home"
    write_synthetic_dataset(home / "ds", SyntheticSpec(n_episodes=4, episodes_per_data_file=2))
    Catalog(home).materialize_all()
    listed = sql("--home", str(home), "--list").stdout
    assert "episode_quality  [model (table, catalog)]" in listed
    assert "int_episode_frame_checks  [model (incremental, catalog)]" in listed
    ignored = sql("--home", str(home), "--no-catalog", "--list").stdout
    assert "episode_quality  [model (table)]" in ignored
    query = "select episode_index, n_frames, n_flags from episode_quality order by 1"
    live = sql("--home", str(home), "--no-catalog", "--format", "csv", query).stdout
    assert live.splitlines()[0] == "episode_index,n_frames,n_flags" and len(live.splitlines()) == 5
    assert sql("--home", str(home), "--format", "csv", query).stdout == live
    # another catalog file given explicitly; one that cannot be opened is reported, not fatal
    broken = tmp_path / "broken.duckdb"
    broken.write_bytes(b"not a duckdb file" * 100)
    result = sql("--home", str(home), "--catalog", str(broken), "--format", "csv", query)
    assert result.exit_code == 0
    assert f"note: catalog {broken} not used" in result.stderr
    assert result.stdout == live


def test_catalog_command_builds_what_sql_reuses(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_synthetic_dataset(home / "ds", SyntheticSpec(n_episodes=4, episodes_per_data_file=2))
    first = runner.invoke(app, ["catalog", "--home", str(home), "--root", str(FIXTURE)])
    assert first.exit_code == 0, first.output
    lines = {line.split()[0]: line for line in first.stdout.splitlines() if line and not line.startswith("catalog:")}
    # ds has 2 data files, the LeRobot fixture 1; 4 + 3 episodes
    assert "3 files computed, 0 reused, 0 removed" in lines["int_episode_frame_checks"]
    assert lines["episode_quality"].split()[1:3] == ["table", "7"] and "built" in lines["episode_quality"]
    assert first.stdout.splitlines()[-1] == f"catalog: {home / 'catalog/metadata.duckdb'}"
    again = runner.invoke(app, ["catalog", "--home", str(home), "--root", str(FIXTURE)])
    assert "0 files computed, 3 reused" in again.stdout and "up to date" in again.stdout
    # the same datasets: every table from the catalog; without the extra root the inputs differ
    listed = sql("--home", str(home), "--root", str(FIXTURE), "--list").stdout
    assert "episode_quality  [model (table, catalog)]" in listed
    listed = sql("--home", str(home), "--list").stdout
    assert "episode_quality  [model (table)]" in listed
    assert "int_episode_frame_checks  [model (incremental, 2 of 2 files from the catalog)]" in listed
    bad = runner.invoke(app, ["catalog", "--home", str(home), "--model", "nope"])
    assert bad.exit_code == 1 and "unknown model(s): nope" in bad.stderr
