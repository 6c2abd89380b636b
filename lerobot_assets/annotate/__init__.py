"""Language annotations (LeRobot 0.6.1's `language_persistent` / `language_events`): modules, staging,
validator and writer, with the offline `sim` backend and an OpenAI-compatible VLM backend. No Dagster."""

from lerobot_assets.annotate.backends.sim import SimBackend
from lerobot_assets.annotate.config import MODULES, AnnotateConfig
from lerobot_assets.annotate.pipeline import AnnotateResult, annotate_dataset, parse_episodes, validate_annotations
from lerobot_assets.annotate.resolve import active_at, emitted_at, nth_next, nth_prev
from lerobot_assets.annotate.validator import AnnotationValidationError, Issue, Report

__all__ = [
    "MODULES",
    "AnnotateConfig",
    "AnnotateResult",
    "AnnotationValidationError",
    "Issue",
    "Report",
    "SimBackend",
    "active_at",
    "annotate_dataset",
    "emitted_at",
    "nth_next",
    "nth_prev",
    "parse_episodes",
    "validate_annotations",
]
