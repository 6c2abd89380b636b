"""`lerobot-assets edit ...`: the dataset tools (lerobot_assets.tools), one subcommand each.

Every subcommand reads ROOT (a local path or an fsspec URL), writes a NEW dataset and never touches
its input; it shows progress bars on stderr, prints a one-line summary (episodes, frames, bytes,
seconds) and exits 0, or exits 1 with one line naming the bad argument and nothing written.
Dataset roots are kept as given (strings), so `s3://bucket/ds` is not mangled into a path; local
ones are made absolute once, inside the tools.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lerobot_assets.cli import app

if TYPE_CHECKING:
    from lerobot_assets.tools.output import EditResult, Progress
    from lerobot_assets.video.config import VideoEncoderConfig

edit_app = typer.Typer(
    help="Edit datasets: every command writes a new dataset (--out) and never modifies its input.",
    no_args_is_help=True,
)
app.add_typer(edit_app, name="edit")

ROOT_HELP = "Root of a LeRobot v3.0 dataset (a folder holding meta/, or an fsspec URL)."
OUT_HELP = "Where the new dataset is written (must not exist unless --overwrite)."
OVERWRITE_HELP = "Replace OUT if it exists and is a dataset (it is swapped whole, never half-written)."


@contextmanager
def progress_bars() -> Iterator["Progress"]:
    """A Progress callback drawing one tqdm bar per label on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(label: str, done: int, total: int) -> None:
        bar = bars.get(label)
        if bar is None:
            bar = bars[label] = tqdm(total=total or None, desc=label, unit="", leave=False)
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield progress
    finally:
        for bar in bars.values():
            bar.close()


def _done(result: "EditResult | dict[str, EditResult]") -> None:
    """One summary line, also for a split (one clause per split dataset)."""
    if not isinstance(result, dict):
        typer.echo(result.summary())
        return
    parts = [f"{name} {r.episodes} episodes, {r.frames} frames" for name, r in result.items()]
    first = next(iter(result.values()))
    total_mb = sum(r.bytes for r in result.values()) / 1e6
    seconds = max(r.seconds for r in result.values())
    typer.echo(f"split: {'; '.join(parts)}; {total_mb:.1f} MB in {seconds:.1f} s -> {first.output.parent}")


def parse_named(values: list[str], what: str) -> dict[str, str]:
    """["train=0.8", "val=0.2"] or ["train=0.8,val=0.2"] -> {"train": "0.8", "val": "0.2"}."""
    out: dict[str, str] = {}
    for value in values:
        for part in _split_pairs(value):
            name, sep, rhs = part.partition("=")
            name = name.strip()
            if not sep or not name or not rhs.strip():
                raise typer.BadParameter(f"{part!r} is not NAME=VALUE", param_hint=what)
            if name in out:
                raise typer.BadParameter(f"split {name!r} is given twice", param_hint=what)
            out[name] = rhs.strip()
    return out


def _split_pairs(value: str) -> list[str]:
    """Split "a=0-3,5,b=6-9" at the commas that start a new NAME= (ranges hold commas too)."""
    parts: list[str] = []
    for piece in value.split(","):
        if "=" in piece or not parts:
            parts.append(piece)
        else:
            parts[-1] += "," + piece
    return [p for p in (p.strip() for p in parts) if p]


def encoder_config(vcodec: str, crf: int | None, g: int | None, preset: str | None, pix_fmt: str | None) -> "VideoEncoderConfig":
    from lerobot_assets.video.config import VideoEncoderConfig

    fields: dict[str, Any] = {"vcodec": vcodec}
    if crf is not None:
        fields["crf"] = crf
    if g is not None:
        fields["g"] = g
    if preset is not None:
        fields["preset"] = int(preset) if preset.lstrip("-").isdigit() else preset
    if pix_fmt is not None:
        fields["pix_fmt"] = pix_fmt
    try:
        return VideoEncoderConfig(**fields)
    except ValueError as e:  # pydantic's ValidationError: keep its first message line only
        errors = getattr(e, "errors", None)
        message = errors()[0]["msg"] if callable(errors) else str(e)
        raise typer.BadParameter(message.removeprefix("Value error, "), param_hint="encoder options") from None


# ---------------------------------------------------------------------------------- delete
@edit_app.command("delete")
def delete_command(
    root: str = typer.Argument(..., help=ROOT_HELP),
    episodes: str = typer.Option(..., "--episodes", help="Episodes to delete: indices and ranges, e.g. 1,4,7-9."),
    out: Path = typer.Option(..., "--out", help=OUT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Delete episodes; the rest are renumbered 0..n-1 and their videos stream-copied (no re-encode)."""
    from lerobot_assets.tools.delete import delete_episodes
    from lerobot_assets.tools.selection import parse_episode_ranges

    chosen = parse_episode_ranges(episodes)
    with progress_bars() as progress:
        _done(delete_episodes(root, chosen, out, overwrite=overwrite, progress=progress))


# ---------------------------------------------------------------------------------- split
@edit_app.command("split")
def split_command(
    root: str = typer.Argument(..., help=ROOT_HELP),
    out_dir: Path = typer.Option(..., "--out-dir", help="Each split is written to OUT_DIR/<name>."),
    fractions: str | None = typer.Option(None, "--fractions", help="e.g. train=0.8,val=0.2 (largest remainder: no episode is lost)."),
    episodes: list[str] = typer.Option(
        [], "--episodes", help="NAME=RANGES, repeatable: --episodes train=0-39 --episodes val=40-49."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Shuffle episodes with this seed before allocating fractions."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Split a dataset into several (by fractions or explicit episode lists)."""
    from lerobot_assets.tools.selection import parse_episode_ranges
    from lerobot_assets.tools.split import split_dataset

    if (fractions is None) == (not episodes):
        raise typer.BadParameter("give either --fractions or --episodes (not both)", param_hint="--fractions/--episodes")
    splits: dict[str, Any]
    if fractions is not None:
        splits = {}
        for name, value in parse_named([fractions], "--fractions").items():
            try:
                splits[name] = float(value)
            except ValueError:
                raise typer.BadParameter(f"{name}={value}: {value!r} is not a fraction", param_hint="--fractions") from None
    else:
        splits = {name: parse_episode_ranges(value) for name, value in parse_named(episodes, "--episodes").items()}
    with progress_bars() as progress:
        _done(split_dataset(root, splits, out_dir, seed=seed, overwrite=overwrite, progress=progress))


# ---------------------------------------------------------------------------------- merge
@edit_app.command("merge")
def merge_command(
    roots: list[str] = typer.Argument(..., help="Two or more dataset roots, merged in this order."),
    out: Path = typer.Option(..., "--out", help=OUT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    reencode: bool = typer.Option(False, "--reencode", help="Re-encode cameras whose encoding differs, so all files share one."),
    vcodec: str = typer.Option("libsvtav1", "--vcodec", help="Encoder for --reencode."),
    crf: int | None = typer.Option(None, "--crf"),
    g: int | None = typer.Option(None, "--g"),
    preset: str | None = typer.Option(None, "--preset"),
    pix_fmt: str | None = typer.Option(None, "--pix-fmt"),
) -> None:
    """Merge datasets by stream copy (renumbered episodes, frames and tasks)."""
    from lerobot_assets.tools.merge import merge_to_new

    config = encoder_config(vcodec, crf, g, preset, pix_fmt) if reencode else None
    with progress_bars() as progress:
        _done(merge_to_new(roots, out, overwrite=overwrite, reencode=config, progress=progress))


# ---------------------------------------------------------------------------------- features
@edit_app.command("remove-feature")
def remove_feature_command(
    root: str = typer.Argument(..., help=ROOT_HELP),
    feature: list[str] = typer.Option(..., "--feature", help="Feature to remove (repeatable); a camera drops its videos."),
    out: Path = typer.Option(..., "--out", help=OUT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Remove features (columns, or cameras with their videos)."""
    from lerobot_assets.tools.features import remove_features

    with progress_bars() as progress:
        _done(remove_features(root, feature, out, overwrite=overwrite, progress=progress))


def feature_values(path: Path, key: str) -> tuple[dict[str, Any], Any]:
    """(feature info, values) from a .npy array (global frame order) or a .parquet file with
    episode_index, frame_index, value columns; dtype and shape come from the values."""
    import numpy as np
    import pyarrow.parquet as pq

    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (--values)")
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{path}: not a numeric .npy array ({e})") from None
        shape = list(array.shape[1:]) or [1]
        return {"dtype": str(array.dtype), "shape": shape, "names": None}, array
    if suffix == ".parquet":
        schema = pq.read_schema(path)
        if "value" not in schema.names:
            raise ValueError(f"{path}: no 'value' column (need episode_index, frame_index, value)")
        value_type = schema.field("value").type
        import pyarrow as pa

        if pa.types.is_fixed_size_list(value_type) or pa.types.is_list(value_type):
            sample = pq.read_table(path, columns=["value"]).column("value")
            first: list[Any] = next((v for v in sample.to_pylist() if v is not None), [])
            dtype = str(value_type.value_type.to_pandas_dtype().__name__)
            return {"dtype": dtype, "shape": [len(first)], "names": None}, path
        if pa.types.is_string(value_type) or pa.types.is_large_string(value_type):
            return {"dtype": "string", "shape": [1], "names": None}, path
        return {"dtype": str(value_type.to_pandas_dtype().__name__), "shape": [1], "names": None}, path
    raise ValueError(f"{path}: --values must be a .npy or .parquet file (for feature {key!r})")


@edit_app.command("add-feature")
def add_feature_command(
    root: str = typer.Argument(..., help=ROOT_HELP),
    feature: str = typer.Option(..., "--feature", help="Name of the new feature."),
    values: Path = typer.Option(
        ..., "--values", help=".npy (one row per frame, in global frame order) or .parquet (episode_index, frame_index, value)."
    ),
    out: Path = typer.Option(..., "--out", help=OUT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Add a feature with one value per frame; its stats are computed exactly."""
    from lerobot_assets.tools.features import add_features

    info, data = feature_values(values.absolute(), feature)
    with progress_bars() as progress:
        _done(add_features(root, {feature: (info, data)}, out, overwrite=overwrite, progress=progress))


# ---------------------------------------------------------------------------------- tasks
@edit_app.command("set-task")
def set_task_command(
    root: str = typer.Argument(..., help=ROOT_HELP),
    task: str = typer.Option(..., "--task", help="The new task text."),
    out: Path = typer.Option(..., "--out", help=OUT_HELP),
    episodes: str | None = typer.Option(None, "--episodes", help="Only these episodes (e.g. 0-9); default all."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Set the task of every episode (or of --episodes)."""
    from lerobot_assets.tools.selection import parse_episode_ranges
    from lerobot_assets.tools.tasks import modify_tasks

    with progress_bars() as progress:
        if episodes is None:
            result = modify_tasks(root, out, new_task=task, overwrite=overwrite, progress=progress)
        else:
            chosen = {e: task for e in parse_episode_ranges(episodes)}
            result = modify_tasks(root, out, episode_tasks=chosen, overwrite=overwrite, progress=progress)
    _done(result)


@edit_app.command("replace-task")
def replace_task_command(
    root: str = typer.Argument(..., help=ROOT_HELP),
    old: str = typer.Option(..., "--from", help="The task text to replace (exactly as stored)."),
    new: str = typer.Option(..., "--to", help="The replacement text."),
    out: Path = typer.Option(..., "--out", help=OUT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Replace one task text with another in every episode that has it."""
    from lerobot_assets.tools.tasks import modify_tasks

    with progress_bars() as progress:
        _done(modify_tasks(root, out, task_replacements={old: new}, overwrite=overwrite, progress=progress))


# ---------------------------------------------------------------------------------- stats
@edit_app.command("recompute-stats")
def recompute_stats_command(
    root: str = typer.Argument(..., help=ROOT_HELP),
    out: Path | None = typer.Option(None, "--out", help=OUT_HELP),
    in_place: bool = typer.Option(False, "--in-place", help="Rewrite only ROOT's meta/ files, each atomically."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Recompute exact stats (numeric quantiles over all frames, image stats decoded from video)."""
    from lerobot_assets.tools.recompute_stats import recompute_stats

    if (out is None) == (not in_place):
        raise typer.BadParameter("give exactly one of --out OUT and --in-place", param_hint="--out/--in-place")
    with progress_bars() as progress:
        _done(recompute_stats(root, out, in_place=in_place, overwrite=overwrite, progress=progress))


# ---------------------------------------------------------------------------------- video
@edit_app.command("reencode")
def reencode_command(
    root: str = typer.Argument(..., help=ROOT_HELP),
    out: Path = typer.Option(..., "--out", help=OUT_HELP),
    vcodec: str = typer.Option(..., "--vcodec", help="Encoder, e.g. libx264, libsvtav1, libx265."),
    crf: int | None = typer.Option(None, "--crf"),
    g: int | None = typer.Option(None, "--g", help="GOP size (keyframe interval)."),
    preset: str | None = typer.Option(None, "--preset"),
    pix_fmt: str | None = typer.Option(None, "--pix-fmt"),
    workers: int = typer.Option(1, "--workers", min=1, help="Video files encoded in parallel."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Re-encode every camera (cameras already in the target encoding are copied as they are)."""
    from lerobot_assets.tools.reencode import reencode_videos

    config = encoder_config(vcodec, crf, g, preset, pix_fmt)
    with progress_bars() as progress:
        _done(reencode_videos(root, config, out, workers=workers, overwrite=overwrite, progress=progress))


@edit_app.command("image-to-video")
def image_to_video_command(
    root: str = typer.Argument(..., help=ROOT_HELP),
    out: Path = typer.Option(..., "--out", help=OUT_HELP),
    vcodec: str = typer.Option("libsvtav1", "--vcodec"),
    crf: int | None = typer.Option(None, "--crf"),
    g: int | None = typer.Option(None, "--g"),
    preset: str | None = typer.Option(None, "--preset"),
    pix_fmt: str | None = typer.Option(None, "--pix-fmt"),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Turn `image` features stored in parquet into `video` features."""
    from lerobot_assets.tools.image_to_video import convert_image_to_video

    config = encoder_config(vcodec, crf, g, preset, pix_fmt)
    with progress_bars() as progress:
        _done(convert_image_to_video(root, out, config, overwrite=overwrite, progress=progress))


@edit_app.command("convert-v21")
def convert_v21_command(
    root: str = typer.Argument(..., help="Root of a LeRobot v2.1 dataset."),
    out: Path = typer.Option(..., "--out", help=OUT_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Convert a LeRobot v2.1 dataset to v3.0 (videos stream-copied, input untouched)."""
    from lerobot_assets.tools.convert_v21 import convert_v21

    with progress_bars() as progress:
        _done(convert_v21(root, out, overwrite=overwrite, progress=progress))
