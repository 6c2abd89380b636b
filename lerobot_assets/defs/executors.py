"""Executors beyond one machine: session jobs on Kubernetes (dagster-k8s) or Celery (dagster-celery).

Configuration only: the executors are Dagster's own, configured from deploy/<name>/run_config.yaml.
A job is added when its package is importable; `LEROBOT_ASSETS_SCALE_OUT=k8s` (or `celery`, or
`k8s,celery`) makes it required, so

    LEROBOT_ASSETS_SCALE_OUT=k8s dagster definitions validate -m definitions

fails unless the package is installed and the run config matches the executor's schema
(define_asset_job validates `config` when the code location loads). See deploy/README.md.
"""

import importlib
import os
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

SCALE_OUT_ENV = "LEROBOT_ASSETS_SCALE_OUT"
DEPLOY_DIR_ENV = "LEROBOT_ASSETS_DEPLOY_DIR"
# name -> (module, executor attribute, pip requirement matching dagster 1.13.27)
SCALE_OUT_EXECUTORS: dict[str, tuple[str, str, str]] = {
    "k8s": ("dagster_k8s", "k8s_job_executor", "dagster-k8s==0.29.27"),
    "celery": ("dagster_celery", "celery_executor", "dagster-celery==0.29.27"),
}


def deploy_dir() -> Path:
    """deploy/ of the repository (or $LEROBOT_ASSETS_DEPLOY_DIR)."""
    return Path(os.environ.get(DEPLOY_DIR_ENV) or Path(__file__).resolve().parents[2] / "deploy")


def load_run_config(name: str) -> dict[str, Any]:
    path = deploy_dir() / name / "run_config.yaml"
    return yaml.safe_load(path.read_text()) or {}


def scale_out_jobs(selection: dg.AssetSelection) -> list[Any]:
    raw = os.environ.get(SCALE_OUT_ENV, "")
    required = {s.strip() for s in raw.split(",") if s.strip()}
    unknown = required - set(SCALE_OUT_EXECUTORS)
    if unknown:
        raise ValueError(f"{SCALE_OUT_ENV}={raw!r}: unknown {sorted(unknown)}; choose from {sorted(SCALE_OUT_EXECUTORS)}")
    jobs = []
    for name, (module, attr, requirement) in SCALE_OUT_EXECUTORS.items():
        try:
            executor = getattr(importlib.import_module(module), attr)
        except ImportError as e:
            if name in required:
                raise ImportError(f"{SCALE_OUT_ENV} asks for {name}: pip install '{requirement}' ({e})") from e
            continue
        config_path = deploy_dir() / name / "run_config.yaml"
        if not config_path.is_file():
            if name in required:
                raise FileNotFoundError(f"{config_path}: run config of the {name} executor not found")
            continue
        jobs.append(
            dg.define_asset_job(
                f"session_job_{name}",
                selection=selection,
                executor_def=executor,
                config=load_run_config(name),
                description=f"session_job on the {name} executor, configured by deploy/{name}/run_config.yaml",
            )
        )
    return jobs
