"""The `data_path` / `video_path` templates of info.json: which ones we honour, and a dataset's
files listed from them and the episodes metadata.

LeRobot formats `data_path` with `chunk_index` and `file_index`, and `video_path` with `video_key`
too; a dataset may choose other file names (`data/chunk-{chunk_index:03d}/part-{file_index:03d}.parquet`
is legal). So a dataset's data and video files are the templates formatted with the
(chunk, file) pairs its episodes name, never what a glob such as `data/*/file-*.parquet` finds:
`dataset_files` is that list, and every part that opens a dataset's files should take it from here.
"""

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lerobot_assets.format.names import name_problem

TemplateKind = Literal["data", "video"]

# The placeholders each template must hold, each at least once: without one of them two files
# (chunks, files or cameras) would format to the same path.
TEMPLATE_FIELDS: dict[TemplateKind, tuple[str, ...]] = {
    "data": ("chunk_index", "file_index"),
    "video": ("video_key", "chunk_index", "file_index"),
}
# Integer specs only ("03d", "4", "d"): they print digits (and a sign), so no value of an index
# can put a '/' or '.' into a path ("c" would print chr(47) == '/').
_INT_SPEC = re.compile(r"^0?\d{0,2}d?$")
_GLOB_CHARS = re.compile(r"[*?\[\]]")


class TemplateError(ValueError):
    """A `data_path` / `video_path` template we cannot honour, or a path that cannot be formatted."""


def template_problem(template: object, kind: TemplateKind) -> str | None:
    """Why we cannot honour `template` as info.json's `data_path` (kind="data") or `video_path`
    (kind="video"), or None.

    Honoured: a relative path inside the root (`names.name_problem(kind="template")`) whose
    placeholders are exactly {chunk_index} and {file_index} (and {video_key} for video), each at
    least once, the indices with at most an integer format spec (`{chunk_index:03d}`), the key
    with none; no glob characters (`* ? [ ]`), so the literal path is also its own glob.
    """
    if not isinstance(template, str):
        return f"is a {type(template).__name__}, not a string"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:  # unbalanced braces
        return f"is not a format string ({e})"
    allowed = TEMPLATE_FIELDS[kind]
    seen: set[str] = set()
    literal = ""
    for text, field, spec, conversion in parsed:
        literal += text
        if field is None:
            continue
        if field not in allowed:
            return f"has the placeholder {{{field}}}; allowed: {', '.join('{' + f + '}' for f in allowed)}"
        if conversion:
            return f"converts {{{field}!{conversion}}}; placeholders take no conversion"
        if field == "video_key" and spec:
            return "formats {video_key} with a spec; the key goes in whole"
        if field != "video_key" and not _INT_SPEC.match(spec or ""):
            return f"formats {{{field}}} with {spec!r}; only integer specs like '03d' are honoured"
        seen.add(field)
        literal += "x"  # stands for the formatted value when checking the path's shape below
    missing = [f for f in allowed if f not in seen]
    if missing:
        return f"lacks {', '.join('{' + f + '}' for f in missing)} (files would share one path)"
    if _GLOB_CHARS.search(literal):
        return "contains glob characters (* ? [ ])"
    shape = name_problem(literal, "template")
    if shape is not None:
        return shape
    return None


def check_template(template: object, kind: TemplateKind, what: str) -> str:
    """`template` if we honour it, else TemplateError naming `what` (e.g. "meta/info.json: data_path")."""
    problem = template_problem(template, kind)
    if problem is not None:
        raise TemplateError(f"{what} {template!r} {problem}")
    assert isinstance(template, str)
    return template


def format_path(template: str, kind: TemplateKind, chunk_index: int, file_index: int, video_key: str | None = None) -> str:
    """The relative path `template` gives for these indices (and camera), checked to stay inside
    the root: TemplateError when the template is not honoured or the key is not a safe name."""
    check_template(template, kind, f"{kind}_path")
    values: dict[str, Any] = {"chunk_index": int(chunk_index), "file_index": int(file_index)}
    if kind == "video":
        key_problem = name_problem(video_key, "key")
        if key_problem is not None:
            raise TemplateError(f"video key {video_key!r} {key_problem}")
        values["video_key"] = video_key
    rel = template.format(**values)
    problem = name_problem(rel, "template")
    if problem is not None:  # unreachable for an honoured template and a safe key; kept as the last guard
        raise TemplateError(f"{kind} path {rel!r} {problem}")
    return rel


@dataclass(frozen=True)
class DatasetFile:
    """One data or video file of a dataset, as its metadata names it."""

    kind: TemplateKind
    rel: str  # relative to the dataset root
    chunk_index: int
    file_index: int
    video_key: str | None  # None for data files
    episodes: tuple[int, ...]  # episode_index of every episode stored in it, in episodes-row order


def _column(episodes: Mapping[str, Sequence[Any]], name: str) -> Sequence[Any]:
    if name not in episodes:
        raise ValueError(f"episodes metadata has no column {name!r}")
    return episodes[name]


def data_files(data_path: str, episodes: Mapping[str, Sequence[Any]]) -> list[DatasetFile]:
    """The data files the episodes name (`episode_index`, `data/chunk_index`, `data/file_index`),
    formatted with `data_path`, sorted by path (the order LeRobot concatenates them in).
    TemplateError for a template we do not honour; ValueError for a missing column or a null."""
    check_template(data_path, "data", "data_path")
    groups: dict[tuple[int, int], list[int]] = {}
    for ep, c, f in zip(_column(episodes, "episode_index"), _column(episodes, "data/chunk_index"),
                        _column(episodes, "data/file_index")):
        if c is None or f is None:
            raise ValueError(f"episode {ep}: data/chunk_index or data/file_index is null")
        groups.setdefault((int(c), int(f)), []).append(int(ep))
    files = [DatasetFile("data", format_path(data_path, "data", c, f), c, f, None, tuple(eps)) for (c, f), eps in groups.items()]
    return sorted(files, key=lambda d: d.rel)


def video_files(video_path: str, video_keys: Sequence[str], episodes: Mapping[str, Sequence[Any]]) -> list[DatasetFile]:
    """The video files of each camera in `video_keys` (in that order; each camera's sorted by
    path), from the columns `episode_index`, `videos/<key>/chunk_index`, `videos/<key>/file_index`
    formatted with `video_path`. A null index means that episode has no video of that camera.
    TemplateError for a template we do not honour or an unsafe key; ValueError for a missing column."""
    check_template(video_path, "video", "video_path")
    out: list[DatasetFile] = []
    index = _column(episodes, "episode_index")
    for key in video_keys:
        groups: dict[tuple[int, int], list[int]] = {}
        for ep, c, f in zip(index, _column(episodes, f"videos/{key}/chunk_index"), _column(episodes, f"videos/{key}/file_index")):
            if c is None or f is None:
                continue  # no video of this camera for this episode
            groups.setdefault((int(c), int(f)), []).append(int(ep))
        files = [
            DatasetFile("video", format_path(video_path, "video", c, f, key), c, f, key, tuple(eps))
            for (c, f), eps in groups.items()
        ]
        out += sorted(files, key=lambda d: d.rel)
    return out


def dataset_files(
    data_path: str,
    video_path: str | None,
    video_keys: Sequence[str],
    episodes: Mapping[str, Sequence[Any]],
) -> list[DatasetFile]:
    """Every data file, then every video file per camera, of a dataset, listed from its templates
    and episodes metadata (never by globbing): `data_files` + `video_files`.

    Typical use: `dataset_files(info.data_path, info.video_path, info.video_keys,
    read_episodes(root).to_pydict())`. `episodes` holds the columns `episode_index`,
    `data/chunk_index`, `data/file_index` and, per video key, `videos/<key>/chunk_index`,
    `videos/<key>/file_index`. Raises TemplateError for a template we do not honour (or a null
    `video_path` with video keys) or an unsafe key, ValueError for a missing column or a null
    data index.
    """
    out = data_files(data_path, episodes)
    if video_keys:
        if video_path is None:
            raise TemplateError("video_path is null but the dataset has video features")
        out += video_files(video_path, video_keys, episodes)
    return out
