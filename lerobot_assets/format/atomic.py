"""Atomic file writes: every write lands in a sibling temp file, then os.replace()s the target.

A reader (or a crash) therefore sees either the old or the new file, never a partial one; whole
directories are swapped by `replace_dir`, whose interrupted swaps `recover_replace` completes.
"""

import fcntl
import glob
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_TEMP_ATTEMPTS = 100


def _candidates(parent: Path, prefix: str, suffix: str) -> Iterator[Path]:
    for _ in range(_TEMP_ATTEMPTS):
        yield parent / f"{prefix}{secrets.token_hex(4)}{suffix}"


def temp_sibling(path: Path, suffix: str = "") -> Path:
    """A fresh, empty temp file in the target's directory (same filesystem, so rename is atomic).

    Created with mode 0666 less the umask, like any file the user's process writes: mkstemp's
    0600 would make every published file private to its writer (other users and services could
    not read the datasets).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    for candidate in _candidates(path.parent, f".{path.name}.", f".tmp{suffix}"):
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"{path.parent}: no free temp name for {path.name} after {_TEMP_ATTEMPTS} tries")


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A fresh directory `parent/<prefix><random>`, mode 0777 less the umask (mkdtemp's 0700 would
    make a dataset built in it and swapped into place private to its writer)."""
    parent.mkdir(parents=True, exist_ok=True)
    for candidate in _candidates(parent, prefix, ""):
        try:
            candidate.mkdir(0o777)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"{parent}: no free temp directory name {prefix}* after {_TEMP_ATTEMPTS} tries")


def write_atomic(path: Path, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Call writer(tmp) and rename tmp over path; the temp file is removed if writer fails."""
    path = Path(path)
    tmp = temp_sibling(path, suffix)
    try:
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the temp siblings a killed `write_atomic` of `path` left (`.<name>.<random>.tmp*`);
    returns what was removed. For writers whose target nobody else writes at the same time."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = [p for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_json_atomic(path: Path, obj: Any) -> None:
    def _w(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=4, ensure_ascii=False)

    write_atomic(Path(path), _w)


def write_parquet(path: Path, tables: list[pa.Table] | pa.Table) -> None:
    """Write tables as consecutive row groups (one per table), snappy, like LeRobot's writer."""
    parts = [tables] if isinstance(tables, pa.Table) else list(tables)
    if not parts:
        raise ValueError(f"no rows to write to {path}")
    schema = parts[0].schema
    with pq.ParquetWriter(path, schema, compression="snappy", use_dictionary=True) as w:
        for t in parts:
            # A table over row_group_size would be split; keep one row group per part.
            w.write_table(t.cast(schema), row_group_size=max(1, t.num_rows))


def write_parquet_atomic(path: Path, tables: list[pa.Table] | pa.Table) -> None:
    """write_parquet to a temp sibling, then rename over path."""
    write_atomic(Path(path), lambda tmp: write_parquet(tmp, tables))


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (renames into it, removals) durable: a rename is only
    on disk once its directory is."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ directory swap
# replace_dir(new, final) swaps in three renames-and-removes, recorded first in a journal beside
# the target, `.<name>.swap.json` = {"new": <new, relative to final's parent>, "old": <name>}:
#   1. journal written (new is complete: the caller built it before calling)
#   2. final -> old          (skipped when there is no final)
#   3. new -> final
#   4. old removed, then the journal
# A process killed anywhere leaves the journal, and the next replace_dir or recover_replace of the
# target rolls it forward from whatever step it reached; so a reader that calls recover_replace
# first finds the old or the new directory complete, never none, and no leftovers. Swaps and
# recoveries of one target hold `.<name>.swap.lock` (kept: removing a lock file races with its
# next user).


_PID_NS = re.compile(r"\d+-\d+")


def _swap_journal(final: Path) -> Path:
    return final.parent / f".{final.name}.swap.json"


def _swap_lock(final: Path) -> Path:
    return final.parent / f".{final.name}.swap.lock"


def _legacy_olds(final: Path) -> list[Path]:
    """`.old-<name>-<pid>-<ns>` directories of the former, unjournaled swap (killed between its renames)."""
    prefix = f".old-{final.name}-"
    return sorted(
        (p for p in final.parent.iterdir() if p.name.startswith(prefix) and _PID_NS.fullmatch(p.name[len(prefix):])),
        key=lambda p: p.stat().st_mtime_ns,
    )


def _journal_strays(final: Path) -> list[Path]:
    """Temp files of a journal whose write was killed (temp_sibling's `.<name>.<random>.tmp`)."""
    return list(final.parent.glob(f".{glob.escape(_swap_journal(final).name)}.*.tmp"))


def _locked(final: Path) -> Any:
    f = open(_swap_lock(final), "a")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def _fsync_tree_dirs(root: Path) -> None:
    for dirpath, _dirnames, _filenames in os.walk(root):
        fsync_dir(Path(dirpath))


def _roll_forward(final: Path) -> str | None:
    """Finish the journaled swap of `final`, if any (the swap lock is held); what was done."""
    journal = _swap_journal(final)
    if not journal.is_file():
        return None
    try:
        entry = json.loads(journal.read_text(encoding="utf-8"))
        new, old = final.parent / entry["new"], final.parent / entry["old"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{journal}: unreadable directory-swap journal ({e}); it names the directory "
                         f"that replaces {final} and the old one to remove") from e
    done = "finished"
    if os.path.lexists(new):  # step 3 not done yet
        if os.path.lexists(final):
            if os.path.lexists(old):
                raise FileExistsError(f"{journal}: {final}, {new} and {old} all exist; resolve by hand")
            os.replace(final, old)  # step 2
            fsync_dir(final.parent)
        os.replace(new, final)  # step 3
        fsync_dir(final.parent)
        if new.parent != final.parent:
            fsync_dir(new.parent)
    elif not os.path.lexists(final):
        # The new directory is gone (its owner cleaned it up) before it was moved in: roll back.
        if not os.path.lexists(old):
            raise FileNotFoundError(f"{journal}: neither {new}, {final} nor {old} exists")
        os.replace(old, final)
        fsync_dir(final.parent)
        done = "rolled back"
    if os.path.lexists(old):
        shutil.rmtree(old)  # step 4
    journal.unlink()
    fsync_dir(final.parent)
    return f"{done} an interrupted replacement of {final}"


def _recover_locked(final: Path) -> list[str]:
    done = [d for d in [_roll_forward(final)] if d]
    for stray in _journal_strays(final):
        stray.unlink()  # a journal killed while it was written: that swap never started
        done.append(f"removed {stray.name}, an unfinished swap journal")
    legacy = _legacy_olds(final)
    if legacy and not os.path.lexists(final):
        # Killed between the old swap's two renames: the newest old copy is what was in place.
        os.replace(legacy.pop(), final)
        fsync_dir(final.parent)
        done.append(f"restored {final} from an interrupted replacement")
    for old in legacy:
        shutil.rmtree(old)  # versions a finished replacement superseded
        done.append(f"removed {old.name}, left by an interrupted replacement of {final.name}")
    return done


def pending_replacements(parent: Path) -> set[str]:
    """Names of the directories in `parent` whose replacement a killed process left to finish
    (what `recover_replace` would act on), from one listing of `parent`: callers that look at many
    targets of one parent (a merge plan over thousands of sessions) call recover_replace only for
    these instead of listing the parent once per target."""
    out: set[str] = set()
    if not parent.is_dir():
        return out
    for entry in os.scandir(parent):
        name = entry.name
        if not name.startswith("."):
            continue
        if name.endswith(".swap.json"):
            out.add(name[1 : -len(".swap.json")])
        elif ".swap.json." in name and name.endswith(".tmp"):
            out.add(name[1 : name.index(".swap.json.")])
        elif name.startswith(".old-"):
            target, sep, stamp = name[len(".old-"):].rpartition("-")
            target, sep2, pid = target.rpartition("-")
            if sep and sep2 and _PID_NS.fullmatch(f"{pid}-{stamp}"):
                out.add(target)
    return out


def recover_replace(final: Path) -> list[str]:
    """Finish (or roll back) a replacement of directory `final` that a killed process left half
    done; returns what was done. Call it before looking at a target that replace_dir swaps."""
    final = Path(final)
    if not final.parent.is_dir():
        return []
    if not _swap_journal(final).exists() and not _legacy_olds(final) and not _journal_strays(final):
        return []  # the common case: nothing to do, and no lock file for a mere reader to create
    with _locked(final):
        return _recover_locked(final)


def replace_dir(new: Path, final: Path) -> None:
    """Put directory `new` at `final`, replacing what is there; a reader sees old or new, whole,
    and a process killed at any step leaves a swap the next replace_dir / recover_replace of
    `final` completes (see above). `new` must be complete and on the same filesystem."""
    new, final = Path(new), Path(final)
    if not new.is_dir():
        raise FileNotFoundError(f"{new}: no such directory to put at {final}")
    final.parent.mkdir(parents=True, exist_ok=True)
    with _locked(final):
        _recover_locked(final)
        _fsync_tree_dirs(new)
        old = final.parent / f".{final.name}.old-{secrets.token_hex(4)}"
        write_json_atomic(_swap_journal(final), {"new": os.path.relpath(new, final.parent), "old": old.name})
        fsync_dir(final.parent)
        _roll_forward(final)
