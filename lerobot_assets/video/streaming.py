"""Live per-camera encoding while an episode is recorded, so saving an episode is near-instant.

One encoder thread per camera reads frames from a bounded queue and writes them straight into an
MP4 through PyAV (which releases the GIL while encoding), computing the camera's image stats on
the way. Threads rather than processes: frames are large and pickling them would cost more than
the encoding contention saves.

Back-pressure: when a camera's queue stays full for `feed_timeout_s`, the frame is dropped rather
than stalling the control loop (`feed_timeout_s=None` blocks instead: no frame is ever dropped). Drops are never silent: they are counted per camera, logged, and
returned in each camera's `EpisodeVideo`, because the MP4 then holds fewer frames than the
episode's data rows and the writer must record that.

Files: each camera's MP4 is written as `<name>.mp4.partial` inside the episode directory and
renamed to `<name>.mp4` only when its encoder finished cleanly, so a crash never leaves a file
that looks complete.
"""

import logging
import queue
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_assets.stats.image import ImageStatsAccumulator
from lerobot_assets.video.config import VideoEncoderConfig
from lerobot_assets.video.encode import Mp4FrameWriter, as_hwc_uint8

logger = logging.getLogger(__name__)

_STOP = object()  # queue sentinel: flush and finish the file
_FILL = object()  # queue marker: (_FILL, n) repeats the last frame n times (frames dropped at the end)
_POLL_S = 0.1  # how often an idle encoder thread looks at its cancel flag
_FINISH_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class EpisodeVideo:
    """What one camera's encoder produced for an episode.

    `frames` are the frames in the MP4; `dropped` the frames fed but discarded on a full queue,
    so `frames + dropped` is what the caller fed. `path` does not exist when `frames == 0`.
    `histogram` is the accumulator's (C, 256) pixel histogram behind `stats` (None when stats
    are off), so episode stats can be merged exactly into dataset stats.

    It also behaves as LeRobot's `(path, stats)` pair: `path, stats = result[key]`,
    `result[key][0]` and `len(result[key]) == 2` work, so code written against LeRobot's
    `finish_episode()` keeps working; new code should read the named fields.
    """

    path: Path
    stats: dict[str, np.ndarray] | None
    frames: int
    dropped: int
    histogram: np.ndarray | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.path, self.stats))

    def __getitem__(self, index: int) -> Any:
        return (self.path, self.stats)[index]

    def __len__(self) -> int:
        return 2


class UnknownVideoKeyError(KeyError, ValueError):
    """A frame was fed for a camera that the current episode was not started with."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class _BufferPool:
    """Reused frame buffers of one camera.

    feed_frame() must copy each frame (camera drivers reuse theirs), and a fresh 1 MB array per
    frame costs page faults on every frame: on 2 cores that alone took the queued encoder from 95%
    to 82% of PyAV's own speed at 480x640. Buffers come back once their frame is encoded.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def copy_of(self, frame: np.ndarray) -> np.ndarray:
        src = np.asarray(frame)
        buf = None
        with self._lock:
            while self._free and buf is None:
                candidate = self._free.pop()
                if candidate.shape == src.shape and candidate.dtype == src.dtype:
                    buf = candidate
        if buf is None:
            buf = np.empty(src.shape, src.dtype)
        np.copyto(buf, src)
        return buf

    def give_back(self, buf: np.ndarray) -> None:
        with self._lock:
            if len(self._free) < self.capacity:
                self._free.append(buf)


class _CameraEncoder(threading.Thread):
    """Drains one camera's queue into one MP4; records the first error instead of dying silently."""

    def __init__(
        self,
        key: str,
        path: Path,
        fps: int,
        config: VideoEncoderConfig,
        threads: int | None,
        queue_maxsize: int,
        compute_stats: bool,
        pool: _BufferPool | None = None,
        keep_last: bool = False,
    ) -> None:
        super().__init__(name=f"video-encoder[{key}]", daemon=True)
        self.pool = pool
        self.keep_last = keep_last
        self.key = key
        self.path = path
        self.partial_path = path.with_name(path.name + ".partial")
        self.frames: queue.Queue[Any] = queue.Queue(maxsize=queue_maxsize)
        self.cancelled = threading.Event()
        self.error: BaseException | None = None
        self.finished_ok = False
        self.frame_count = 0
        self.stats: dict[str, np.ndarray] | None = None
        self.histogram: np.ndarray | None = None
        self._writer = Mp4FrameWriter(self.partial_path, fps, config, threads)
        self._accumulator = ImageStatsAccumulator() if compute_stats else None
        self._last: np.ndarray | None = None

    def run(self) -> None:
        try:
            self._encode_until_stop()
        except BaseException as exc:  # surfaced to the caller by feed/finish
            self.error = exc
            logger.error("Encoder thread for camera %r failed: %s: %s", self.key, type(exc).__name__, exc)
            self._writer.abort()
            self.partial_path.unlink(missing_ok=True)

    def _encode_until_stop(self) -> None:
        frames, writer, acc = self.frames, self._writer, self._accumulator
        while True:
            try:
                item = frames.get(timeout=_POLL_S)
            except queue.Empty:
                if self.cancelled.is_set():
                    break
                continue
            if self.cancelled.is_set():
                break
            if item is _STOP:
                self.frame_count = writer.close()
                if self.frame_count > 0:
                    self.partial_path.replace(self.path)
                if acc is not None:
                    self.stats = acc.stats()
                    self.histogram = acc.hist
                self.finished_ok = True
                return
            frame, fill = item if isinstance(item, tuple) else (item, 0)
            if frame is _FILL:
                # Frames dropped at the end of the episode: repeat the last one in their place.
                # There is one: fills are owed only with keep_last, and an episode's first frame
                # always finds its queue empty.
                last = self._last
                if last is None:
                    raise RuntimeError(f"{self.path}: frames to fill but no frame was written before them")
                for _ in range(fill):
                    writer.write(last)
                continue
            arr = as_hwc_uint8(frame)
            # Frames dropped before this one: repeat the last frame in their place (the first one
            # if nothing was written yet) so the video stays aligned with the data rows.
            for _ in range(fill):
                writer.write(self._last if self._last is not None else arr)
            writer.write(arr)
            if acc is not None:
                acc.update(arr)
            if self.keep_last:
                if self._last is None or self._last.shape != arr.shape:
                    self._last = np.empty_like(arr)
                np.copyto(self._last, arr)
            if self.pool is not None:
                self.pool.give_back(frame)
        # Cancelled: leave nothing behind.
        writer.abort()
        self.partial_path.unlink(missing_ok=True)

    def failure(self) -> RuntimeError:
        err = self.error
        return RuntimeError(f"Encoder thread for camera {self.key!r} crashed: {type(err).__name__}: {err}")


def _put_stop(encoder: _CameraEncoder) -> None:
    # A blocking put could hang forever on a full queue whose thread has died.
    while True:
        try:
            encoder.frames.put(_STOP, timeout=_POLL_S)
            return
        except queue.Full:
            if not encoder.is_alive():
                return


class PendingEpisode:
    """An episode whose cameras were told to stop; collects their results once they finish."""

    def __init__(self, encoders: dict[str, _CameraEncoder], dropped: dict[str, int]) -> None:
        self._encoders = encoders
        self._dropped = dropped
        self._stopped = False

    def stop(self) -> None:
        """Queue the end-of-episode sentinel for every camera (once)."""
        if not self._stopped:
            for encoder in self._encoders.values():
                _put_stop(encoder)
            self._stopped = True

    def wait(self) -> dict[str, EpisodeVideo]:
        self.stop()
        for key, encoder in self._encoders.items():
            encoder.join(timeout=_FINISH_TIMEOUT_S)
            if encoder.is_alive():
                raise RuntimeError(f"Encoder thread for camera {key!r} did not finish within {_FINISH_TIMEOUT_S:.0f} s")
        for key, encoder in self._encoders.items():
            if encoder.error is not None:
                raise encoder.failure() from encoder.error
            if not encoder.finished_ok:
                raise RuntimeError(f"Encoder thread for camera {key!r} stopped without finishing its video")
        results = {
            key: EpisodeVideo(enc.path, enc.stats, enc.frame_count, self._dropped.get(key, 0), enc.histogram)
            for key, enc in self._encoders.items()
        }
        for key, res in results.items():
            if res.dropped:
                logger.warning(
                    "Episode finished with %d dropped frame(s) for camera %r (%d encoded)", res.dropped, key, res.frames
                )
        return results

    def cancel(self) -> None:
        for encoder in self._encoders.values():
            encoder.cancelled.set()
        for encoder in self._encoders.values():
            encoder.join(timeout=30)
            for path in (encoder.path, encoder.partial_path):
                path.unlink(missing_ok=True)


class StreamingVideoEncoder:
    """Encodes each camera's frames on its own thread while the episode is being recorded.

    Usage: `start_episode(keys, directory)`, then `feed_frame(key, frame)` per camera per step,
    then `finish_episode()` -> `{key: EpisodeVideo(path, stats, frames, dropped)}` (or
    `cancel_episode()` to discard). `dropped_frames` keeps the last episode's drop counts.
    """

    def __init__(
        self,
        fps: int,
        config: VideoEncoderConfig | None = None,
        queue_maxsize: int = 30,
        threads: int | None = None,
        compute_stats: bool = True,
        *,
        feed_timeout_s: float | None = 0.1,
        fill_dropped: bool = False,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if queue_maxsize < 1:
            raise ValueError(f"queue_maxsize must be >= 1, got {queue_maxsize}")
        self.fps = fps
        self.config = config or VideoEncoderConfig()
        self.queue_maxsize = queue_maxsize
        self.threads = threads
        self.compute_stats = compute_stats
        self.feed_timeout_s = feed_timeout_s
        # With fill_dropped, a dropped frame is replaced by a repeat of the previous one, so the
        # MP4 keeps one frame per fed frame (and its timing); drops are still counted and reported.
        self.fill_dropped = fill_dropped
        self._owed: dict[str, int] = {}
        # Per camera, shared by successive episodes (and by one still flushing in the background).
        self._pools: dict[str, _BufferPool] = {}
        self.codec_options = self.config.codec_options(threads)
        self.dropped_frames: dict[str, int] = {}
        self._encoders: dict[str, _CameraEncoder] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._active = False
        self._closed = False

    @property
    def episode_active(self) -> bool:
        return self._active

    @property
    def closed(self) -> bool:
        return self._closed

    def start_episode(self, keys: list[str], directory: Path) -> None:
        """Start one encoder thread per camera key, writing MP4s inside `directory`.

        An episode still active is cancelled first (its files are removed).
        """
        if self._closed:
            raise RuntimeError("StreamingVideoEncoder is closed; create a new one to record more episodes.")
        keys = list(keys)
        if not keys:
            raise ValueError("start_episode needs at least one video key")
        if len(set(keys)) != len(keys):
            raise ValueError(f"duplicate video keys: {keys}")
        if self._active:
            logger.warning("start_episode called with an episode still active; cancelling it")
            self.cancel_episode()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:8]
        self.dropped_frames = {k: 0 for k in keys}
        self._owed = {k: 0 for k in keys}
        self._shapes = {}
        self._encoders = {}
        for key in keys:
            safe = key.replace("/", "_").replace("\\", "_")
            encoder = _CameraEncoder(
                key,
                directory / f"{safe}-{token}.mp4",
                self.fps,
                self.config,
                self.threads,
                self.queue_maxsize,
                self.compute_stats,
                pool=self._pools.setdefault(key, _BufferPool(self.queue_maxsize + 4)),
                keep_last=self.fill_dropped,
            )
            self._encoders[key] = encoder
        for encoder in self._encoders.values():
            encoder.start()
        self._active = True

    def feed_frame(self, key: str, frame: np.ndarray) -> None:
        """Queue a copy of `frame` (HWC/CHW, uint8/float in [0,1]) for camera `key`.

        Copied because camera drivers reuse their buffers. Drops (and counts) the frame if the
        camera's queue stays full for `feed_timeout_s`.
        """
        if not self._active:
            raise RuntimeError("No active episode. Call start_episode() first.")
        encoder = self._encoders.get(key)
        if encoder is None:
            raise UnknownVideoKeyError(
                f"Unknown video key {key!r}; this episode was started with keys {list(self._encoders)}"
            )
        if encoder.error is not None:
            raise encoder.failure() from encoder.error
        if not encoder.is_alive():
            raise RuntimeError(f"Encoder thread for camera {key!r} is not running")
        arr = encoder.pool.copy_of(frame) if encoder.pool is not None else np.array(frame, copy=True)
        expected = self._shapes.setdefault(key, arr.shape)
        if arr.shape != expected:
            raise ValueError(f"frame for camera {key!r} has shape {arr.shape}, but this episode's frames are {expected}")
        item: Any = (arr, self._owed[key]) if self._owed[key] else arr
        try:
            if self.feed_timeout_s is None:
                self._put_blocking(encoder, item)
            elif self.feed_timeout_s > 0:
                encoder.frames.put(item, timeout=self.feed_timeout_s)
            else:
                encoder.frames.put_nowait(item)
            self._owed[key] = 0
        except queue.Full:
            if encoder.pool is not None:
                encoder.pool.give_back(arr)
            if self.fill_dropped:
                self._owed[key] += 1
            count = self.dropped_frames[key] = self.dropped_frames[key] + 1
            if count == 1 or count % 10 == 0:
                logger.warning(
                    "Encoder queue full for camera %r: dropped %d frame(s) so far this episode "
                    "(raise queue_maxsize, use a faster preset, or fewer encoder threads per core)",
                    key,
                    count,
                )

    def _settle_owed(self) -> None:
        """Frames dropped after the last queued one are filled before the episode ends."""
        for key, owed in self._owed.items():
            if owed:
                self._put_blocking(self._encoders[key], (_FILL, owed))
                self._owed[key] = 0

    @staticmethod
    def _put_blocking(encoder: _CameraEncoder, arr: Any) -> None:
        # Back-pressure instead of drops, but never a hang on a thread that died meanwhile.
        while True:
            try:
                encoder.frames.put(arr, timeout=_POLL_S)
                return
            except queue.Full:
                if encoder.error is not None:
                    raise encoder.failure() from encoder.error
                if not encoder.is_alive():
                    raise RuntimeError(f"Encoder thread for camera {encoder.key!r} is not running") from None

    def finish_episode(self) -> dict[str, EpisodeVideo]:
        """Flush every camera, wait for its MP4, and return `{key: EpisodeVideo}`.

        A camera whose thread crashed raises RuntimeError naming it; the episode then stays
        active so `cancel_episode()` can remove every file it wrote.
        """
        if not self._active:
            raise RuntimeError("No active episode to finish.")
        for encoder in self._encoders.values():
            if encoder.error is not None:
                raise encoder.failure() from encoder.error
        self._settle_owed()
        results = PendingEpisode(self._encoders, dict(self.dropped_frames)).wait()
        self._encoders = {}
        self._active = False
        return results

    def end_episode(self) -> "PendingEpisode":
        """Like finish_episode(), without waiting: the cameras flush in the background.

        The encoder is free for the next start_episode() at once, so a writer can commit this
        episode while the next one is recorded. `wait()` on the result returns what
        finish_episode() would have, or raises; `cancel()` discards the episode's files.
        """
        if not self._active:
            raise RuntimeError("No active episode to finish.")
        self._settle_owed()
        pending = PendingEpisode(self._encoders, dict(self.dropped_frames))
        pending.stop()
        self._encoders = {}
        self._active = False
        return pending


    def cancel_episode(self) -> None:
        """Stop every camera's thread and delete the episode's files (partial or finished)."""
        if not self._active:
            return
        for encoder in self._encoders.values():
            encoder.cancelled.set()
        for encoder in self._encoders.values():
            encoder.join(timeout=30)
            if encoder.is_alive():
                logger.error("Encoder thread for camera %r did not stop; its files may remain", encoder.key)
            for path in (encoder.path, encoder.partial_path):
                path.unlink(missing_ok=True)
        self._encoders = {}
        self._active = False

    def close(self) -> None:
        """Cancel any active episode; further start_episode calls raise. Safe to call twice."""
        if self._closed:
            return
        self.cancel_episode()
        self._closed = True

    def __enter__(self) -> "StreamingVideoEncoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
