"""Dataset commands: `validate` and `info` (registered on lerobot_assets.cli.app).

Each command is its own function; other dataset commands (e.g. `record-sim`) go in separate
functions below, without touching these.
"""

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lerobot_assets.cli import app

if TYPE_CHECKING:
    import pyarrow as pa

    from lerobot_assets.format.info import DatasetInfo

# Exit codes: 0 valid / printed, 1 the dataset has errors, 2 ROOT is not a LeRobot v3 dataset.
EXIT_INVALID = 1
EXIT_NOT_A_DATASET = 2


def _not_a_dataset(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=EXIT_NOT_A_DATASET)


# ---------------------------------------------------------------------------------- validate
@app.command("validate")
def validate_command(
    root: str = typer.Argument(
        ..., help="Root of a LeRobot v3.0 dataset (the folder holding meta/), or a published prefix (the folder "
        "holding current.json): the version it points at is validated. A URL (s3://...) is downloaded first."
    ),
    no_videos: bool = typer.Option(False, "--no-videos", help="Skip the video checks (no video file is opened)."),
    max_per_check: int = typer.Option(50, "--max-per-check", help="List at most this many problems of one kind."),
) -> None:
    """Check a dataset against the invariants LeRobot's reader relies on.

    Prints one line per problem (`ERROR <file> [episode N]: <message>`, warnings as WARNING lines)
    and exits 1 when there is any error; prints a one-line OK summary and exits 0 otherwise.
    """
    from lerobot_assets.checks.validate import NotAV3DatasetError, validate_dataset
    from lerobot_assets.format.published import local_copy
    from lerobot_assets.format.versions import PointerError

    try:
        with local_copy(root, videos=not no_videos) as copy:
            report = validate_dataset(copy.path, check_videos=not no_videos, max_problems_per_check=max_per_check)
            # A downloaded copy is reported by the URL of the version it came from.
            named = (lambda text: text.replace(str(copy.path), copy.label)) if copy.label != str(copy.path) else str
            lines = [named(str(problem)) for problem in report.problems]
            summary = named(report.summary())
    except NotAV3DatasetError as e:
        raise _not_a_dataset(str(e)) from None
    except (PointerError, FileNotFoundError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=EXIT_INVALID) from None
    for line in lines:
        typer.echo(line)
    if not report.ok:
        typer.echo(summary, err=True)
        raise typer.Exit(code=EXIT_INVALID)
    typer.echo(summary)


# ---------------------------------------------------------------------------------- info
def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{seconds:.1f} s ({s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d})"


@app.command("info")
def info_command(
    root: str = typer.Argument(
        ..., help="Root of a LeRobot v3.0 dataset (the folder holding meta/), a published prefix, or a URL (s3://...)."
    ),
) -> None:
    """Print a summary of a dataset: fps, robot, episodes, frames, tasks, features and cameras.

    ROOT may be a published prefix (the folder holding current.json): its current version is shown.
    Of a URL only meta/ is downloaded; video sizes come from the listing, and no video is probed."""
    from lerobot_assets.format.published import local_copy
    from lerobot_assets.format.versions import PointerError

    try:
        with local_copy(root, videos=False) as copy:
            remote = copy.label if copy.label != str(copy.path) else None
            _print_info(copy.path, remote, copy.remote_sizes)
    except PointerError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=EXIT_INVALID) from None
    except FileNotFoundError as e:
        raise _not_a_dataset(str(e)) from None


def _print_info(root: Path, remote: str | None, remote_sizes: dict[str, int]) -> None:
    from lerobot_assets.format.episodes import read_episodes
    from lerobot_assets.format.files import flat
    from lerobot_assets.format.info import DatasetInfo, NotAV3DatasetError
    from lerobot_assets.format.published import follow_local
    from lerobot_assets.format.tasks import read_tasks
    from lerobot_assets.format.versions import PointerError

    try:
        # A published prefix shows the version it points at: `dataset:` below names it.
        root, _ = follow_local(root)
        info = DatasetInfo.load(root)
    except PointerError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=EXIT_INVALID) from None
    except (FileNotFoundError, NotAV3DatasetError) as e:
        raise _not_a_dataset(str(e)) from None
    except ValueError as e:  # a v3 dataset whose info.json is broken: named file and key
        typer.echo(f"error: {flat(e)}", err=True)
        raise typer.Exit(code=EXIT_INVALID) from None
    columns = ["episode_index", "tasks", "length"]
    for key in info.video_keys:
        columns += [f"videos/{key}/chunk_index", f"videos/{key}/file_index"]
    try:
        tasks = read_tasks(root)
        episodes = read_episodes(root, columns=columns)
    except (ValueError, OSError, KeyError) as e:
        typer.echo(f"error: {flat(e)} (run `lerobot-assets validate {remote or root}`)", err=True)
        raise typer.Exit(code=EXIT_INVALID) from None
    n_eps = episodes.num_rows
    # Nulls are skipped (a summary shows what is there; `validate` reports them).
    lengths = [x for x in episodes.column("length").to_pylist() if x is not None] if n_eps else []
    frames = int(sum(lengths))
    lines = [
        f"dataset:     {remote or Path(root).resolve()}",
        f"version:     {info.codebase_version}",
        f"robot_type:  {info.robot_type}",
        f"fps:         {info.fps}",
        f"episodes:    {n_eps}" + (f" (info.json says {info.total_episodes})" if info.total_episodes != n_eps else ""),
        f"frames:      {frames}" + (f" (info.json says {info.total_frames})" if info.total_frames != frames else ""),
        f"duration:    {_duration(frames / info.fps)}",
    ]
    if lengths:
        lines.append(f"ep. length:  min {min(lengths)}, mean {frames / len(lengths):.1f}, max {max(lengths)} frames")
    episode_tasks = episodes.column("tasks").to_pylist() if n_eps else []
    per_task = Counter(t for ts in episode_tasks if ts is not None for t in ts)
    lines.append(f"tasks ({len(tasks)}):")
    for i, task in enumerate(tasks):
        count = per_task.get(task, 0)
        lines.append(f"  [{i}] {task!r}: {count} episode{'s' if count != 1 else ''}")
    lines.append(f"features ({len(info.features)}):")
    width = max((len(k) for k in info.features), default=0)
    for key, f in info.features.items():
        lines.append(f"  {key:<{width}}  {f.dtype:<8} {tuple(f.shape)}")
    if info.camera_keys:
        lines.append("cameras:")
    for key in info.image_keys:
        lines.append(f"  {key}: images embedded in the data parquet (PNG)")
    for key in info.video_keys:
        lines.append("  " + _camera_line(Path(root), info, episodes, key, remote_sizes))
    typer.echo("\n".join(lines))


def _camera_line(root: Path, info: "DatasetInfo", episodes: "pa.Table", key: str, remote_sizes: dict[str, int]) -> str:
    """codec / resolution of the first video file of a camera, plus its file count and bytes on disk."""
    from lerobot_assets.format.files import file_problem
    from lerobot_assets.format.templates import video_files
    from lerobot_assets.video.probe import stream_summary

    if info.video_path is None:
        return f"{key}: no video_path in info.json"
    # The camera's files as the dataset's own template names them (never a glob).
    rels = [f.rel for f in video_files(info.video_path, [key], episodes.to_pydict())]
    paths = [root / rel for rel in rels]
    # Only regular files are sized and probed: a FIFO would block the probe.
    present = [p for p in paths if file_problem(p) is None]
    on_remote = [rel for rel in rels if rel in remote_sizes]  # a URL's videos: listed, not downloaded
    size = sum(p.stat().st_size for p in present) + sum(remote_sizes[rel] for rel in on_remote)
    missing = len(paths) - len(present) - len(on_remote)
    stream = "not probed (remote)" if on_remote and not present else "no readable file"
    for p in present[:1]:
        try:
            s = stream_summary(p)
            fps = f"{float(s['fps']):g} fps" if s.get("fps") is not None else "? fps"
            stream = f"{s['codec']} {s['width']}x{s['height']} {s['pix_fmt']} {fps}"
        except Exception as e:  # a broken file must not hide the other cameras' lines
            stream = f"unreadable ({type(e).__name__})"
    files = f"{len(paths)} file{'s' if len(paths) != 1 else ''}" + (f" ({missing} missing)" if missing else "")
    return f"{key}: {stream}, {files}, {size:,} bytes ({_human_bytes(size)})"
