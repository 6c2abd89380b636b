"""Validation of a raw session: every problem, named by file and row, before anything is converted.

Reads the parquet files, the MP4 containers (demux only) and the PNG headers; pixels are decoded only
when the episodes are converted.
"""

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from lerobot_assets.format.files import MetadataFileError, read_metadata_json
from lerobot_assets.sources.inbox.errors import RawFormatError, RawProblem
from lerobot_assets.sources.inbox.session import RawCamera, RawEpisode, RawSession, episode_dirs, is_complete
from lerobot_assets.sources.inbox.spec import (
    COMPLETE_MARKER,
    EPISODE_PREFIX,
    FRAMES_FILE,
    SESSION_FILE,
    CameraSpec,
    NumericFeatureSpec,
    SessionSpec,
)
from lerobot_assets.video.probe import stream_summary, video_frame_count

_PNG_RE = re.compile(r"^(\d+)\.png$")


def read_spec(root: Path) -> SessionSpec:
    path = Path(root) / SESSION_FILE
    try:
        # A regular file under a size cap: a FIFO here would block the inbox sensor forever.
        raw = read_metadata_json(path)
    except FileNotFoundError:
        raise RawFormatError([RawProblem(path, f"missing: every raw session has a {SESSION_FILE}")]) from None
    except MetadataFileError as e:
        reason = e.reason.replace("invalid JSON", "not valid JSON", 1)
        raise RawFormatError([RawProblem(path, reason)]) from None
    try:
        return SessionSpec.model_validate(raw)
    except ValidationError as e:
        problems = [
            RawProblem(path, f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {_pydantic_message(err)}")
            for err in e.errors()
        ]
        raise RawFormatError(problems) from None



def _pydantic_message(err: Any) -> str:
    """A validator's own ValueError message without pydantic's "Value error, " prefix."""
    error = (err.get("ctx") or {}).get("error")
    return str(error) if isinstance(error, Exception) else str(err["msg"])


def validate_session(root: Path | str, *, require_complete: bool = True) -> tuple[RawSession | None, list[RawProblem]]:
    """Check a whole raw session; returns the parsed session (None if unusable) and every problem."""
    root = Path(root)
    if not root.is_dir():
        return None, [RawProblem(root, "not a directory")]
    if require_complete and not is_complete(root):
        return None, [RawProblem(root / COMPLETE_MARKER, "missing: the session is not marked complete")]
    try:
        spec = read_spec(root)
    except RawFormatError as e:
        return None, e.problems
    problems: list[RawProblem] = []
    dirs = episode_dirs(root)
    if not dirs:
        return None, [RawProblem(root, f"no episode folders ({EPISODE_PREFIX}<number>/)")]
    numbers = [n for n, _ in dirs]
    if len(set(numbers)) != len(numbers):
        dup = sorted({n for n in numbers if numbers.count(n) > 1})
        problems.append(RawProblem(root, f"episode numbers {dup} appear more than once (e.g. episode_1 and episode_001)"))
    episodes = []
    for position, (_, d) in enumerate(dirs):
        ep = _validate_episode(position, d, spec, problems)
        if ep is not None:
            episodes.append(ep)
    return (RawSession(root, spec, episodes) if not problems else None), problems


def read_session(root: Path | str, *, require_complete: bool = True) -> RawSession:
    """The validated session, or RawFormatError naming every problem (file and row)."""
    session, problems = validate_session(root, require_complete=require_complete)
    if problems or session is None:
        raise RawFormatError(problems or [RawProblem(Path(root), "invalid raw session")])
    return session


def _validate_episode(position: int, d: Path, spec: SessionSpec, problems: list[RawProblem]) -> RawEpisode | None:
    path = d / FRAMES_FILE
    if not path.is_file():
        problems.append(RawProblem(path, "missing: every episode has a frames.parquet"))
        return None
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        problems.append(RawProblem(path, f"unreadable parquet: {e}"))
        return None
    n = table.num_rows
    if n == 0:
        problems.append(RawProblem(path, "no rows: an episode has at least one frame"))
        return None
    before = len(problems)
    expected = {"timestamp", "task", *spec.features}
    missing = [c for c in ["timestamp", *spec.features, "task"] if c not in table.column_names]
    if missing:
        problems.append(RawProblem(path, f"missing columns {missing}; expected {sorted(expected)}"))
    extra = [c for c in table.column_names if c not in expected]
    if extra:
        problems.append(RawProblem(path, f"unexpected columns {extra}: declare them under features in {SESSION_FILE}"))
    if "timestamp" in table.column_names:
        _check_timestamps(path, table.column("timestamp"), spec, problems)
    tasks: list[str] = []
    if "task" in table.column_names:
        tasks = _check_tasks(path, table.column("task"), problems)
    for key, feat in spec.features.items():
        if key in table.column_names:
            _check_feature(path, key, feat, table.column(key), problems)
    cameras = {}
    for key, cam in spec.cameras.items():
        camera = _validate_camera(d, key, cam, n, problems)
        if camera is not None:
            cameras[key] = camera
    if len(problems) > before:
        return None
    return RawEpisode(index=position, dir=d, length=n, tasks=tasks, cameras=cameras)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_timestamps(path: Path, col: pa.ChunkedArray, spec: SessionSpec, problems: list[RawProblem]) -> None:
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        problems.append(RawProblem(path, f"column timestamp has type {col.type}; expected float seconds"))
        return
    if col.null_count:
        problems.append(RawProblem(path, "timestamp is null", row=_first(col.is_null().to_numpy(zero_copy_only=False))))
        return
    t = col.to_numpy().astype(np.float64)
    if not np.all(np.isfinite(t)):
        problems.append(RawProblem(path, f"timestamp {t[~np.isfinite(t)][0]} is not finite", row=_first(~np.isfinite(t))))
        return
    # Report the first row that breaks either rule: off the row/fps grid, or not increasing (which
    # only a tolerance of half a frame period or more lets through the first rule).
    expected = np.arange(len(t), dtype=np.float64) / spec.fps
    off = np.abs(t - expected) > spec.tolerance_s
    back = np.concatenate([[False], np.diff(t) <= 0])
    bad = off | back
    if bad.any():
        row = _first(bad)
        if off[row]:
            message = (
                f"timestamp {t[row]:.6g} s, expected {expected[row]:.6g} s (row/fps at {spec.fps} fps, tolerance "
                f"{spec.tolerance_s:.3g} s): a dropped, duplicated or late frame"
            )
        else:
            message = f"timestamp {t[row]:.6g} s does not increase (previous row: {t[row - 1]:.6g} s)"
        problems.append(RawProblem(path, message, row=row))


def _check_tasks(path: Path, col: pa.ChunkedArray, problems: list[RawProblem]) -> list[str]:
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        problems.append(RawProblem(path, f"column task has type {col.type}; expected string"))
        return []
    nulls = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    lengths = pc.utf8_length(col.fill_null("")).to_numpy(zero_copy_only=False)
    empty = nulls | (lengths == 0)
    if empty.any():
        problems.append(RawProblem(path, "task is empty: every frame names its task", row=_first(empty)))
        return []
    return list(dict.fromkeys(col.to_pylist()))


def _check_feature(path: Path, key: str, feat: NumericFeatureSpec, col: pa.ChunkedArray, problems: list[RawProblem]) -> None:
    width = feat.shape[0]
    if col.null_count:
        problems.append(RawProblem(path, f"{key} is null", row=_first(col.is_null().to_numpy(zero_copy_only=False))))
        return
    t = col.type
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        bad = lengths != width
        if bad.any():
            row = _first(bad)
            problems.append(RawProblem(path, f"{key} has {int(lengths[row])} values, expected {width} (shape {feat.shape})", row=row))
            return
        values_type = t.value_type
        flat = pc.list_flatten(col)
        if flat.null_count:
            row = _first(np.asarray(flat.is_null().to_numpy(zero_copy_only=False), dtype=bool)) // width
            problems.append(RawProblem(path, f"{key} holds a null value", row=row))
            return
        values = flat.to_numpy(zero_copy_only=False).reshape(len(col), width)
    elif width == 1 and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        values_type = t
        values = col.to_numpy(zero_copy_only=False).reshape(-1, 1)
    else:
        problems.append(RawProblem(path, f"column {key} has type {t}; expected a list of {width} numbers"))
        return
    if not (pa.types.is_integer(values_type) or pa.types.is_floating(values_type) or pa.types.is_boolean(values_type)):
        problems.append(RawProblem(path, f"column {key} holds {values_type}; expected numbers ({feat.dtype})"))
        return
    if np.issubdtype(values.dtype, np.floating):
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            row = _first(bad)
            problems.append(RawProblem(path, f"{key} holds a non-finite value {values[row].tolist()} (NaN or inf)", row=row))
            return
        if not feat.dtype.startswith("float"):
            frac = (values != np.round(values)).any(axis=1)
            if frac.any():
                problems.append(RawProblem(path, f"{key} holds a fractional value for dtype {feat.dtype}", row=_first(frac)))


def _validate_camera(d: Path, key: str, cam: CameraSpec, n: int, problems: list[RawProblem]) -> RawCamera | None:
    mp4, folder = d / f"{key}.mp4", d / key
    if mp4.is_file() and folder.is_dir():
        problems.append(RawProblem(d, f"camera {key!r} is given twice ({mp4.name} and {folder.name}/); keep one"))
        return None
    if mp4.is_file():
        return _validate_mp4(mp4, key, cam, n, problems)
    if folder.is_dir():
        return _validate_png_folder(folder, key, cam, n, problems)
    problems.append(RawProblem(d, f"camera {key!r} missing: expected {mp4.name} or a folder {folder.name}/ of PNG frames"))
    return None


def _validate_mp4(path: Path, key: str, cam: CameraSpec, n: int, problems: list[RawProblem]) -> RawCamera | None:
    try:
        summary = stream_summary(path)
        frames = video_frame_count(path)
    except Exception as e:  # PyAV raises its own error types for broken containers
        problems.append(RawProblem(path, f"unreadable video: {e}"))
        return None
    if (summary["height"], summary["width"]) != (cam.height, cam.width):
        problems.append(RawProblem(path, f"frames are {summary['width']}x{summary['height']}, {SESSION_FILE} declares {cam.width}x{cam.height}"))
        return None
    if frames != n:
        row = min(frames, n)
        what = "has no video frame" if frames < n else "is past the last row of frames.parquet"
        problems.append(RawProblem(path, f"{frames} video frames for {n} rows of frames.parquet: frame {row} {what}", row=row))
        return None
    return RawCamera(key, "mp4", path)


def _validate_png_folder(folder: Path, key: str, cam: CameraSpec, n: int, problems: list[RawProblem]) -> RawCamera | None:
    numbers: dict[int, Path] = {}
    for p in folder.iterdir():
        m = _PNG_RE.match(p.name)
        if m is None:
            if not p.name.startswith("."):
                problems.append(RawProblem(p, "unexpected file in a PNG frame folder (frames are <frame number>.png)"))
            continue
        number = int(m.group(1))
        if number in numbers:
            problems.append(RawProblem(p, f"frame {number} given twice ({numbers[number].name})", row=number))
            continue
        numbers[number] = p
    wanted = set(range(n))
    missing = sorted(wanted - set(numbers))
    extra = sorted(set(numbers) - wanted)
    if missing:
        problems.append(RawProblem(folder / f"{missing[0]:06d}.png", f"missing PNG frame ({len(missing)} missing in {folder.name}/)", row=missing[0]))
    if extra:
        problems.append(RawProblem(numbers[extra[0]], f"frame {extra[0]} is past the last row of frames.parquet ({n} rows)", row=extra[0]))
    if missing or extra:
        return None
    for number in range(n):
        p = numbers[number]
        try:
            with Image.open(p) as im:  # reads the header only
                size, fmt = im.size, im.format
        except (UnidentifiedImageError, OSError) as e:
            problems.append(RawProblem(p, f"unreadable PNG: {e}", row=number))
            return None
        if fmt != "PNG":
            problems.append(RawProblem(p, f"is a {fmt} image, not PNG", row=number))
            return None
        if size != (cam.width, cam.height):
            problems.append(RawProblem(p, f"frame is {size[0]}x{size[1]}, {SESSION_FILE} declares {cam.width}x{cam.height}", row=number))
            return None
    return RawCamera(key, "png", folder)
