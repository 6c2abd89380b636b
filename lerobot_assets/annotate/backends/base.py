"""What a backend answers; the modules (`annotate.modules`) turn the answers into rows. Both backends
answer the same questions, so plan / interjections / vqa behave the same whichever one runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from lerobot_assets.annotate.config import AnnotateConfig
from lerobot_assets.annotate.episodes import EpisodeData


@dataclass(frozen=True)
class RawSpan:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class VqaRequest:
    timestamp: float
    camera: str
    question_type: str


class BackendError(RuntimeError):
    """The backend cannot run (unreachable server, bad configuration): one line, naming the thing."""


class Backend(Protocol):
    name: str

    def identity(self) -> str:
        """What staged outputs depend on besides inputs and config (backend name, model, prompt version)."""
        ...

    def subtasks(self, ep: EpisodeData, cfg: AnnotateConfig) -> list[RawSpan]: ...

    def task_variants(self, ep: EpisodeData, task: str, n: int, cfg: AnnotateConfig) -> list[str]: ...

    def memory(self, ep: EpisodeData, prior: str, completed: str, remaining: list[str]) -> str: ...

    def initial_speech(self, ep: EpisodeData, task: str, cfg: AnnotateConfig) -> str | None: ...

    def interjection(self, ep: EpisodeData, prev: str, nxt: str, t: float, cfg: AnnotateConfig) -> tuple[str, str] | None: ...

    def supports_vqa(self, ep: EpisodeData) -> bool: ...

    def vqa(self, ep: EpisodeData, requests: list[VqaRequest], cfg: AnnotateConfig) -> list[tuple[str, dict[str, Any]] | None]: ...

    def counters(self) -> dict[str, int]:
        """Calls made and calls served from the reply cache (the sim backend makes none)."""
        ...
