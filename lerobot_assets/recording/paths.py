"""The data and video file paths of a dataset, from its info.json templates, and which templates the
writer and the merge can honour.

LeRobot formats `data_path` with `chunk_index` and `file_index` and `video_path` with `video_key`
too, so a dataset may name its files otherwise than our defaults
(`data/chunk-{chunk_index:03d}/part-{file_index:03d}.parquet` is legal). Whoever writes or reads a
dataset's files takes their paths from its templates, and refuses a template it cannot honour
before it writes anything.

Which templates are honoured is `format.templates.template_problem`, the one rule every reader,
validator, writer and merge applies; this module only adds what a writer needs on top: its own
files (`meta/`, `.staging/`) are not the dataset's data or video files.
"""

from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.layout import INFO_PATH, STAGING_DIR
from lerobot_assets.format.templates import TemplateError, TemplateKind, format_path, template_problem

__all__ = ["TemplateError", "check_templates", "data_rel", "template_tops", "video_rel"]

# The writer's metadata and scratch directories: data or video files there would be overwritten
# by a commit's metadata, or removed by recovery as staged leftovers.
_RESERVED_TOPS = ("meta", STAGING_DIR)


def _writer_problem(template: str, video_keys: list[str]) -> str | None:
    # The top part may hold placeholders ("{video_key}/..."): check what it formats to; indices
    # print digits only (format.templates), so any values stand for them.
    top = template.split("/", 1)[0]
    for key in video_keys or [""]:
        name = top.format(video_key=key, chunk_index=0, file_index=0)
        if name in _RESERVED_TOPS:
            return f"puts files under {name}/, which holds the dataset's metadata and the writer's scratch"
    return None


def check_templates(info: DatasetInfo, root: object, *, writing: bool) -> None:
    """TemplateError naming `<root>/meta/info.json`, the key and the template, when the dataset's
    `data_path` or (with video features) `video_path` is not honoured (`format.templates`), or,
    `writing`, would put files under meta/ or .staging/."""
    checks: list[tuple[str, object, TemplateKind]] = [("data_path", info.data_path, "data")]
    if info.video_keys:
        checks.append(("video_path", info.video_path, "video"))
    for key, template, kind in checks:
        problem = template_problem(template, kind)
        if problem is None and writing:
            assert isinstance(template, str)
            problem = _writer_problem(template, info.video_keys if kind == "video" else [])
        if problem is not None:
            action = "appended to" if writing else "read"
            raise TemplateError(f"{root}/{INFO_PATH}: {key} {template!r} {problem} (the dataset cannot be {action})")


def data_rel(info: DatasetInfo, chunk_index: int, file_index: int) -> str:
    """The data file (chunk, file) as the dataset's own `data_path` names it (`format_path`:
    TemplateError for a template that is not honoured)."""
    return format_path(info.data_path, "data", chunk_index, file_index)


def video_rel(info: DatasetInfo, video_key: str, chunk_index: int, file_index: int) -> str:
    """The video file of camera `video_key` as the dataset's own `video_path` names it
    (`format_path`: TemplateError for a template not honoured or an unsafe key)."""
    if info.video_path is None:
        raise TemplateError(f"video_path is null but video file {video_key!r} was asked for")
    return format_path(info.video_path, "video", chunk_index, file_index, video_key)


def template_tops(info: DatasetInfo) -> list[str]:
    """The top directories the dataset's data and video files live under (e.g. data, videos)."""
    tops = [t.split("/", 1)[0] for t in (info.data_path, info.video_path) if t and "/" in t]
    return [t for t in dict.fromkeys(tops) if t and "{" not in t and t not in ("..", ".")]
