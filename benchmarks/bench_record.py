"""Recording throughput at 480x640: our streaming writer vs encode-after-episode vs the raw encoder.

All three encode the same pre-rendered PushT top-camera frames with the same encoder settings
(libsvtav1 preset 12, crf 30, g 2 by default), 1 and 2 cameras, in one run:

- raw: PyAV encoding the frames into one MP4 per camera with no dataset around it (one thread per
  camera, as the writer does): the limit of this machine;
- streaming: DatasetWriter with the per-camera streaming encoder (the default) and background_save
  (episode k is committed while episode k+1 is recorded; what record-sim uses);
- streaming-sync: the same with save_episode() committing before it returns;
- after: DatasetWriter encoding each episode after it ends (LeRobot's classic path, minus PNGs).

Frames/s counts dataset frames (one timestep of every camera). The last line is a JSON object.

    .venv/bin/python benchmarks/bench_record.py [--episodes 6] [--frames 150] [--repeats 3]
"""

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SVT_LOG", "1")

import av  # noqa: E402

from lerobot_assets.recording import DatasetWriter  # noqa: E402
from lerobot_assets.sources.pusht import TOP_CAMERA_KEY, PushTSourceConfig, iter_episode_frames  # noqa: E402
from lerobot_assets.video.config import VideoEncoderConfig  # noqa: E402

FPS = 10


def render_episodes(episodes: int, frames: int) -> list[list[dict]]:
    config = PushTSourceConfig(episodes=episodes, max_steps=frames, top_camera=True)
    out = []
    for seed in range(episodes):
        eps = list(iter_episode_frames(seed, config))
        out.append(eps)
    return out


def raw_encode(episodes: list[list[dict]], cameras: int, config: VideoEncoderConfig, workdir: Path) -> float:
    """Seconds for PyAV alone to encode every episode of every camera (cameras in parallel)."""
    options = config.codec_options()

    def encode_camera(cam: int) -> None:
        for e, eps in enumerate(episodes):
            with av.open(str(workdir / f"raw-{cam}-{e}.mp4"), "w") as container:
                stream = container.add_stream(config.vcodec, rate=FPS, options=options)
                stream.width, stream.height, stream.pix_fmt = 640, 480, config.pix_fmt
                stream.time_base = Fraction(1, FPS)
                for i, frame in enumerate(eps):
                    vf = av.VideoFrame.from_ndarray(frame[TOP_CAMERA_KEY], format="rgb24")
                    vf.pts = i
                    for packet in stream.encode(vf):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=encode_camera, args=(c,)) for c in range(cameras)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def writer_record(
    episodes: list[list[dict]], cameras: int, config: VideoEncoderConfig, root: Path, streaming: bool, background: bool
) -> float:
    keys = [f"observation.images.cam{c}" for c in range(cameras)]
    features = {
        "observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
        **{k: {"dtype": "video", "shape": [480, 640, 3], "names": ["height", "width", "channels"]} for k in keys},
    }
    t0 = time.perf_counter()
    with DatasetWriter.create(root, fps=FPS, features=features, encoder=config, streaming=streaming,
                              queue_maxsize=120, background_save=background) as writer:
        for eps in episodes:
            for frame in eps:
                writer.add_frame({
                    "observation.state": frame["observation.state"],
                    "action": frame["action"],
                    **{k: frame[TOP_CAMERA_KEY] for k in keys},
                    "task": frame["task"],
                })
            writer.save_episode()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--frames", type=int, default=150, help="max steps per episode")
    parser.add_argument("--repeats", type=int, default=3, help="best of N for each measurement")
    parser.add_argument("--vcodec", default="libsvtav1")
    args = parser.parse_args()
    config = VideoEncoderConfig(vcodec=args.vcodec)
    episodes = render_episodes(args.episodes, args.frames)
    n_frames = sum(len(e) for e in episodes)
    print(f"{len(episodes)} PushT episodes, {n_frames} frames at 480x640, {config.vcodec} "
          f"preset {config.preset} crf {config.crf} g {config.g}")
    results: dict[str, float] = {"frames": n_frames}
    work = Path(tempfile.mkdtemp(prefix="bench_record-"))
    try:
        for cameras in (1, 2):
            modes = {"streaming": (True, True), "streaming_sync": (True, False), "after": (False, False)}
            best = {"raw": float("inf"), **{m: float("inf") for m in modes}}
            for r in range(args.repeats):
                # Interleave the modes so machine noise hits them alike.
                best["raw"] = min(best["raw"], raw_encode(episodes, cameras, config, work))
                for mode, (streaming, background) in modes.items():
                    root = work / f"{mode}-{cameras}-{r}"
                    best[mode] = min(best[mode], writer_record(episodes, cameras, config, root, streaming, background))
                    shutil.rmtree(root)
            fps = {k: n_frames / v for k, v in best.items()}
            for k, v in fps.items():
                results[f"{k}_fps_{cameras}cam"] = round(v, 1)
            for mode in modes:
                results[f"{mode}_vs_raw_{cameras}cam"] = round(fps[mode] / fps["raw"], 3)
            print(f"{cameras} camera(s): raw {fps['raw']:.1f} frames/s; " + ", ".join(
                f"{mode} {fps[mode]:.1f} ({fps[mode] / fps['raw']:.0%} of raw)" for mode in modes))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
