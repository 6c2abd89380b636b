"""The raw recording format of the inbox (`lerobot-assets/raw-v1`): validation, reading, writing.

A session is a folder holding `session.json`, one `episode_<n>/` folder per episode (a
`frames.parquet` plus, per camera, an MP4 or a folder of PNG frames) and, written last, the
`_COMPLETE` marker. docs/raw-format.md is the specification; this module is its reference
implementation. Pure library: no Dagster import.

Every problem names the file and, where it applies, the row (0-based frame number in the episode's
`frames.parquet`), so a user can fix the recording without reading this code. Validation reads the
parquet files, the MP4 containers (demux only) and the PNG headers; pixels are decoded only when the
episodes are converted.
"""

import hashlib
import json
import os
import re
import shutil
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

FORMAT = "lerobot-assets/raw-v1"
SESSION_FILE = "session.json"
COMPLETE_MARKER = "_COMPLETE"
FRAMES_FILE = "frames.parquet"
EPISODE_PREFIX = "episode_"
_EPISODE_RE = re.compile(r"^episode_(\d+)$")
_PNG_RE = re.compile(r"^(\d+)\.png$")
_NUMERIC_DTYPES = ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
_RESERVED_COLUMNS = ("timestamp", "task")
# Index columns the dataset writer numbers itself; a recording must not carry them as features.
_WRITER_COLUMNS = ("frame_index", "episode_index", "index", "task_index")
# PNG writing in the background: zlib level 1 keeps a 640x480 frame at ~4 ms and ~17 KB.
PNG_COMPRESS_LEVEL = 1


# ------------------------------------------------------------------------------------------ errors
@dataclass(frozen=True)
class RawProblem:
    """One thing wrong with a raw session: the file, the row (frame) where it applies, the message."""

    path: Path
    message: str
    row: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}: row {self.row}" if self.row is not None else str(self.path)
        return f"{where}: {self.message}"


class RawFormatError(ValueError):
    """A raw session breaks the format; `problems` lists every problem found (the first leads)."""

    def __init__(self, problems: list[RawProblem]) -> None:
        self.problems = list(problems)
        head = str(self.problems[0]) if self.problems else "invalid raw session"
        more = len(self.problems) - 1
        lines = [head] + ([f"({more} more problem{'s' if more > 1 else ''}):"] if more else [])
        lines += [f"  {p}" for p in self.problems[1:21]]
        if more > 20:
            lines.append(f"  ... and {more - 20} more")
        super().__init__("\n".join(lines))


# ------------------------------------------------------------------------------------------ session.json
class NumericFeatureSpec(BaseModel):
    """A non-camera feature: one column of `frames.parquet`, a number or a fixed-length vector."""

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"] = "float32"
    shape: list[int] = Field(min_length=1, max_length=1)
    names: list[str] | None = None

    @field_validator("shape")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if v[0] < 1:
            raise ValueError(f"shape must be [n] with n >= 1, got {v}")
        return v


class CameraSpec(BaseModel):
    """An RGB camera: frames of `height` x `width` pixels, one per row of `frames.parquet`."""

    model_config = ConfigDict(extra="forbid")

    height: int = Field(ge=1, le=8192)
    width: int = Field(ge=1, le=8192)


class SessionSpec(BaseModel):
    """The contents of `session.json`."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["lerobot-assets/raw-v1"] = FORMAT
    fps: int = Field(gt=0, le=1000)
    robot_type: str | None = None
    features: dict[str, NumericFeatureSpec]
    cameras: dict[str, CameraSpec] = Field(default_factory=dict)
    timestamp_tolerance_s: float | None = Field(
        None, gt=0, description="largest |timestamp - row/fps| accepted; default a quarter frame period"
    )

    @field_validator("features")
    @classmethod
    def _state_and_action(cls, v: dict[str, NumericFeatureSpec]) -> dict[str, NumericFeatureSpec]:
        missing = [k for k in ("observation.state", "action") if k not in v]
        if missing:
            raise ValueError(f"features must declare {missing} (every episode records a state and an action)")
        bad = [k for k in v if k in _RESERVED_COLUMNS or k in _WRITER_COLUMNS]
        if bad:
            raise ValueError(f"feature names {bad} are reserved (timestamp, task and the writer's index columns)")
        return v

    @property
    def tolerance_s(self) -> float:
        return self.timestamp_tolerance_s if self.timestamp_tolerance_s is not None else 0.25 / self.fps

    def writer_features(self) -> dict[str, dict[str, Any]]:
        """The `features` a DatasetWriter takes: numeric features first, then cameras as videos."""
        out: dict[str, dict[str, Any]] = {k: f.model_dump() for k, f in self.features.items()}
        for key, cam in self.cameras.items():
            out[key] = {"dtype": "video", "shape": [cam.height, cam.width, 3], "names": ["height", "width", "channels"]}
        return out


# ------------------------------------------------------------------------------------------ model
@dataclass(frozen=True)
class RawCamera:
    key: str
    kind: Literal["mp4", "png"]
    path: Path


@dataclass
class RawEpisode:
    index: int
    dir: Path
    length: int
    tasks: list[str]
    cameras: dict[str, RawCamera] = field(default_factory=dict)

    @property
    def frames_file(self) -> Path:
        return self.dir / FRAMES_FILE


@dataclass
class RawSession:
    root: Path
    spec: SessionSpec
    episodes: list[RawEpisode]

    @property
    def frames(self) -> int:
        return sum(e.length for e in self.episodes)

    @property
    def duration_s(self) -> float:
        return self.frames / self.spec.fps

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(t for e in self.episodes for t in e.tasks))

    def camera_kinds(self) -> dict[str, str]:
        kinds: dict[str, set[str]] = {k: set() for k in self.spec.cameras}
        for e in self.episodes:
            for k, c in e.cameras.items():
                kinds[k].add(c.kind)
        return {k: "+".join(sorted(v)) for k, v in kinds.items()}


def is_complete(root: Path | str) -> bool:
    return (Path(root) / COMPLETE_MARKER).is_file()


# ------------------------------------------------------------------------------------------ validation
def read_spec(root: Path) -> SessionSpec:
    path = Path(root) / SESSION_FILE
    if not path.is_file():
        raise RawFormatError([RawProblem(path, f"missing: every raw session has a {SESSION_FILE}")])
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RawFormatError([RawProblem(path, f"not valid JSON: {e}")]) from None
    try:
        return SessionSpec.model_validate(raw)
    except ValidationError as e:
        problems = [
            RawProblem(path, f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}")
            for err in e.errors()
        ]
        raise RawFormatError(problems) from None


def episode_dirs(root: Path) -> list[tuple[int, Path]]:
    """(number, folder) of every `episode_<n>` folder, in episode order (by number)."""
    out = []
    for p in Path(root).iterdir():
        m = _EPISODE_RE.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


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
    from lerobot_assets.video.probe import stream_summary, video_frame_count

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
    from PIL import Image, UnidentifiedImageError

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


# ------------------------------------------------------------------------------------------ reading
def _feature_arrays(session: RawSession, ep: RawEpisode) -> tuple[dict[str, np.ndarray], list[str]]:
    table = pq.read_table(ep.frames_file)
    arrays = {}
    for key, feat in session.spec.features.items():
        col = table.column(key).combine_chunks()
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
            values = pc.list_flatten(col).to_numpy(zero_copy_only=False).reshape(len(col), feat.shape[0])
        else:
            values = col.to_numpy(zero_copy_only=False).reshape(len(col), 1)
        arr = values.astype(np.dtype(feat.dtype))
        arrays[key] = arr.reshape(len(col)) if feat.shape == [1] else arr
    return arrays, table.column("task").to_pylist()


def _png_frames(folder: Path, n: int, prefetch: int = 8) -> Iterator[np.ndarray]:
    """Decoded frames 0..n-1 in order; decoding runs ahead in a thread (zlib releases the GIL)."""
    from PIL import Image

    def load(i: int) -> np.ndarray:
        with Image.open(folder / f"{i:06d}.png") as im:
            return np.asarray(im.convert("RGB"))

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="png-read") as pool:
        pending: list[Future[np.ndarray]] = [pool.submit(load, i) for i in range(min(prefetch, n))]
        for i in range(n):
            frame = pending.pop(0).result()
            if i + prefetch < n:
                pending.append(pool.submit(load, i + prefetch))
            yield frame


def _mp4_frames(path: Path, n: int) -> Iterator[np.ndarray]:
    import av

    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if count >= n:
                break
            yield frame.to_ndarray(format="rgb24")
            count += 1
    if count < n:
        raise RawFormatError([RawProblem(path, f"decoded only {count} frames for {n} rows of frames.parquet", row=count)])


def iter_episode_frames(session: RawSession, ep: RawEpisode) -> Iterator[dict[str, Any]]:
    """Frames of one episode as a DatasetWriter's `add_frame` takes them (`{key: array, "task": str}`)."""
    arrays, tasks = _feature_arrays(session, ep)
    streams: dict[str, Iterator[np.ndarray]] = {}
    for key, cam in ep.cameras.items():
        streams[key] = _mp4_frames(cam.path, ep.length) if cam.kind == "mp4" else _png_frames(cam.path, ep.length)
    try:
        for i in range(ep.length):
            frame: dict[str, Any] = {key: arr[i] for key, arr in arrays.items()}
            for key, stream in streams.items():
                frame[key] = next(stream)
            frame["task"] = tasks[i]
            yield frame
    finally:
        for stream in streams.values():
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def session_fingerprint(root: Path | str) -> str:
    """Hash of every file's relative path, size and mtime: changes when any recorded file changes."""
    root = Path(root)
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            st = p.stat()
            h.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def session_bytes(root: Path | str) -> int:
    return sum((Path(d) / f).stat().st_size for d, _, files in os.walk(root) for f in files)


# ------------------------------------------------------------------------------------------ writing
class RawSessionWriter:
    """Writes a raw-v1 session: `session.json` at creation, episodes one by one, `_COMPLETE` last.

    Frames stream in through `add_frame` (nothing of an episode is kept but its numeric rows); PNGs
    are compressed by a small thread pool so the producer (a simulator, a robot loop) keeps running.
    Cameras go to PNG folders unless `camera_format="mp4"` (encoded when the episode ends).
    """

    def __init__(
        self,
        root: Path | str,
        spec: SessionSpec,
        *,
        camera_format: Literal["png", "mp4"] = "png",
        png_threads: int = 2,
    ) -> None:
        self.root = Path(root)
        if (self.root / SESSION_FILE).exists():
            raise FileExistsError(f"{self.root}: a raw session is already there")
        self.spec = spec
        self.camera_format = camera_format
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / SESSION_FILE).write_text(json.dumps(spec.model_dump(exclude_none=True), indent=2) + "\n")
        self.num_episodes = 0
        self._pool = ThreadPoolExecutor(max_workers=png_threads, thread_name_prefix="png-write")
        self._limit = threading.BoundedSemaphore(4 * png_threads)  # bounds frames held in memory
        self._pending: list[Future[None]] = []
        self._rows: list[dict[str, Any]] = []
        self._video: dict[str, list[np.ndarray]] = {}
        self._dir: Path | None = None

    @classmethod
    def create(
        cls,
        root: Path | str,
        *,
        fps: int,
        features: dict[str, dict[str, Any]],
        robot_type: str | None = None,
        camera_format: Literal["png", "mp4"] = "png",
    ) -> "RawSessionWriter":
        """From dataset-style `features` (numeric ones and `dtype: video` cameras of shape [h, w, 3])."""
        numeric, cameras = {}, {}
        for key, f in features.items():
            if f["dtype"] in ("video", "image"):
                h, w = f["shape"][:2]
                cameras[key] = {"height": h, "width": w}
            else:
                numeric[key] = {k: f[k] for k in ("dtype", "shape", "names") if k in f}
        spec = SessionSpec(fps=fps, robot_type=robot_type, features=numeric, cameras=cameras)
        return cls(root, spec, camera_format=camera_format)

    def _start(self) -> Path:
        d = self.root / f"{EPISODE_PREFIX}{self.num_episodes:06d}"
        d.mkdir(parents=True, exist_ok=False)
        if self.camera_format == "png":
            for key in self.spec.cameras:
                (d / key).mkdir()
        self._video = {k: [] for k in self.spec.cameras} if self.camera_format == "mp4" else {}
        return d

    def add_frame(self, frame: dict[str, Any], timestamp: float | None = None) -> None:
        if self._dir is None:
            self._dir = self._start()
        i = len(self._rows)
        row: dict[str, Any] = {"timestamp": float(i / self.spec.fps if timestamp is None else timestamp)}
        for key in self.spec.features:
            row[key] = np.asarray(frame[key]).reshape(-1).tolist()
        row["task"] = frame["task"]
        self._rows.append(row)
        for key in self.spec.cameras:
            image = np.asarray(frame[key])
            if self.camera_format == "mp4":
                self._video[key].append(image)
            else:
                self._limit.acquire()
                self._pending.append(self._pool.submit(self._write_png, self._dir / key / f"{i:06d}.png", image))

    def _write_png(self, path: Path, image: np.ndarray) -> None:
        from PIL import Image

        try:
            Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        finally:
            self._limit.release()

    def save_episode(self) -> int:
        """Write the episode's frames.parquet (and MP4s); returns its length."""
        if self._dir is None or not self._rows:
            raise ValueError("save_episode() called with no frames; add_frame() first")
        d, n = self._dir, len(self._rows)
        for fut in self._pending:
            fut.result()
        self._pending = []
        if self.camera_format == "mp4":
            from lerobot_assets.video.config import VideoEncoderConfig
            from lerobot_assets.video.encode import encode_frames

            # Near-lossless H.264: a raw recording should lose as little as the camera allows.
            config = VideoEncoderConfig(vcodec="libx264", crf=10, preset="veryfast", g=self.spec.fps)
            for key, frames in self._video.items():
                encode_frames(frames, d / f"{key}.mp4", self.spec.fps, config)
        columns: dict[str, pa.Array] = {"timestamp": pa.array([r["timestamp"] for r in self._rows], pa.float64())}
        for key, feat in self.spec.features.items():
            arrow_t = pa.bool_() if feat.dtype == "bool" else pa.from_numpy_dtype(np.dtype(feat.dtype))
            columns[key] = pa.array([r[key] for r in self._rows], pa.list_(arrow_t, feat.shape[0]))
        columns["task"] = pa.array([r["task"] for r in self._rows], pa.string())
        tmp = d / f".{FRAMES_FILE}.tmp"
        pq.write_table(pa.table(columns), tmp)
        os.replace(tmp, d / FRAMES_FILE)  # frames.parquet appears whole, after the camera files
        self._rows, self._video, self._dir = [], {}, None
        self.num_episodes += 1
        return n

    def clear_episode(self) -> None:
        for fut in self._pending:
            fut.exception()
        self._pending = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._rows, self._video, self._dir = [], {}, None

    def complete(self) -> None:
        """Mark the session complete (the inbox sensor picks it up from then on)."""
        if self._rows:
            raise RuntimeError("an episode is still open: save_episode() or clear_episode() first")
        self.close()
        (self.root / COMPLETE_MARKER).write_text("")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "RawSessionWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.clear_episode()
            self.close()


def write_session(
    root: Path | str,
    *,
    fps: int,
    features: dict[str, dict[str, Any]],
    episodes: Iterable[Iterable[dict[str, Any]]],
    robot_type: str | None = None,
    camera_format: Literal["png", "mp4"] = "png",
    complete: bool = True,
) -> Path:
    """Write a whole raw session from episodes of frames (a test and import helper)."""
    with RawSessionWriter.create(root, fps=fps, features=features, robot_type=robot_type, camera_format=camera_format) as w:
        for frames in episodes:
            for frame in frames:
                w.add_frame(frame)
            w.save_episode()
        if complete:
            w.complete()
        else:
            w.close()
    return Path(root)


def png_bytes(image: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    from PIL import Image

    buf = BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
