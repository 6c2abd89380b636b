"""Where an edit writes: a new dataset root, built beside its final path and renamed into place.

Every tool in this package reads its inputs and writes a *new* root through `new_dataset`:

- the output is built in a temp directory beside the final path (same filesystem) and swapped in
  with the journaled `replace_dir` only when complete, so a failed or killed edit leaves the old
  output (or none) and never a half-written one;
- an existing output is an error unless `overwrite=True`; even then a directory that is not a
  dataset (no `meta/info.json`) is never replaced, because the user did not ask to delete it;
- an output that is, contains or lies inside an input is refused: inputs are never written,
  moved or deleted (LeRobot's edit tool moves its input to `<dir>_old` or edits it in place);
- concurrent edits into the same output wait for each other (a lock file beside it), and the build
  directory of an edit killed before its swap is removed by the next edit into that output.
"""

import fcntl
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lerobot_assets.format.atomic import make_temp_dir, recover_replace, replace_dir
from lerobot_assets.format.layout import INFO_PATH
from lerobot_assets.format.meta import is_remote_root
from lerobot_assets.format.published import follow_local, local_copy
from lerobot_assets.recording.writer import absolute_root

# progress(label, done, total): the CLI draws it as a tqdm bar, Dagster assets log it.
Progress = Callable[[str, int, int], None]


def no_progress(label: str, done: int, total: int) -> None:
    return None


class OutputExistsError(FileExistsError):
    """The output path exists and the caller did not ask to replace it."""


class OutputIsInputError(ValueError):
    """The output would write into (or over) one of the inputs."""


@dataclass
class EditResult:
    """What an edit wrote: the CLI prints it as its one-line summary, assets return it as metadata."""

    operation: str
    output: Path
    episodes: int
    frames: int
    bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.operation}: {self.episodes} episodes, {self.frames} frames, "
            f"{self.bytes / 1e6:.1f} MB in {self.seconds:.1f} s -> {self.output}"
        )
        return "; ".join([text, *self.notes])


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file() and not p.is_symlink())


def resolve_output(out: Path | str) -> Path:
    if is_remote_root(out):
        raise ValueError(f"output {out}: edits write a local dataset root (copy it to object storage afterwards)")
    return absolute_root(out)


def check_not_input(out: Path, inputs: Sequence[Path | str]) -> None:
    """Refuse an output that is, contains, or lies inside a local input root."""
    for root in inputs:
        if is_remote_root(root):
            continue
        src = absolute_root(root).resolve()
        dst = out.resolve() if out.exists() else out.parent.resolve() / out.name
        if dst == src or src in dst.parents or dst in src.parents:
            raise OutputIsInputError(
                f"output {out} overlaps the input {src}: edits never write their input (choose another --out)"
            )


def check_output_free(out: Path, overwrite: bool) -> None:
    if not out.exists() and not out.is_symlink():
        return
    if not overwrite:
        raise OutputExistsError(f"output {out} exists (pass --overwrite to replace it)")
    if out.is_symlink() or not out.is_dir() or not (out / INFO_PATH).is_file():
        raise OutputExistsError(f"output {out} exists and is not a dataset (no {INFO_PATH}); refusing to replace it")


def remove_stale_builds(final: Path) -> list[Path]:
    """Remove the build directories (`.<name>.<operation>-<8 hex>`) that edits killed before their
    swap left beside `final`; call with the output's lock held, so none of them is still in use."""
    pattern = re.compile(rf"\.{re.escape(final.name)}\.[a-z0-9-]+-[0-9a-f]{{8}}")
    stale = [p for p in final.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    for path in stale:
        shutil.rmtree(path)
    return stale


@contextmanager
def output_lock(final: Path) -> Iterator[None]:
    """Hold `final`'s edit lock (a file beside it; edits into one output wait for each other),
    with interrupted swaps and stale builds of earlier, killed edits cleaned up first."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        recover_replace(final)
        remove_stale_builds(final)
        yield


@contextmanager
def new_dataset(out: Path | str, inputs: Sequence[Path | str], *, overwrite: bool = False, operation: str = "edit") -> Iterator[Path]:
    """Yield an empty temp directory to build the output in; swap it in at `out` on success.

    Raises OutputExistsError / OutputIsInputError before anything is written.
    """
    final = resolve_output(out)
    check_not_input(final, inputs)
    with output_lock(final):
        check_output_free(final, overwrite)
        tmp = make_temp_dir(final.parent, f".{final.name}.{operation}-")
        try:
            yield tmp
            replace_dir(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


@contextmanager
def local_input(root: Path | str, storage_options: dict | None = None) -> Iterator[Path]:
    """A local path for an input root: itself when local; for an fsspec URL, a temp copy of the
    dataset (fetched whole: the edits read every file they keep), removed afterwards. A published
    prefix (one holding current.json, local or remote) is read at the version it points at."""
    if not is_remote_root(root):
        text = str(root)
        local, _ = follow_local(absolute_root(text[len("file://"):] if text.startswith("file://") else text))
        yield local
        return
    with local_copy(root, storage_options=storage_options) as copy:
        if not (copy.path / INFO_PATH).is_file():
            raise FileNotFoundError(f"{root}: no {INFO_PATH} (not a LeRobot v3 dataset root)")
        yield copy.path
