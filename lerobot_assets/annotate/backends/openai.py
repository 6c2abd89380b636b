"""The `openai` backend: any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp, `transformers
serve`) through the `openai` package.

- Frames come from our decoder as JPEG contact sheets with timestamp badges (`annotate.frames`).
- Prompts ask for the JSON shapes of LeRobot 0.6.1's prompts (our wording). A reply is parsed after
  stripping `<think>` blocks and code fences, else from its first balanced `{...}`; a reply that still
  does not parse gets ONE repair re-prompt, and a second failure counts as no answer.
- HTTP 429 / 5xx, timeouts and connection errors are retried with exponential backoff (`max_retries`),
  each call bounded by `timeout_s`; VQA prompts of an episode run `concurrency` at a time.
- Replies are cached on disk (`annotate.cache`), keyed by model, prompt and image hashes: a re-run or a
  resumed run makes no call twice.
- The API key is read from the environment variable `api_key_env`; it is never logged, stored or put
  in an error message.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lerobot_assets.annotate.backends.base import BackendError, RawSpan, VqaRequest
from lerobot_assets.annotate.cache import ReplyCache, reply_key
from lerobot_assets.annotate.config import AnnotateConfig
from lerobot_assets.annotate.episodes import EpisodeData
from lerobot_assets.annotate.frames import contact_sheets, frames_at, image_block, jpeg, sample_times
from lerobot_assets.annotate.schema import row
from lerobot_assets.annotate.validator import validate_episode

logger = logging.getLogger(__name__)
PROMPT_VERSION = "v1"
SHEET_HELP = (
    "The images are contact sheets: frames of one robot episode in time order, left to right and top to "
    "bottom; the badge in each frame's top-left corner is its time in seconds."
)
PROMPTS = {
    "plan_subtasks": (
        "{sheets}\nTask: {task}\nThe episode lasts {duration:.2f} s. Split it into the subtasks the robot completed, "
        "in order, each at least {min_seconds} s long, at most {max_steps} of them, without overlap, inside [0, {duration:.2f}]. "
        "Label each with a short imperative (push, pull, pick up, place, turn, ...). "
        'Reply with JSON only: {{"subtasks": [{{"text": "...", "start": 0.0, "end": 1.0}}]}}'
    ),
    "plan_task_rephrasings": (
        "Give {n} distinct rephrasings of this robot instruction that keep its meaning: {task}\n"
        'Reply with JSON only: {{"rephrasings": ["..."]}}'
    ),
    "plan_memory": (
        "Task: {task}\nWhat the robot remembered so far: {prior}\nIt just completed: {completed}\nStill to do: {remaining}\n"
        "Write the robot's updated memory in 1-2 short first-person sentences, past tense. "
        'Reply with JSON only: {{"memory": "..."}}'
    ),
    "interjections_initial_speech": (
        'The user asked a robot: "{task}". Write the robot\'s very short spoken acknowledgement. '
        'Reply with JSON only: {{"text": "..."}}'
    ),
    "interjections_interjection": (
        "{sheets}\nTask: {task}\nAround t={t:.2f} s the robot finished \"{prev}\" and starts \"{next}\". "
        "Write what a user might say to cue that next step (never a change of plan), and the robot's short spoken reply. "
        'Reply with JSON only: {{"interjection": "...", "speech": "..."}}'
    ),
    "vqa": (
        "Task: {task}\nAsk one question about this single camera image whose answer is visible in it, of type "
        "{question_type}, and answer it. Answer shapes: bbox {{\"detections\": [{{\"label\": \"...\", \"bbox_format\": \"xyxy\", "
        "\"bbox\": [x1, y1, x2, y2]}}]}} in pixels; keypoint {{\"label\": \"...\", \"point_format\": \"xy\", \"point\": [x, y]}}; "
        "count {{\"label\": \"...\", \"count\": 0}}; attribute {{\"label\": \"...\", \"attribute\": \"...\", \"value\": \"...\"}}; "
        "spatial {{\"subject\": \"...\", \"relation\": \"left_of|right_of|on|in|above|below|near\", \"object\": \"...\"}}. "
        'Reply with JSON only: {{"question": "...", "answer": {{...}}}}'
    ),
}
REPAIR = "Your previous reply was not valid JSON. Reply again with only the JSON object, nothing else."


def prompt(name: str, **values: Any) -> str:
    """A prompt template filled in; `LEROBOT_ASSETS_PROMPT_<NAME>` in the environment replaces it."""
    template = os.environ.get(f"LEROBOT_ASSETS_PROMPT_{name.upper()}") or PROMPTS[name]
    return template.format(**values)


_THINK = re.compile(r"<think>.*?</think>", re.S)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def extract_json(text: str | None) -> Any | None:
    """The JSON object of a reply, or None."""
    if not text:
        return None
    text = _THINK.sub("", text).strip()
    m = _FENCE.match(text)
    if m:
        text = m.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    start = text.find("{")
    while start >= 0:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            c = text[i]
            if in_str:
                esc = (c == "\\") and not esc
                if c == '"' and not esc:
                    in_str = False
                elif c != "\\":
                    esc = False
                continue
            if c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    try:
                        return json.loads(text[start : i + 1])
                    except json.JSONDecodeError:
                        break
        start = text.find("{", start + 1)
    return None


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        api_base: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        cache_dir: Path | str | None = None,
        concurrency: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        temperature: float = 0.2,
        max_tokens: int = 512,
        camera: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import openai

        self._openai = openai
        self.api_base, self.model = api_base.rstrip("/"), model
        self._key = os.environ.get(api_key_env) or "EMPTY"
        # Our own retries (the SDK's are off): we decide what is retried, how often, and we count calls.
        self.client = openai.OpenAI(base_url=self.api_base, api_key=self._key, max_retries=0, timeout=timeout_s)
        self.cache = ReplyCache(cache_dir) if cache_dir else None
        self.concurrency = max(1, concurrency)
        self.max_retries, self.backoff_s, self.timeout_s = max_retries, backoff_s, timeout_s
        self.temperature, self.max_tokens = temperature, max_tokens
        self.camera = camera
        self.sleep = sleep
        self._lock = threading.Lock()
        self._counts = {"calls": 0, "cached": 0, "retries": 0, "repairs": 0, "failed": 0}

    # -- plumbing ----------------------------------------------------------------------------
    def _safe(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key and self._key != "EMPTY" else text

    def check(self) -> None:
        """Fail early, with the URL and the error, when the server cannot be reached."""
        try:
            self.client.models.list()
        except self._openai.APIStatusError:
            return  # it answers (some servers have no /models): reachable
        except self._openai.OpenAIError as e:
            raise BackendError(self._safe(f"cannot reach the VLM server at {self.api_base}: {type(e).__name__}: {e}")) from None

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def identity(self) -> str:
        return f"openai:{self.model}:{PROMPT_VERSION}"

    def _complete(self, messages: list[dict[str, Any]]) -> str:
        """One completion, retried with backoff on 429, 5xx, timeouts and connection errors."""
        oa = self._openai
        for attempt in range(self.max_retries + 1):
            self._count("calls")
            try:
                reply = self.client.chat.completions.create(
                    model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=self.temperature  # type: ignore[arg-type]
                )
                return reply.choices[0].message.content or ""
            except (oa.RateLimitError, oa.InternalServerError, oa.APITimeoutError, oa.APIConnectionError) as e:
                status = getattr(e, "status_code", None) or type(e).__name__
                if attempt == self.max_retries:
                    raise BackendError(self._safe(f"{self.api_base}: {status} after {attempt + 1} attempts: {e}")) from None
                self._count("retries")
                delay = self.backoff_s * (2**attempt)
                logger.info("VLM call failed (%s); retry %d in %.2f s", status, attempt + 1, delay)
                self.sleep(delay)
            except oa.APIStatusError as e:
                raise BackendError(self._safe(f"{self.api_base}: HTTP {e.status_code}: {e}")) from None
        raise AssertionError("unreachable")

    def ask(self, content: list[dict[str, Any]] | str) -> Any | None:
        """The parsed JSON reply to one user message (cached), or None when it never parses."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        key = reply_key(self.model, messages)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self._count("cached")
                return hit
        text = self._complete(messages)
        parsed = extract_json(text)
        if parsed is None:
            self._count("repairs")
            parsed = extract_json(self._complete([*messages, {"role": "assistant", "content": text}, {"role": "user", "content": REPAIR}]))
        if parsed is None:
            self._count("failed")
            return None
        if self.cache is not None:
            self.cache.put(key, parsed)
        return parsed

    def _camera(self, ep: EpisodeData) -> str | None:
        cam = self.camera or (ep.cameras[0].key if ep.cameras else None)
        return cam if cam is not None and cam in ep.videos else None

    def _with_sheets(self, ep: EpisodeData, times: list[float], text: str) -> list[dict[str, Any]]:
        cam = self._camera(ep)
        if cam is None:
            return [{"type": "text", "text": text}]
        sheets = contact_sheets(frames_at(ep, cam, times), times)
        return [*(image_block(s) for s in sheets), {"type": "text", "text": text}]

    # -- plan --------------------------------------------------------------------------------
    def subtasks(self, ep: EpisodeData, cfg: AnnotateConfig) -> list[RawSpan]:
        text = prompt(
            "plan_subtasks", sheets=SHEET_HELP if self._camera(ep) else "", task=ep.task, duration=ep.duration,
            min_seconds=cfg.min_subtask_seconds, max_steps=cfg.plan_max_steps,
        )
        reply = self.ask(self._with_sheets(ep, sample_times(ep), text))
        items = reply.get("subtasks") if isinstance(reply, dict) else None
        out = []
        for it in items if isinstance(items, list) else []:
            if isinstance(it, dict) and isinstance(it.get("text"), str):
                try:
                    out.append(RawSpan(it["text"], ep.times[0] + float(it["start"]), ep.times[0] + float(it["end"])))
                except (TypeError, ValueError, KeyError):
                    continue
        return out[: cfg.plan_max_steps]

    def task_variants(self, ep: EpisodeData, task: str, n: int, cfg: AnnotateConfig) -> list[str]:
        reply = self.ask(prompt("plan_task_rephrasings", n=n, task=task))
        items = reply.get("rephrasings") if isinstance(reply, dict) else None
        return [s for s in items if isinstance(s, str)][:n] if isinstance(items, list) else []

    def memory(self, ep: EpisodeData, prior: str, completed: str, remaining: list[str]) -> str:
        reply = self.ask(prompt("plan_memory", task=ep.task, prior=prior or "(nothing yet)", completed=completed, remaining="; ".join(remaining)))
        value = reply.get("memory") if isinstance(reply, dict) else None
        return value if isinstance(value, str) else ""

    # -- interjections -----------------------------------------------------------------------
    def initial_speech(self, ep: EpisodeData, task: str, cfg: AnnotateConfig) -> str | None:
        reply = self.ask(prompt("interjections_initial_speech", task=task))
        value = reply.get("text") if isinstance(reply, dict) else None
        return value if isinstance(value, str) and value.strip() else None

    def interjection(self, ep: EpisodeData, prev: str, nxt: str, t: float, cfg: AnnotateConfig) -> tuple[str, str] | None:
        half = cfg.interjection_window_seconds / 2
        times = sorted({ep.snap(t - half + k * cfg.interjection_window_seconds / 3) for k in range(4)})
        text = prompt("interjections_interjection", sheets=SHEET_HELP if self._camera(ep) else "", task=ep.task, t=t - ep.times[0], prev=prev, next=nxt)
        reply = self.ask(self._with_sheets(ep, times, text))
        if not isinstance(reply, dict):
            return None
        cue, speech = reply.get("interjection"), reply.get("speech")
        if isinstance(cue, str) and cue.strip() and isinstance(speech, str) and speech.strip():
            return cue, speech
        return None

    # -- vqa ---------------------------------------------------------------------------------
    def supports_vqa(self, ep: EpisodeData) -> bool:
        return bool(ep.videos)

    def vqa(self, ep: EpisodeData, requests: list[VqaRequest], cfg: AnnotateConfig) -> list[tuple[str, dict[str, Any]] | None]:
        cams = {c.key: c for c in ep.cameras}
        frames: dict[tuple[str, float], bytes] = {}
        for cam in {r.camera for r in requests}:
            times = sorted({r.timestamp for r in requests if r.camera == cam})
            for t, f in zip(times, frames_at(ep, cam, times)):
                frames[(cam, t)] = jpeg(f)

        def one(r: VqaRequest) -> tuple[str, dict[str, Any]] | None:
            text = prompt("vqa", task=ep.task, question_type=r.question_type)
            reply = self.ask([image_block(frames[(r.camera, r.timestamp)]), {"type": "text", "text": text}])
            if not isinstance(reply, dict):
                return None
            q, a = reply.get("question"), reply.get("answer")
            if not (isinstance(q, str) and q.strip() and isinstance(a, dict)):
                return None
            # An answer the validator would reject (no known shape, a box outside the image) is dropped
            # here: one bad VLM answer must not fail the whole run.
            problems = validate_episode(ep.index, [r.timestamp], {"vqa": [
                row("user", q, "vqa", r.timestamp, r.camera), row("assistant", json.dumps(a), "vqa", r.timestamp, r.camera),
            ]}, cams).errors
            return None if problems else (q, a)

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(requests)))) as pool:
            return list(pool.map(one, requests))
