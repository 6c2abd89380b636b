"""Which names may become paths: feature and camera keys, and path templates.

A dataset's `info.json` (and a raw session's `session.json`) is input we do not control, and its
names end up in file paths: a camera key is a directory under `videos/`, `data_path` and
`video_path` are formatted into the paths every reader opens and every writer creates. A key
`../../x` or a template `/etc/{file_index}` would make `validate` read, and a merge or a build
write, outside the dataset. `name_problem` is the one rule every loader, validator, writer and
merge applies before a name touches the filesystem.
"""

import re
from typing import Literal

NameKind = Literal["key", "template"]

# Control characters (NUL included) end C strings early or hide in terminals; a backslash is a
# separator on Windows, so a dataset written here could escape its root there.
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
# A Windows drive ("C:") makes a relative-looking path absolute there.
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeNameError(ValueError):
    """A key or path template that would leave the dataset root (or is not a usable name)."""


def name_problem(value: object, kind: NameKind = "key") -> str | None:
    """Why `value` cannot be used inside a dataset root, or None when it is safe.

    kind="key": a feature or camera key, used as ONE path component (`videos/<key>/...`): a
    non-empty string without `/`, `\\` or control characters, and not `.` or `..`.
    kind="template": a path template relative to the root (`data_path`, `video_path`, or a path
    built from one): a non-empty string that does not start with `/` (or a drive), whose
    `/`-separated parts are never empty, `.` or `..`, without `\\` or control characters.

    Dots inside a name (`observation.images.front`) are fine; only whole `.`/`..` parts move.
    """
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a string"
    if not value:
        return "is empty"
    bad = _FORBIDDEN_CHARS.search(value)
    if bad:
        what = "a backslash" if bad.group() == "\\" else f"the control character {bad.group()!r}"
        return f"contains {what}"
    if kind == "key":
        if "/" in value:
            return "contains '/' (a key is one path component)"
        if value in (".", ".."):
            return f"is {value!r} (a key is a name, not a directory reference)"
        return None
    if value.startswith("/") or _DRIVE.match(value):
        return "is absolute (it must be relative to the dataset root)"
    parts = value.split("/")
    if ".." in parts:
        return "has a '..' part (it would leave the dataset root)"
    if "." in parts or "" in parts:
        return "has an empty or '.' part (write each directory once, without './' or '//')"
    return None


def check_name(value: object, what: str, kind: NameKind = "key") -> str:
    """`value` if `name_problem` finds nothing, else UnsafeNameError naming `what` and the value."""
    problem = name_problem(value, kind)
    if problem is not None:
        raise UnsafeNameError(f"{what} {value!r} {problem}")
    assert isinstance(value, str)
    return value
