"""The `openai` backend against a small OpenAI-compatible server on loopback, started by the test:
canned replies per prompt, malformed JSON (one repair re-prompt), 429s and 500s (retries with
backoff), slow replies (per-call timeout), the reply cache on re-run, resume after a kill, and the
API key never in a log, an error or the result."""

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lerobot_assets.annotate import AnnotateConfig, annotate_dataset, validate_annotations
from lerobot_assets.annotate.backends.base import BackendError
from lerobot_assets.annotate.backends.openai import REPAIR, OpenAIBackend, extract_json
from lerobot_assets.annotate.episodes import iter_episodes
from lerobot_assets.sources.pusht.config import PushTSourceConfig
from lerobot_assets.sources.pusht.record import record_pusht

KEY = "sk-test-DO-NOT-LEAK-4242"
CAM = "observation.image"


def _reply_for(text: str) -> dict[str, Any]:
    if "Split it into the subtasks" in text:
        return {"subtasks": [
            {"text": "reach the block", "start": 0.0, "end": 1.5},
            {"text": "push the block", "start": 1.5, "end": 3.0},
            {"text": "rotate the block", "start": 3.0, "end": 4.5},
            {"text": "back away", "start": 4.5, "end": 5.9},
        ]}
    if "rephrasings" in text:
        return {"rephrasings": ["Move the T onto the target.", "Align the T block with the goal."]}
    if "updated memory" in text:
        return {"memory": "I finished a step."}
    if "spoken acknowledgement" in text:
        return {"text": "On it."}
    if "cue that next step" in text:
        return {"interjection": "Now the next step.", "speech": "Okay."}
    if "of type bbox" in text:
        return {"question": "Where is the block?", "answer": {"detections": [{"label": "block", "bbox_format": "xyxy", "bbox": [10, 12, 40, 50]}]}}
    if "of type keypoint" in text:
        return {"question": "Where is the agent?", "answer": {"label": "agent", "point_format": "xy", "point": [20, 30]}}
    if "of type count" in text:
        return {"question": "How many blocks?", "answer": {"label": "block", "count": 1}}
    if "of type attribute" in text:
        return {"question": "What color is the block?", "answer": {"label": "block", "attribute": "color", "value": "gray"}}
    return {"question": "Where is the agent?", "answer": {"subject": "agent", "relation": "left_of", "object": "block"}}


class FakeServer:
    """OpenAI-compatible: GET /v1/models, POST /v1/chat/completions. `faults` is consumed in order by
    chat requests: 429, 500, "slow" (sleeps past the client's timeout), "malformed" (prose + broken
    JSON), or None (the canned reply)."""

    def __init__(self) -> None:
        self.faults: list[Any] = []
        self.requests: list[dict[str, Any]] = []
        self.auth: set[str] = set()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any] | str) -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                server.auth.add(self.headers.get("Authorization", ""))
                self._send(200, {"object": "list", "data": [{"id": "fake-vlm", "object": "model", "created": 0, "owned_by": "test"}]})

            def do_POST(self) -> None:
                server.auth.add(self.headers.get("Authorization", ""))
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    fault = server.faults.pop(0) if server.faults else None
                if fault in (429, 500):
                    self._send(fault, {"error": {"message": f"fault {fault}", "type": "test"}})
                    return
                if fault == "slow":
                    time.sleep(1.5)
                last = body["messages"][-1]["content"]
                text = last if isinstance(last, str) else " ".join(b.get("text", "") for b in last if b.get("type") == "text")
                if fault == "malformed":
                    content = 'Sure! Here it is: {"subtasks": [ {"text": "oops", '
                elif text == REPAIR:
                    first = body["messages"][0]["content"]
                    first_text = first if isinstance(first, str) else " ".join(b.get("text", "") for b in first if b.get("type") == "text")
                    content = "```json\n" + json.dumps(_reply_for(first_text)) + "\n```"
                else:
                    content = "<think>let me see</think>" + json.dumps(_reply_for(text))
                self._send(200, {
                    "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                })

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def chat_requests(self) -> int:
        with self.lock:
            return len(self.requests)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture(scope="module")
def pusht(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("src") / "pusht"
    record_pusht(root, PushTSourceConfig(seed=2, episodes=2, max_steps=60, top_camera=False))
    return root


CFG = AnnotateConfig(vqa_hz=0.5, n_task_rephrasings=2, max_interjections=1)


def _backend(server: FakeServer, tmp_path: Path, delays: list[float] | None = None, cache: bool = True) -> OpenAIBackend:
    return OpenAIBackend(
        server.url, "fake-vlm", cache_dir=tmp_path / "cache" if cache else None, concurrency=3, timeout_s=0.5,
        max_retries=4, backoff_s=0.01, sleep=(delays.append if delays is not None else lambda s: None),
    )


def test_retries_repair_and_cache(server: FakeServer, pusht: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    server.faults = [429, 500, "slow", "malformed"]
    delays: list[float] = []
    backend = _backend(server, tmp_path, delays)
    first = annotate_dataset(pusht, tmp_path / "out", backend, config=CFG, staging_dir=tmp_path / "staging")
    c = backend.counters()
    assert c["retries"] == 3 and delays == [0.01, 0.02, 0.04]  # 429, 500, timeout: backoff doubles
    assert c["repairs"] == 1  # the malformed plan reply got one repair re-prompt
    assert any(m["messages"][-1]["content"] == REPAIR for m in server.requests)
    assert first.calls == server.chat_requests()  # (prompts repeated across episodes come from the cache)
    assert validate_annotations(tmp_path / "out").ok
    for ep in iter_episodes(tmp_path / "out"):
        texts = [r["content"] for r in ep.persistent if r["style"] == "subtask"]
        assert texts[0] == "reach the block" and len(texts) == 4
        assert any(r["style"] == "vqa" and r["camera"] == CAM for r in ep.events)
    # images went out as JPEG data URLs with the prompt
    vqa_msg = next(m for m in server.requests if "of type" in json.dumps(m))
    assert vqa_msg["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,")

    # A re-run from scratch (new staging) pays for nothing: every reply comes from the cache.
    before = server.chat_requests()
    backend2 = _backend(server, tmp_path)
    again = annotate_dataset(pusht, tmp_path / "out2", backend2, config=CFG, staging_dir=tmp_path / "staging2")
    assert server.chat_requests() == before and again.calls == 0 and again.cached > 0
    assert (tmp_path / "out2/data/chunk-000/file-000.parquet").read_bytes() == (tmp_path / "out/data/chunk-000/file-000.parquet").read_bytes()

    # The key went to the server, and nowhere else.
    assert f"Bearer {KEY}" in server.auth
    assert KEY not in caplog.text
    assert KEY not in first.summary() and KEY not in json.dumps(backend.counters())
    assert not any(KEY in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".key"))


def test_resume_after_a_kill(server: FakeServer, pusht: Path, tmp_path: Path) -> None:
    def kill_after_first(label: str, done: int, total: int) -> None:
        if label == "vqa" and done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        annotate_dataset(pusht, tmp_path / "out", _backend(server, tmp_path, cache=False), config=CFG,
                         staging_dir=tmp_path / "staging", progress=kill_after_first)
    assert not (tmp_path / "out").exists()
    paid = server.chat_requests()
    resumed = annotate_dataset(pusht, tmp_path / "out", _backend(server, tmp_path, cache=False), config=CFG, staging_dir=tmp_path / "staging")
    assert resumed.resumed == 3  # episode 0's three modules came from staging
    asked_again = server.chat_requests() - paid
    assert validate_annotations(tmp_path / "out").ok
    # A run from scratch asks for both episodes: the resumed run asked for episode 1 only.
    before = server.chat_requests()
    annotate_dataset(pusht, tmp_path / "full", _backend(server, tmp_path, cache=False), config=CFG, staging_dir=tmp_path / "fresh")
    assert server.chat_requests() - before == paid + asked_again


def test_server_errors_fail_the_run_with_nothing_written(server: FakeServer, pusht: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.faults = [500] * 10
    with pytest.raises(BackendError, match=r"500 after 5 attempts") as err:
        annotate_dataset(pusht, tmp_path / "out", _backend(server, tmp_path), config=CFG, staging_dir=tmp_path / "s")
    assert server.url in str(err.value) and KEY not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_unreachable_server_names_the_url(pusht: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    url = "http://127.0.0.1:9/v1"
    backend = OpenAIBackend(url, "m", timeout_s=0.5, max_retries=0)
    with pytest.raises(BackendError, match="cannot reach the VLM server at http://127.0.0.1:9/v1") as err:
        annotate_dataset(pusht, tmp_path / "out", backend, staging_dir=tmp_path / "s")
    assert KEY not in str(err.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "s").exists()


def test_extract_json() -> None:
    assert extract_json('<think>{"no": 1}</think>{"a": 1}') == {"a": 1}
    assert extract_json('```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert extract_json('Here: {"a": "}{"} and more') == {"a": "}{"}
    assert extract_json('{"a": "x\\"}"}') == {"a": 'x"}'}
    assert extract_json("no json here") is None
    assert extract_json('{"a": ') is None
