"""reencode_videos: a new root whose camera videos are re-encoded with another encoder config.

Per video file: one sequential decode of the source, each frame handed to the encoder as the
PyAV frame it decoded to (no numpy round trip), numbered pts = index at the dataset's fps. The
source must be evenly timed (frame k at k/fps, which every file LeRobot or our writer makes),
else the file is named and nothing is written: renumbering would move frames off the episodes'
`from/to_timestamp`. Every episode's first frame is forced to be a keyframe (`pict_type = I` on
that frame: one pass, exact, and no concatenation step), so later stream-copy cuts at episode
starts stay exact whatever `g` is; the output's packets are scanned to check it, and that frame
count and pts equal the source's.

A file is skipped (hardlinked, else copied: byte-for-byte the input's) when its camera's info
block already records the target encoder config (LeRobot's rule) and the file's stream agrees on
codec and pix_fmt. Depth cameras are only re-encoded by a gray (high bit depth) encoder; their
depth fields always stay in info.json. Data parquet is never rewritten.

Within a file three threads overlap: the source decode, the encoder, and a decoder fed a copy of
every new packet (the file's bitstream, through the decoder a reader uses), whose frames fill the
per-episode image histograms: the stats describe the re-encoded pixels without a second pass over
the file. With `workers > 1` files run in parallel in a process pool (spawned, not forked).
"""

import multiprocessing
import queue
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType

from lerobot_assets.format.episodes import read_episodes
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.stats_json import write_stats
from lerobot_assets.format.templates import DatasetFile, video_files
from lerobot_assets.stats.dataset import compute_dataset_stats
from lerobot_assets.stats.image import ImageStatsAccumulator
from lerobot_assets.tools.image_stats import (
    EpisodeSpan,
    ensure_image_histograms,
    is_depth_camera,
    write_image_histograms,
)
from lerobot_assets.tools.output import EditResult, Progress, Stopwatch, local_input, new_dataset, no_progress, resolve_output, tree_bytes
from lerobot_assets.tools.recompute_stats import copy_dataset
from lerobot_assets.video.config import STREAM_CODEC_ENCODERS, X26X_PRESETS, VideoEncoderConfig
from lerobot_assets.video.encode import Mp4FrameWriter
from lerobot_assets.video.files import atomic_output
from lerobot_assets.video.probe import first_video_stream, stream_summary, stream_time_base, video_info_block

OPERATION = "reencode"
# Depth-map keys of a video info block that no re-encode may drop (LeRobot's update_video_info).
DEPTH_KEYS = ("is_depth_map", "video.is_depth_map", "video.depth_min", "video.depth_max", "video.shift",
              "video.use_log", "depth_unit")
_ENCODER_KEYS = ("video.codec", "video.pix_fmt", "video.g", "video.crf", "video.preset")


def stream_codec(encoder: VideoEncoderConfig) -> str:
    """The stream codec name info.json records for `encoder` ("libx264" -> "h264")."""
    name = encoder.encoder_name
    for codec, enc in STREAM_CODEC_ENCODERS.items():
        if enc == name:
            return codec
    return str(av.codec.Codec(name, "w").canonical_name)


def _preset_key(preset: int | str | None, encoder_name: str) -> Any:
    """Presets compared by meaning: x264/x265 accept an index or its name."""
    if encoder_name in ("libx264", "libx265") and isinstance(preset, int | str) and str(preset).isdigit():
        return X26X_PRESETS[int(preset)]
    return preset


def _fingerprint(encoder: VideoEncoderConfig) -> tuple:
    name = encoder.encoder_name
    return (name, encoder.pix_fmt, encoder.g, encoder.crf, _preset_key(encoder.preset, name),
            encoder.fast_decode, sorted((k, str(v)) for k, v in encoder.extra_options.items()))


def already_encoded(block: dict[str, Any] | None, encoder: VideoEncoderConfig) -> bool:
    """Whether a camera's info block records exactly `encoder` (LeRobot rebuilds the config from the
    block and compares). A block without the encoder keys is never taken as a match: defaults
    standing in for unknown values would skip a file that was encoded otherwise."""
    if not block or any(k not in block for k in _ENCODER_KEYS):
        return False
    try:
        current = VideoEncoderConfig.from_info_block(block)
    except ValueError:  # an encoder this build lacks, or values it rejects: not the target
        return False
    return _fingerprint(current) == _fingerprint(encoder)


@dataclass(frozen=True)
class FileJob:
    """One video file to re-encode (picklable: sent to a worker process)."""

    key: str
    src: Path
    dst: Path
    fps: int
    encoder: VideoEncoderConfig
    spans: tuple[tuple[int, float, float, int], ...]  # (episode, from, to, length), by from
    histograms: bool  # also decode the output for the per-episode image histograms


@dataclass(frozen=True)
class FileDone:
    dst: Path
    frames: int
    histograms: dict[int, tuple[np.ndarray, int]]  # episode -> (hist, frames)


_END = object()
_QUEUE = 16  # decoded frames / packets in flight between the threads of one file


class _Pipe:
    """A bounded queue between two threads; either side's failure ends both (no one blocks forever)."""

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=_QUEUE)
        self.closed = threading.Event()

    def put(self, item: Any) -> None:
        while not self.closed.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self) -> Any:
        while True:
            try:
                return self.queue.get(timeout=0.1)
            except queue.Empty:
                if self.closed.is_set():
                    return _END


def _decode_source(job: FileJob, pipe: _Pipe) -> None:
    """Producer thread: the source's frames in order (checked to be evenly timed), then _END, or the
    exception that stopped it."""
    fps = job.fps
    try:
        with av.open(str(job.src)) as container:
            stream = first_video_stream(container, job.src)
            stream.thread_type = "AUTO"
            time_base = stream_time_base(stream, job.src)
            for k, frame in enumerate(container.decode(stream)):
                if frame.pts is None or abs(float(frame.pts * time_base) * fps - k) >= 0.5:
                    at = "no pts" if frame.pts is None else f"pts {float(frame.pts * time_base):.6f} s"
                    raise ValueError(
                        f"{job.src}: frame {k} has {at}, not {k / fps:.6f} s: re-encoding numbers frames k/fps "
                        "and would move it off the episodes' timestamps"
                    )
                pipe.put(frame)
                if pipe.closed.is_set():
                    return
        pipe.put(_END)
    except BaseException as e:  # handed to the encoding thread, which re-raises it
        pipe.put(e)


def _decoder_for(codec: str) -> Any:
    """The decoder `av.open` would pick for a stream of `codec` (libdav1d for AV1, whose native
    FFmpeg decoder needs hardware)."""
    name = "libdav1d" if codec == "av1" and "libdav1d" in av.codecs_available else codec
    ctx = av.CodecContext.create(name, "r")
    ctx.thread_type = "AUTO"
    return ctx


class _OutputHistograms:
    """Consumer thread: decodes a copy of every packet the encoder emits (the bitstream the file
    gets, through the decoder a reader of the file uses, so the pixels are the file's) and feeds
    each frame, by its index, to its episode's accumulator. Runs while the next frames encode."""

    def __init__(self, spans: list[EpisodeSpan], fps: int) -> None:
        self.spans = sorted(spans, key=lambda s: s.start)
        self.starts = np.array([round(s.start * fps) for s in self.spans])
        self.pipe = _Pipe()
        self.error: BaseException | None = None
        self.frames = 0
        self._decoder: Any = None  # a video decoder context, made once the encoder is open
        self._thread = threading.Thread(target=self._run, name="reencode-stats", daemon=True)
        self._thread.start()

    def send(self, packets: list[av.Packet], encoder: av.CodecContext) -> None:
        if self._decoder is None:  # the encoder is open now: its extradata (avcC, av1C...) exists
            self._decoder = _decoder_for(encoder.codec.canonical_name if encoder.codec else encoder.name)
            self._decoder.extradata = encoder.extradata
        for p in packets:
            copy = av.Packet(bytes(p))  # muxing takes the packet's data away
            copy.pts, copy.dts, copy.time_base = p.pts, p.dts, p.time_base
            self.pipe.put(copy)

    def _run(self) -> None:
        try:
            while (item := self.pipe.get()) is not _END:
                assert self._decoder is not None
                for frame in self._decoder.decode(item):
                    self._add(frame)
            if self._decoder is not None and not self.pipe.closed.is_set():
                for frame in self._decoder.decode(None):
                    self._add(frame)
        except BaseException as e:
            self.error = e
            self.pipe.closed.set()

    def _add(self, frame: av.VideoFrame) -> None:
        k = self.frames
        self.frames += 1
        i = int(np.searchsorted(self.starts, k, side="right")) - 1
        if i >= 0 and k < self.starts[i] + self.spans[i].length:
            self.spans[i].acc.update(frame.to_ndarray(format="rgb24"))

    def finish(self) -> dict[int, tuple[np.ndarray, int]]:
        self.pipe.put(_END)
        self._thread.join()
        if self.error is not None:
            raise self.error
        for s in self.spans:
            if s.acc.frames != s.length:
                raise RuntimeError(f"episode {s.episode}: {s.acc.frames} frames decoded from the re-encoded video, expected {s.length}")
        return {s.episode: (s.acc.hist, s.acc.frames) for s in self.spans if s.acc.hist is not None}

    def abort(self) -> None:
        self.pipe.closed.set()
        self._thread.join()


def reencode_file(job: FileJob) -> FileDone:
    """Re-encode `job.src` into `job.dst` (atomic), forcing a keyframe at every episode start;
    check frame count, pts and keyframes of the result; with `job.histograms`, the per-episode
    image histograms of the new pixels. Three threads overlap: source decode, encode, and decode
    of the new packets for the histograms."""
    starts = {round(s[1] * job.fps) for s in job.spans}
    source = _Pipe()
    producer = threading.Thread(target=_decode_source, args=(job, source), name="reencode-decode", daemon=True)
    stats = _OutputHistograms([EpisodeSpan(*s) for s in job.spans], job.fps) if job.histograms else None
    producer.start()
    try:
        with atomic_output(job.dst) as tmp:
            writer = Mp4FrameWriter(tmp, job.fps, job.encoder, faststart=True, on_packets=stats.send if stats is not None else None)
            try:
                k = 0
                while (item := source.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise item
                    # Decoded frames carry their source picture type; only episode starts are forced.
                    item.pict_type = PictureType.I if k in starts else PictureType.NONE
                    writer.write_av_frame(item)
                    k += 1
                    if stats is not None and stats.error is not None:
                        raise stats.error
                frames = writer.close()
            except BaseException:
                writer.abort()
                raise
            if frames == 0:
                raise ValueError(f"{job.src}: no frames decoded")
            hists = stats.finish() if stats is not None else {}
    except BaseException:
        if stats is not None:
            stats.abort()
        raise
    finally:
        source.closed.set()
        producer.join()
    _check_output(job, frames, starts)
    return FileDone(job.dst, frames, hists)


def _check_output(job: FileJob, frames: int, starts: set[int]) -> None:
    with av.open(str(job.dst)) as container:
        stream = first_video_stream(container, job.dst)
        tb = stream_time_base(stream, job.dst)
        keyframes: set[int] = set()
        pts = []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keyframes.add(round(float(packet.pts * tb) * job.fps))
    expected = sum(s[3] for s in job.spans)
    index = np.sort(np.asarray(pts, dtype=np.int64))
    if len(index) != frames or frames < expected or (len(index) and index[0] != 0):
        raise RuntimeError(f"{job.dst}: {len(index)} packets from {frames} frames (episodes hold {expected}); not written")
    drift = np.abs(index.astype(np.float64) * float(tb) * job.fps - np.arange(len(index)))
    if len(drift) and drift.max() >= 0.01:
        raise RuntimeError(f"{job.dst}: frame {int(drift.argmax())} is off its k/fps timestamp after re-encoding")
    missing = sorted(starts - keyframes)
    if missing:
        raise RuntimeError(f"{job.dst}: the encoder ignored the forced keyframe at frame {missing[0]} (an episode start)")


def _skip(info: DatasetInfo, key: str, src: Path, encoder: VideoEncoderConfig) -> bool:
    if is_depth_camera(info, key) and not encoder.pix_fmt.startswith("gray"):
        return True  # an 8-bit colour encoder would destroy the quantised depth codes
    if not already_encoded(info.features[key].info, encoder):
        return False
    summary = stream_summary(src)
    return bool(summary["codec"] == stream_codec(encoder) and summary["pix_fmt"] == encoder.pix_fmt)


def _spans(rows: dict[int, dict], key: str, file: DatasetFile) -> tuple[tuple[int, float, float, int], ...]:
    out = []
    for ep in file.episodes:
        r = rows[ep]
        out.append((ep, float(r[f"videos/{key}/from_timestamp"]), float(r[f"videos/{key}/to_timestamp"]), int(r["length"])))
    return tuple(sorted(out, key=lambda s: s[1]))


def reencode_videos(
    root: Path | str,
    encoder: VideoEncoderConfig,
    out: Path | str,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> EditResult:
    """A new root at `out`: `root` with every camera's videos re-encoded with `encoder` (files
    already in that encoding are kept byte-for-byte), info.json video blocks describing the new
    files (depth-map fields kept), per-episode image stats and stats.json recomputed."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    report = progress or no_progress
    watch = Stopwatch()
    with local_input(root) as src:
        info = DatasetInfo.load(src)
        episodes = read_episodes(src)
        rows = {int(r["episode_index"]): r for r in episodes.to_pylist()}
        keys = info.video_keys
        files = video_files(info.video_path, keys, episodes.to_pydict()) if keys and info.video_path else []
        with new_dataset(out, [root], overwrite=overwrite, operation=OPERATION) as tmp:
            copy_dataset(src, tmp)
            jobs, skipped = [], 0
            for f in files:
                assert f.video_key is not None
                if _skip(info, f.video_key, src / f.rel, encoder):
                    skipped += 1
                    continue
                jobs.append(FileJob(f.video_key, src / f.rel, tmp / f.rel, info.fps, encoder, _spans(rows, f.video_key, f),
                                    not is_depth_camera(info, f.video_key)))
            done = _run(jobs, workers, report)
            _update_info(tmp, info, jobs, encoder)
            computed: dict[str, dict[int, ImageStatsAccumulator]] = {}
            for job, result in zip(jobs, done):
                for ep, (hist, n) in result.histograms.items():
                    acc = ImageStatsAccumulator()
                    acc.hist, acc.frames = hist, n
                    computed.setdefault(job.key, {})[ep] = acc
            if computed:
                write_image_histograms(tmp, computed)
            ensure_image_histograms(tmp, report)  # skipped files of a dataset without histograms
            write_stats(tmp, compute_dataset_stats(tmp))
    final = resolve_output(out)
    notes = [f"{len(jobs)} video files re-encoded with {encoder.encoder_name}", f"{skipped} already in that encoding, copied"]
    return EditResult(OPERATION, final, info.total_episodes, info.total_frames, tree_bytes(final), watch.seconds, notes)


def _run(jobs: list[FileJob], workers: int, report: Progress) -> list[FileDone]:
    total = sum(s[3] for j in jobs for s in j.spans)
    frames = 0
    if workers == 1 or len(jobs) <= 1:
        results = []
        for job in jobs:
            results.append(reencode_file(job))
            frames += sum(s[3] for s in job.spans)
            report("reencode", frames, total)
        return results
    # spawn: a forked child of a process running pyarrow/encoder threads can inherit held locks.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        futures: list[Future[FileDone]] = [pool.submit(reencode_file, job) for job in jobs]
        for job, future in zip(jobs, futures):
            future.result()
            frames += sum(s[3] for s in job.spans)
            report("reencode", frames, total)
        return [f.result() for f in futures]


def _update_info(root: Path, info: DatasetInfo, jobs: list[FileJob], encoder: VideoEncoderConfig) -> None:
    """Each re-encoded camera's video block from one of its new files and the encoder; depth-map
    fields of the old block kept."""
    changed: dict[str, Path] = {}
    for job in jobs:
        changed.setdefault(job.key, job.dst)
    if not changed:
        return
    info = info.model_copy(deep=True)
    for key, path in changed.items():
        old = info.features[key].info or {}
        block = video_info_block(path, encoder)
        for k in DEPTH_KEYS:
            if k in old:
                block[k] = old[k]
        info.features[key].info = block
    info.save(root)
