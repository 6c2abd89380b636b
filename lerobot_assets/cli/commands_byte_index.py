"""`lerobot-assets byte-index ROOT`: build or update the per-episode byte index of a dataset."""

from __future__ import annotations

import typer

from lerobot_assets.cli import app


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _one_line(e: BaseException) -> str:
    """An OSError as `<file>: <reason>` (its own str has `[Errno 2]` noise), else the message on one line."""
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        return f"{e.filename}: {e.strerror}"
    return " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__


@app.command("byte-index")
def byte_index(
    root: str = typer.Argument(..., help="Dataset root: a local path or an fsspec URL (s3://..., hf://...)."),
    workers: int = typer.Option(4, "--workers", min=1, help="Files parsed in parallel."),
    force: bool = typer.Option(False, "--force", help="Re-index every file, ignoring the existing index."),
) -> None:
    """Index every episode's byte span in the dataset's MP4s into ROOT/meta/byte_index/.

    Only new or changed files (size+mtime, or ETag on object stores) are parsed again. A published
    prefix (a folder holding current.json) or one of its versions is refused: published versions are
    never changed, so the index is built before publishing.
    """
    from tqdm import tqdm

    from lerobot_assets.byteindex.builder import BuildProgress, build_byte_index

    # Made on the first finished file: an error found while reading the metadata is then the
    # only thing on stderr, not a half-drawn bar.
    bar: tqdm | None = None

    def on_progress(event: BuildProgress) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=event.total, unit="file", desc="byte-index", leave=False)
        bar.total = event.total
        bar.set_postfix_str(f"{event.action} {event.path}", refresh=False)
        bar.update(1)

    try:
        result = build_byte_index(root, workers=workers, force=force, progress=on_progress)
    except (OSError, ValueError) as e:
        # Every metadata and MP4 error names its file; nothing was written (the index is written
        # only once every file is parsed).
        typer.echo(f"error: {_one_line(e)}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        if bar is not None:
            bar.close()
    s = result.stats
    typer.echo(
        f"byte index: {s.files} files ({s.files_indexed} indexed, {s.files_reused} unchanged), "
        f"{s.segments} episode segments, {s.frames} frames, {_human(s.bytes_indexed)} of video indexed, "
        f"{_human(s.header_bytes_read)} of headers read, {s.seconds:.2f} s"
    )
    typer.echo(f"written to {result.index_dir}")
