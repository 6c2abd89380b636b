"""The VLM reply cache: one JSON file per (model, prompt, images) on disk, written atomically, so a
re-run or a resumed run never pays twice for the same call. Keys hash the model name, the messages'
text and the SHA-256 of each image sent; never the API key or the server URL."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lerobot_assets.format.atomic import write_atomic


def reply_key(model: str, messages: list[dict[str, Any]]) -> str:
    """Images (data URLs) are reduced to their hash: the key is small and the same bytes give the same key."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("type") == "image_url":
                url = (value.get("image_url") or {}).get("url", "")
                return {"image_sha256": hashlib.sha256(url.encode()).hexdigest()}
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    payload = json.dumps({"model": model, "messages": strip(messages)}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class ReplyCache:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any | None:
        try:
            return json.loads(self._path(key).read_text())["reply"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def put(self, key: str, reply: Any) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"reply": reply}, sort_keys=True, ensure_ascii=False).encode()
        def write(tmp: Path) -> None:
            tmp.write_bytes(data)

        write_atomic(path, write)
