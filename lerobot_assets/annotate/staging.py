"""Staged rows, one JSONL file per (episode, module), written atomically; what makes a run resumable.

`<dir>/episode_{ep:06d}/{module}.jsonl` holds the rows (sort_keys, one per line, as LeRobot's
staging); `{module}.key` beside it holds the digest of everything the rows were computed from
(episode content, module config, backend identity, upstream rows). The key file is written last,
so a file without its key (a run killed mid-write) counts as not done; a re-run skips a pair whose
key matches and recomputes one whose inputs changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lerobot_assets.format.atomic import write_atomic


def write_bytes_atomic(path: Path, data: bytes) -> None:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    write_atomic(path, write)


class Staging:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _dir(self, episode: int) -> Path:
        return self.root / f"episode_{episode:06d}"

    def rows_path(self, episode: int, module: str) -> Path:
        return self._dir(episode) / f"{module}.jsonl"

    def key_path(self, episode: int, module: str) -> Path:
        return self._dir(episode) / f"{module}.key"

    def is_done(self, episode: int, module: str, key: str) -> bool:
        try:
            return self.key_path(episode, module).read_text() == key and self.rows_path(episode, module).is_file()
        except FileNotFoundError:
            return False

    def write(self, episode: int, module: str, rows: list[dict[str, Any]], key: str) -> None:
        self._dir(episode).mkdir(parents=True, exist_ok=True)
        kp = self.key_path(episode, module)
        if kp.exists():
            os.unlink(kp)  # rows and key change together: no stale key over new rows
        text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)
        write_bytes_atomic(self.rows_path(episode, module), text.encode())
        write_bytes_atomic(kp, key.encode())

    def read(self, episode: int, module: str) -> list[dict[str, Any]]:
        path = self.rows_path(episode, module)
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
