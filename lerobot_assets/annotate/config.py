"""What an annotation run does: modules, sampling and their defaults (LeRobot 0.6.1's where they exist)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

MODULES = ("plan", "interjections", "vqa")
QUESTION_TYPES = ("bbox", "keypoint", "count", "attribute", "spatial")


@dataclass(frozen=True)
class AnnotateConfig:
    seed: int = 1729
    # plan
    emit_plan: bool = True
    emit_memory: bool = True
    n_task_rephrasings: int = 3
    min_subtask_seconds: float = 1.5
    plan_max_steps: int = 8
    # interjections
    max_interjections: int = 3
    interjection_min_t: float = 2.0
    interjection_window_seconds: float = 2.0
    # vqa
    vqa_hz: float = 1.0
    vqa_k: int = 1
    question_types: tuple[str, ...] = QUESTION_TYPES
    cameras: tuple[str, ...] | None = None  # None: every camera
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [q for q in self.question_types if q not in QUESTION_TYPES]
        if bad:
            raise ValueError(f"unknown VQA question type(s) {bad}; known: {list(QUESTION_TYPES)}")
        if self.vqa_hz <= 0:
            raise ValueError(f"vqa_hz must be > 0, got {self.vqa_hz}")

    def digest(self, module: str) -> str:
        """What a module's staged output depends on in this config."""
        keys = {
            "plan": ("seed", "emit_plan", "emit_memory", "n_task_rephrasings", "min_subtask_seconds", "plan_max_steps"),
            "interjections": ("seed", "max_interjections", "interjection_min_t", "interjection_window_seconds"),
            "vqa": ("seed", "vqa_hz", "vqa_k", "question_types", "cameras"),
        }[module]
        d = asdict(self)
        return hashlib.sha256(json.dumps({k: d[k] for k in keys}, sort_keys=True).encode()).hexdigest()[:16]
