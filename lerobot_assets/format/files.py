"""Reading a dataset's metadata files safely: regular files only, under a size cap.

`meta/info.json`, `meta/stats.json`, `meta/tasks.parquet` and the episodes parquet files are read
whole (or their footers trusted), so a FIFO there would block the reader forever, a link to
/dev/zero would fill memory, and a multi-gigabyte "info.json" would too. Every metadata read goes
through `open_metadata` / `read_metadata_json`, which open without blocking, look at what the path
really is (after links: a dataset downloaded by huggingface_hub is made of links) and refuse
anything but a regular file no larger than its cap, naming the file and what it is.
"""

import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:  # fsspec is only needed for remote roots
    from fsspec import AbstractFileSystem

MiB = 1 << 20
# Caps far above any real file: LeRobot's info.json / stats.json are kilobytes, episodes parquet
# shards roll over at data_files_size_in_mb (100 MB by default).
MAX_JSON_BYTES = 64 * MiB
MAX_PARQUET_BYTES = 1024 * MiB


class MetadataFileError(ValueError):
    """A metadata file that exists but cannot be read as one: not a regular file, too large,
    or not valid JSON. The message is `<path>: <reason>`; both are attributes too."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (process pools) with both arguments
        return (type(self), (self.path, self.reason))


def flat(error: object) -> str:
    """An error message (often a library's, e.g. pyarrow's) on one line: the errors built from it
    are shown one per line."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISFIFO(mode):
        return "is a FIFO"
    if stat.S_ISCHR(mode):
        return "is a character device"
    if stat.S_ISBLK(mode):
        return "is a block device"
    if stat.S_ISSOCK(mode):
        return "is a socket"
    return "is not a regular file"


def file_problem(path: Path | str, limit: int | None = None, fs: "AbstractFileSystem | None" = None) -> str | None:
    """What is wrong with `path` as a file to read ("is missing", "is a FIFO", "is a directory",
    "is larger than N MiB" when `limit` is given...), or None for a readable regular file.

    Local paths are looked at after following links, without opening them; with `fs` (an fsspec
    filesystem) its `info` is asked. For reporting (the validator names a FIFO as a FIFO, not as
    missing); reads go through `open_metadata`, which checks the file it actually opened.
    """
    if fs is not None and not _is_local(fs):
        try:
            info = fs.info(str(path))
        except FileNotFoundError:
            return "is missing"
        if info.get("type") != "file":
            return "is a directory" if info.get("type") == "directory" else "is not a regular file"
        return _size_problem(int(info.get("size") or 0), limit)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "is missing" if not os.path.islink(path) else "is a broken link"
    except NotADirectoryError:
        return "is missing"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return _kind(st.st_mode)
    return _size_problem(st.st_size, limit)


def _size_problem(size: int, limit: int | None) -> str | None:
    if limit is not None and size > limit:
        return f"is larger than {limit // MiB} MiB ({size:,} bytes); not read"
    return None


def _is_local(fs: "AbstractFileSystem") -> bool:
    # fsspec's LocalFileSystem: its paths are OS paths, read with the checks below.
    protocol = fs.protocol
    return "file" in ((protocol,) if isinstance(protocol, str) else tuple(protocol))


_PROC_FD = Path("/proc/self/fd")


@contextmanager
def open_metadata(path: Path | str, limit: int, fs: "AbstractFileSystem | None" = None) -> Iterator["IO[bytes] | pa.NativeFile"]:
    """Open metadata file `path` for binary reading (a file object pyarrow and `read` take);
    FileNotFoundError when it is missing, MetadataFileError (naming the file) when it is not a
    regular file or is over `limit` bytes.

    Local files are opened with O_NONBLOCK (opening a FIFO must not wait for a writer) and the
    checks run on the opened descriptor, so a file swapped in between cannot slip through.
    """
    if fs is not None and not _is_local(fs):
        problem = file_problem(path, limit, fs)
        if problem == "is missing":
            raise FileNotFoundError(f"{path}: is missing")
        if problem is not None:
            raise MetadataFileError(path, problem)
        with fs.open(str(path), "rb") as f:
            yield f
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {file_problem(path)}") from None
    except IsADirectoryError:
        raise MetadataFileError(path, "is a directory") from None
    except OSError as e:  # e.g. a socket (ENXIO), permissions
        raise MetadataFileError(path, file_problem(path) or e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        problem = _kind(st.st_mode) if not stat.S_ISREG(st.st_mode) else _size_problem(st.st_size, limit)
        if problem is not None:
            raise MetadataFileError(path, problem)
        # A native file, not a Python one: pyarrow reading parquet through a Python file object
        # can abort the interpreter at exit ("terminate called without an active exception").
        # /proc/self/fd reopens the very file checked above, not whatever the path names now.
        native = pa.OSFile(str(_PROC_FD / str(fd)) if _PROC_FD.is_dir() else str(path))
    finally:
        os.close(fd)
    with native:
        yield native


def read_metadata_bytes(path: Path | str, limit: int = MAX_JSON_BYTES, fs: "AbstractFileSystem | None" = None) -> bytes:
    """The bytes of metadata file `path` (see `open_metadata`); never more than `limit`, even if
    the file grows while it is read."""
    with open_metadata(path, limit, fs) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise MetadataFileError(path, f"is larger than {limit // MiB} MiB; not read")
    return data


def read_metadata_json(path: Path | str, fs: "AbstractFileSystem | None" = None) -> Any:
    """The JSON value in metadata file `path`; MetadataFileError naming the file for anything
    that is not UTF-8 JSON (FileNotFoundError when missing)."""
    data = read_metadata_bytes(path, MAX_JSON_BYTES, fs)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise MetadataFileError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except ValueError as e:  # JSONDecodeError, or an integer over Python's digit limit
        raise MetadataFileError(path, f"invalid JSON: {e}") from None
    except RecursionError:
        raise MetadataFileError(path, "JSON nested too deeply to read") from None


def read_metadata_object(path: Path | str, fs: "AbstractFileSystem | None" = None) -> dict[str, Any]:
    """`read_metadata_json`, which must be a JSON object (MetadataFileError naming what it is)."""
    raw = read_metadata_json(path, fs)
    if not isinstance(raw, dict):
        raise MetadataFileError(path, f"is not a JSON object (it holds a JSON {_json_type(raw)})")
    return raw


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
