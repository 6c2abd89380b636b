"""A raw session folder: what it holds once validated, and the facts read off the folder itself
(complete or not, its episode folders, a fingerprint of its files, its size)."""

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lerobot_assets.sources.inbox.spec import COMPLETE_MARKER, FRAMES_FILE, SessionSpec

_EPISODE_RE = re.compile(r"^episode_(\d+)$")


@dataclass(frozen=True)
class RawCamera:
    key: str
    kind: Literal["mp4", "png"]
    path: Path


@dataclass
class RawEpisode:
    index: int
    dir: Path
    length: int
    tasks: list[str]
    cameras: dict[str, RawCamera] = field(default_factory=dict)

    @property
    def frames_file(self) -> Path:
        return self.dir / FRAMES_FILE


@dataclass
class RawSession:
    root: Path
    spec: SessionSpec
    episodes: list[RawEpisode]

    @property
    def frames(self) -> int:
        return sum(e.length for e in self.episodes)

    @property
    def duration_s(self) -> float:
        return self.frames / self.spec.fps

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(t for e in self.episodes for t in e.tasks))

    def camera_kinds(self) -> dict[str, str]:
        kinds: dict[str, set[str]] = {k: set() for k in self.spec.cameras}
        for e in self.episodes:
            for k, c in e.cameras.items():
                kinds[k].add(c.kind)
        return {k: "+".join(sorted(v)) for k, v in kinds.items()}


def is_complete(root: Path | str) -> bool:
    return (Path(root) / COMPLETE_MARKER).is_file()



def episode_dirs(root: Path) -> list[tuple[int, Path]]:
    """(number, folder) of every `episode_<n>` folder, in episode order (by number)."""
    out = []
    for p in Path(root).iterdir():
        m = _EPISODE_RE.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def session_fingerprint(root: Path | str) -> str:
    """Hash of every file's relative path, size and mtime: changes when any recorded file changes."""
    root = Path(root)
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            st = p.stat()
            h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def session_bytes(root: Path | str) -> int:
    return sum((Path(d) / f).stat().st_size for d, _, files in os.walk(root) for f in files)
