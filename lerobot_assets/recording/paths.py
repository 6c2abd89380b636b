"""The data and video file paths of a dataset, from its info.json templates, and which templates the
writer and the merge can honour.

LeRobot formats `data_path` with `chunk_index` and `file_index` and `video_path` with `video_key`
too, so a dataset may name its files otherwise than our defaults
(`data/chunk-{chunk_index:03d}/part-{file_index:03d}.parquet` is legal). Whoever writes or reads a
dataset's files takes their paths from its templates, and refuses a template it cannot honour
before it writes anything.

(format/ is getting one function that says which templates are safe and honoured for every
reader; this module's check is the writer's until then, and should become a call of it.)
"""

import re
import string
from pathlib import PurePosixPath
from typing import Literal

from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import INFO_PATH, STAGING_DIR

TemplateKind = Literal["data", "video"]
_FIELDS: dict[TemplateKind, tuple[str, ...]] = {
    "data": ("chunk_index", "file_index"),
    "video": ("video_key", "chunk_index", "file_index"),
}
# Integer specs only ("03d", "4", "d"): digits cannot put a '/' or '..' into a path.
_INT_SPEC = re.compile(r"0?\d{0,2}d?")
_GLOB_CHARS = re.compile(r"[*?\[\]]")
# Dataset statistics (stats/dataset.compute_dataset_stats, which finalize() and the merge call) are
# computed over the data files this glob finds, so a dataset we write to must keep its data there.
STATS_DATA_GLOB = "data/chunk-*/file-*.parquet"
_SAMPLE_INDICES = ((0, 0), (0, 1), (1, 0), (12, 345), (999, 999), (1000, 1000))
_SAMPLE_KEYS = ("observation.images.front", "observation.images.wrist")


class TemplateError(ValueError):
    """An info.json path template we cannot honour."""


def template_problem(template: object, kind: TemplateKind, *, writing: bool) -> str | None:
    """Why `template` (info.json's `data_path` for kind "data", `video_path` for "video") cannot be
    honoured, or None. Reading needs a template whose placeholders are exactly its fields, the
    indices with at most an integer spec, giving distinct relative paths inside the root (not under
    meta/ or .staging/) without glob characters; `writing` data also needs its files to be where
    the dataset statistics are computed from (STATS_DATA_GLOB)."""
    if not isinstance(template, str):
        return f"is a {type(template).__name__}, not a string"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        return f"is not a format string ({e})"
    allowed, seen = _FIELDS[kind], set()
    for _text, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in allowed:
            return f"has the placeholder {{{field}}}; allowed: {', '.join('{' + f + '}' for f in allowed)}"
        if conversion:
            return f"converts {{{field}!{conversion}}}; placeholders take no conversion"
        if field == "video_key" and spec:
            return "formats {video_key} with a spec; the key goes in whole"
        if field != "video_key" and not _INT_SPEC.fullmatch(spec or ""):
            return f"formats {{{field}}} with {spec!r}; only integer specs like '03d' are honoured"
        seen.add(field)
    missing = [f for f in allowed if f not in seen]
    if missing:
        return f"lacks {', '.join('{' + f + '}' for f in missing)} (files would share one path)"
    if _GLOB_CHARS.search(template):
        return "contains glob characters (* ? [ ])"
    keys = _SAMPLE_KEYS if kind == "video" else (None,)
    paths = [
        template.format(chunk_index=c, file_index=f, **({"video_key": k} if k else {}))
        for k in keys
        for c, f in _SAMPLE_INDICES
    ]
    for rel in paths:
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts or str(p) != rel or p.parts[0] in ("meta", STAGING_DIR):
            return f"names {rel!r}: not a plain relative path outside meta/ and {STAGING_DIR}/"
    if len(set(paths)) != len(paths):
        return "gives two different files one path"
    if writing and kind == "data":
        outside = [r for r in paths if len(PurePosixPath(r).parts) != 3 or not PurePosixPath(r).match(STATS_DATA_GLOB)]
        if outside:
            return (
                f"names data files like {outside[0]!r}, outside {STATS_DATA_GLOB}, which the dataset "
                "statistics are computed over: appending cannot keep meta/stats.json right"
            )
    return None


def check_templates(info: DatasetInfo, root: object, *, writing: bool) -> None:
    """TemplateError naming `<root>/meta/info.json`, the key and the template, when the dataset's
    `data_path` or (with video features) `video_path` cannot be honoured."""
    checks: list[tuple[str, object, TemplateKind]] = [("data_path", info.data_path, "data")]
    if info.video_keys:
        checks.append(("video_path", info.video_path, "video"))
    for key, template, kind in checks:
        problem = template_problem(template, kind, writing=writing)
        if problem is not None:
            action = "appended to" if writing else "read"
            raise TemplateError(f"{root}/{INFO_PATH}: {key} {template!r} {problem} (the dataset cannot be {action})")


def data_rel(info: DatasetInfo, chunk_index: int, file_index: int) -> str:
    """The data file (chunk, file) as the dataset's own `data_path` names it (checked templates)."""
    return info.data_path.format(chunk_index=int(chunk_index), file_index=int(file_index))


def video_rel(info: DatasetInfo, video_key: str, chunk_index: int, file_index: int) -> str:
    """The video file of camera `video_key` as the dataset's own `video_path` names it."""
    if info.video_path is None:
        raise TemplateError(f"video_path is null but video file {video_key!r} was asked for")
    return info.video_path.format(video_key=video_key, chunk_index=int(chunk_index), file_index=int(file_index))


def template_tops(info: DatasetInfo) -> list[str]:
    """The top directories the dataset's data and video files live under (e.g. data, videos)."""
    tops = [t.split("/", 1)[0] for t in (info.data_path, info.video_path) if t and "/" in t]
    return [t for t in dict.fromkeys(tops) if t and "{" not in t and t not in ("..", ".")]
