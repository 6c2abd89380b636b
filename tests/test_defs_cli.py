"""The code location from the command line: `dagster asset materialize`, `definitions validate`,
the deploy run configs, and `lerobot-assets demo` (each in a subprocess, temporary DAGSTER_HOME)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from test_defs_support import TINY_SIM, make_inbox_session, read_json

from lerobot_assets.format import DatasetMeta

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env(tmp_path: Path) -> dict[str, str]:
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return os.environ | {
        "DAGSTER_HOME": str(dagster_home),
        "LEROBOT_ASSETS_HOME": str(tmp_path / "home"),
        "SDL_VIDEODRIVER": "dummy",
        "SVT_LOG": "1",
    }


def _dagster(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dagster"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=400)


@pytest.mark.slow
def test_cli_materializes_one_partition(tmp_path: Path) -> None:
    env = _env(tmp_path)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.add_dynamic_partitions("sessions", ["sim-s0003-0004", "inbox-broken"])
    proc = _dagster(
        [
            "asset", "materialize", "-m", "definitions",
            "--select", "raw_episodes,session_dataset",
            "--partition", "sim-s0003-0004",
            "--config-json", json.dumps({"resources": {"sim": {"config": TINY_SIM}}}),
        ],
        env,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    meta = DatasetMeta(tmp_path / "home" / "sessions" / "sim-s0003-0004")
    assert (meta.info.total_episodes, meta.info.total_frames) == (2, 24)
    manifest = read_json(tmp_path / "home" / "raw" / "sim-s0003-0004" / "manifest.json")
    assert manifest["details"]["seeds"] == [3, 4]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert instance.get_materialized_partitions(dg.AssetKey("session_dataset")) == {"sim-s0003-0004"}
        check = dg.AssetCheckKey(dg.AssetKey("session_dataset"), "session_dataset_valid")
        [info] = instance.event_log_storage.get_asset_check_partition_info([check], partition_keys=["sim-s0003-0004"])
        assert info.latest_execution_status.value == "SUCCEEDED"

    # A malformed inbox session: the CLI fails, naming the file and the row.
    bad = make_inbox_session(tmp_path / "home", "broken", [4])
    (bad / "episode_000000" / "observation.images.cam" / "000002.png").unlink()
    proc = _dagster(["asset", "materialize", "-m", "definitions", "--select", "raw_episodes", "--partition", "inbox-broken"], env)
    assert proc.returncode != 0
    assert "000002.png: row 2: missing PNG frame" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_multiprocess_job(tmp_path: Path) -> None:
    """session_job_multiprocess: every step in its own process, same result."""
    env = _env(tmp_path)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.add_dynamic_partitions("sessions", ["sim-s0000-0001"])
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"resources": {"sim": {"config": TINY_SIM}}}))
    proc = _dagster(
        ["job", "execute", "-m", "definitions", "-j", "session_job_multiprocess",
         "--tags", json.dumps({"dagster/partition": "sim-s0000-0001"}), "-c", str(config)],
        env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'Launching subprocess for "session_build"' in out
    meta = DatasetMeta(tmp_path / "home" / "sessions" / "sim-s0000-0001")
    assert (meta.info.total_episodes, meta.info.total_frames) == (2, 24)


@pytest.mark.slow
def test_definitions_validate(tmp_path: Path) -> None:
    proc = _dagster(["definitions", "validate", "-m", "definitions"], _env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stdout + proc.stderr
    # Asking for an executor whose package is missing is an error, not a silent skip.
    for name, module in (("k8s", "dagster_k8s"), ("celery", "dagster_celery")):
        try:
            __import__(module)
            continue
        except ImportError:
            pass
        proc = _dagster(["definitions", "validate", "-m", "definitions"], _env(tmp_path) | {"LEROBOT_ASSETS_SCALE_OUT": name})
        assert proc.returncode != 0 and f"pip install 'dagster-{name}==0.29.27'" in proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["k8s", "celery"])
def test_deploy_run_configs(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deploy run configs hold valid resource config for session_job; with the executor's
    package installed, the whole run config is validated against it (as definitions validate does)."""
    from lerobot_assets.defs.definitions import build_defs, defs
    from lerobot_assets.defs.executors import SCALE_OUT_EXECUTORS, load_run_config

    config = load_run_config(name)
    assert set(config) == {"execution", "resources"}
    # k8s: the mounted volume's path; celery: a bucket (the workers share no disk).
    assert config["resources"]["home"]["config"]["root"].startswith({"k8s": "/", "celery": "s3://"}[name])
    dg.validate_run_config(defs.resolve_job_def("session_job"), {"resources": config["resources"]})
    module = SCALE_OUT_EXECUTORS[name][0]
    pytest.importorskip(module)
    monkeypatch.setenv("LEROBOT_ASSETS_SCALE_OUT", name)
    scaled = build_defs()  # validates the deploy run config strictly, unknown keys included
    assert scaled.resolve_job_def(f"session_job_{name}").executor_def.name == name
    bad = yaml.safe_load((REPO / "deploy" / name / "run_config.yaml").read_text())
    bad["execution"]["config"]["no_such_option"] = 1
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(scaled.resolve_job_def(f"session_job_{name}"), bad)


@pytest.mark.slow
def test_demo_command(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    env = os.environ | {"SDL_VIDEODRIVER": "dummy", "SVT_LOG": "1"}
    env.pop("DAGSTER_HOME", None)
    args = ["demo", "--home", str(home), "--sessions", "2", "--episodes", "2", "--max-steps", "10", "--no-top-camera",
            "--train-steps", "5", "--eval-episodes", "1"]
    proc = subprocess.run([str(BIN / "lerobot-assets"), *args], env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "registered 2 sessions of 2 episodes: sim-s0000-0001, sim-s0002-0003" in out
    assert "lerobot_dataset: rebuild of 2 sessions, 4 episodes, 40 frames" in out
    assert f"dataset:  {home / 'datasets' / 'lerobot_dataset'}" in out and "lerobot-assets ui --home" in out
    assert "curated_dataset: kept 4 of 4 episodes" in out and "annotated_dataset (sim backend): 4 episodes" in out
    assert "policy_checkpoint: 5 steps on train" in out and "success over 1 held-out seeds" in out
    assert "policy_checkpoint_loads OK" in out
    assert "telemetry:\n  enabled: false" in (home / "dagster" / "dagster.yaml").read_text()
    meta = DatasetMeta(home / "datasets" / "lerobot_dataset")
    assert (meta.info.total_episodes, meta.info.total_frames) == (4, 40)
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        assert list(instance.get_dynamic_partitions("sessions")) == ["sim-s0000-0001", "sim-s0002-0003"]
        assert instance.get_latest_materialization_event(dg.AssetKey("dataset_stats")) is not None
    # A directory that is not a data home is refused, untouched.
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("...")
    proc = subprocess.run([str(BIN / "lerobot-assets"), "demo", "--home", str(other)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "not a lerobot-assets data home" in proc.stdout + proc.stderr
    assert sorted(p.name for p in other.iterdir()) == ["thesis.tex"]


def test_every_command_takes_the_home_from_the_environment(tmp_path: Path) -> None:
    """No --home: register-sim and sql both use $LEROBOT_ASSETS_HOME (one default for every command)."""
    from typer.testing import CliRunner

    from lerobot_assets.cli import app

    env = {"LEROBOT_ASSETS_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "unused")}
    runner = CliRunner()
    result = runner.invoke(app, ["register-sim", "--sessions", "1", "--episodes", "2"], env=env)
    assert result.exit_code == 0, result.output
    assert "registered sim-s0000-0001" in result.stdout
    assert (tmp_path / "home/dagster/dagster.yaml").is_file()
    again = runner.invoke(app, ["register-sim", "--sessions", "1", "--episodes", "2"], env=env)
    assert "registered sim-s0002-0003" in again.stdout  # the same instance: seeds continue
    result = runner.invoke(app, ["sql", "--format", "csv", "select count(*) as n from episodes"], env=env)
    assert result.exit_code == 0 and result.stdout == "n\n0\n"
    assert f"no datasets found under {tmp_path / 'home'}" in result.stderr
