"""Crash-safe publication of the several files one saved episode touches.

Every new file version is written to a hidden temp sibling first. Publishing writes a redo journal
(the list of renames) atomically, performs the renames, then removes the journal. A process killed
at any point leaves either the previous dataset (journal absent: the temp files are strays) or a
journal that `recover()` rolls forward on the next open. Readers never see a partial file.
"""

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from lerobot_assets.format.atomic import fsync_dir, temp_sibling, write_json_atomic, write_parquet
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import COMMIT_JOURNAL_PATH, STAGING_DIR, WRITER_TEMP_GLOB
from lerobot_assets.recording.paths import template_tops

JOURNAL = COMMIT_JOURNAL_PATH  # one name with the readers (validate) that watch for it
_SCAN_DIRS = ("meta", "data", "videos")


class Commit:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.moves: list[tuple[Path, Path]] = []
        # Earlier temps of a file staged again; kept readable (a new version may be built from
        # them) and removed on publish/abort.
        self.superseded: list[Path] = []

    def stage(self, final: Path, suffix: str = "") -> Path:
        """A temp path that will replace `final` on publish. Later stages of one file win."""
        self.superseded += [t for t, f in self.moves if f == final]
        self.moves = [(t, f) for t, f in self.moves if f != final]
        tmp = temp_sibling(final, suffix)
        self.moves.append((tmp, final))
        return tmp

    def latest(self, final: Path) -> Path:
        """The newest version of `final`: its staged temp if any, else the file itself."""
        for tmp, f in reversed(self.moves):
            if f == final:
                return tmp
        return final

    def target_of(self, path: str | os.PathLike[str] | None) -> Path | None:
        """The file a staged temp (or a temp a writer made beside it, `.<temp name>.*`) stands
        for, so an error can name the dataset's file rather than a hidden temp; else None."""
        if path is None:
            return None
        name = Path(os.fsdecode(path)).name
        for tmp, final in self.moves:
            if name == tmp.name or name.startswith(f".{tmp.name}."):
                return final
        return None

    def stage_parquet(self, final: Path, tables: list[pa.Table] | pa.Table) -> None:
        write_parquet(self.stage(final), tables)

    def stage_json(self, final: Path, obj: Any) -> None:
        tmp = self.stage(final)
        tmp.write_text(json.dumps(obj, indent=4, ensure_ascii=False), encoding="utf-8")

    def publish(self) -> None:
        for tmp, _ in self.moves:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        journal = self.root / JOURNAL
        write_json_atomic(
            journal,
            [[str(t.relative_to(self.root)), str(f.relative_to(self.root))] for t, f in self.moves],
        )
        _apply(self.root, json.loads(journal.read_text()))
        # The renames must be on disk before the journal's removal is: after a power cut a journal
        # that is gone while a rename is not would leave the old file with no way to roll forward.
        for parent in dict.fromkeys(f.parent for _, f in self.moves):
            fsync_dir(parent)
        journal.unlink()
        fsync_dir(journal.parent)
        self._drop_superseded()
        self.moves = []

    def abort(self) -> None:
        for tmp, _ in self.moves:
            tmp.unlink(missing_ok=True)
        self._drop_superseded()
        self.moves = []

    def _drop_superseded(self) -> None:
        for tmp in self.superseded:
            tmp.unlink(missing_ok=True)
        self.superseded = []


def _apply(root: Path, moves: list[list[str]]) -> None:
    for tmp, final in moves:
        src = root / tmp
        if src.exists():
            os.replace(src, root / final)


def _template_tops(root: Path) -> list[str]:
    """Where the dataset's own templates put data and video files (temps are staged beside them)."""
    try:
        return template_tops(DatasetInfo.load(root))
    except (OSError, ValueError):
        return []  # no or unreadable info.json: the default directories are scanned


def recover(root: Path) -> list[str]:
    """Roll a pending journal forward and remove stray temp files; returns what was done."""
    root = Path(root)
    done: list[str] = []
    journal = root / JOURNAL
    if journal.is_file():
        moves = json.loads(journal.read_text())
        _apply(root, moves)
        journal.unlink()
        done.append(f"completed an interrupted commit of {len(moves)} files")
    for d in dict.fromkeys([*_SCAN_DIRS, *_template_tops(root)]):
        base = root / d
        if not base.is_dir():
            continue
        for stray in base.rglob(WRITER_TEMP_GLOB):
            if stray.is_file():
                stray.unlink()
                done.append(f"removed unpublished temp file {stray.relative_to(root)}")
    staging = root / STAGING_DIR
    # A journal whose own atomic write was killed (its commit never started): only the top level,
    # the episode scratch below belongs to the lock holder's own cleanup.
    for stray in staging.glob(WRITER_TEMP_GLOB) if staging.is_dir() else []:
        if stray.is_file():
            stray.unlink()
            done.append(f"removed an unfinished journal {stray.relative_to(root)}")
    return done
