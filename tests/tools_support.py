"""Helpers for the dataset-tool tests: input trees must be byte-for-byte unchanged."""

import hashlib
from pathlib import Path


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under root (symlinks by target text)."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + str(p.readlink())
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
