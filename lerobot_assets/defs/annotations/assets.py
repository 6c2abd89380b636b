"""`annotated_dataset`: the curated dataset annotated with subtasks, plans, memory, interjections and
VQA (lerobot_assets.annotate), written to datasets/annotated_dataset/. The `sim` backend by default;
`openai` through run config. Staging and the VLM reply cache live in datasets/.annotated_dataset.*,
so a re-materialization recomputes only episodes whose inputs changed.
(No `from __future__ import annotations` here: Dagster reads the annotations at definition time.)
"""

from typing import Any

import dagster as dg
from pydantic import Field

from lerobot_assets.annotate import AnnotateConfig, SimBackend, annotate_dataset
from lerobot_assets.annotate.backends.base import Backend
from lerobot_assets.annotate.pipeline import default_staging
from lerobot_assets.annotate.preview import preview_image
from lerobot_assets.defs.curation.assets import curated_dataset
from lerobot_assets.defs.metadata import preview_metadata, preview_png, published
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.home.curation import CURATED_DATASET
from lerobot_assets.home.layout import HomeLayout

ANNOTATIONS_GROUP = "annotations"
ANNOTATED_DATASET = "annotated_dataset"


class AnnotateRunConfig(dg.Config):
    backend: str = Field("sim", description="sim (offline, from the recorded states) or openai")
    modules: list[str] = Field(default_factory=lambda: ["plan", "interjections", "vqa"])
    api_base: str = Field("http://localhost:8000/v1", description="openai: the server's base URL")
    model: str = Field("Qwen/Qwen2.5-VL-7B-Instruct", description="openai: the model name")
    api_key_env: str = Field("OPENAI_API_KEY", description="openai: environment variable holding the key")
    concurrency: int = Field(4, ge=1)
    seed: int = 1729
    vqa_hz: float = Field(1.0, gt=0)


def _log_progress(context: dg.AssetExecutionContext) -> Any:
    def progress(label: str, done: int, total: int) -> None:
        # A line per tenth of the episodes, not per episode (runs log to SQLite at ~30 ms an event).
        if done == total or done % max(1, total // 10) == 0:
            context.log.info(f"{label}: {done}/{total}")

    return progress


def annotated_root(layout: HomeLayout) -> Any:
    return layout.dataset(ANNOTATED_DATASET)


def make_backend(config: AnnotateRunConfig, staging: Any) -> Backend:
    if config.backend == "sim":
        return SimBackend()
    if config.backend == "openai":
        # Imported here: it pulls in the decoder stack (torch), which every process that loads the
        # code location (webserver, daemon, each step) would otherwise pay for.
        from lerobot_assets.annotate.backends.openai import OpenAIBackend

        return OpenAIBackend(config.api_base, config.model, api_key_env=config.api_key_env, cache_dir=staging / "replies", concurrency=config.concurrency)
    raise ValueError(f"unknown annotation backend {config.backend!r}; choose sim or openai")


@dg.asset(
    group_name=ANNOTATIONS_GROUP,
    deps=[curated_dataset],
    kinds={"parquet"},
    description=(
        "The curated dataset with language_persistent / language_events (LeRobot 0.6.1): subtasks, plans, "
        "memory, interjections and VQA, from the simulation's ground truth (sim) or an OpenAI-compatible VLM."
    ),
)
def annotated_dataset(context: dg.AssetExecutionContext, config: AnnotateRunConfig, home: DataHome) -> dg.MaterializeResult:
    with home.workspace(ANNOTATED_DATASET, context.log.info) as ws:
        layout = ws.layout
        ws.pull(f"datasets/{CURATED_DATASET}")
        out = annotated_root(layout)
        # On a remote home the staging (and the VLM reply cache in it) lives in this step's workspace.
        staging = default_staging(out)
        cfg = AnnotateConfig(seed=config.seed, vqa_hz=config.vqa_hz)
        result = annotate_dataset(
            layout.dataset(CURATED_DATASET), out, make_backend(config, staging), modules=config.modules, config=cfg,
            staging_dir=staging, overwrite=True, progress=_log_progress(context),
        )
        context.log.info(result.summary())
        metadata: dict[str, Any] = {
            "rows_per_style": dg.MetadataValue.json(result.rows_per_style),
            "episodes_covered": dg.MetadataValue.int(result.episodes),
            "vlm_calls": dg.MetadataValue.int(result.calls),
            "vlm_calls_from_cache": dg.MetadataValue.int(result.cached),
            "staged_results_reused": dg.MetadataValue.int(result.resumed),
            "backend": dg.MetadataValue.text(config.backend),
            "path": dg.MetadataValue.path(str(out)),
        }
        path = layout.previews / f"{ANNOTATED_DATASET}.png"
        metadata |= preview_metadata(preview_png(preview_image(out), path), path, "a frame with its active subtask and a VQA box")
        ws.write(f"datasets/{ANNOTATED_DATASET}")
        ws.write(f"previews/{ANNOTATED_DATASET}.png")
        metadata = published(ws, metadata)
    return dg.MaterializeResult(metadata=metadata)


annotation_assets = [annotated_dataset]
