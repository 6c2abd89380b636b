"""`lerobot-assets annotate ROOT --out OUT`: language annotations (LeRobot 0.6.1's columns) written
into a NEW dataset; the input is only read.

A progress bar per module's episodes, then one summary line (rows per style, VLM calls made and served
from the cache). Exit 1 with a named error, and nothing written to OUT, on a bad backend configuration
(an unreachable server: its URL and the error), an unknown camera, or a validation failure (one
`error:` line per failing rule, with its episode and timestamp).
"""

from pathlib import Path

import typer

from lerobot_assets.cli import app
from lerobot_assets.cli.commands_edit import OVERWRITE_HELP, ROOT_HELP, progress_bars


@app.command("annotate")
def annotate_command(
    root: Path = typer.Argument(..., help=ROOT_HELP),
    out: Path = typer.Option(..., "--out", help="Where the annotated dataset is written (must not exist unless --overwrite)."),
    backend: str = typer.Option("sim", "--backend", help="sim (offline, from the recorded states) or openai (any OpenAI-compatible server)."),
    modules: str = typer.Option("plan,interjections,vqa", "--modules", help="Comma-separated modules to run."),
    episodes: str | None = typer.Option(None, "--episodes", help="Episodes to annotate, e.g. 0-9,12 (default: all); the others keep their annotations."),
    api_base: str = typer.Option("http://localhost:8000/v1", "--api-base", help="openai backend: the server's base URL."),
    model: str = typer.Option("Qwen/Qwen2.5-VL-7B-Instruct", "--model", help="openai backend: the model name."),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="openai backend: environment variable holding the API key."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="openai backend: VLM calls in flight at once."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="openai backend: seconds per call."),
    cache: Path | None = typer.Option(None, "--cache", help="openai backend: reply cache directory (default: <staging>/replies)."),
    staging: Path | None = typer.Option(None, "--staging", help="Staging directory (default: .<OUT name>.annotate-staging beside OUT); a re-run resumes from it."),
    cameras: str | None = typer.Option(None, "--cameras", help="VQA cameras, comma-separated (default: all)."),
    seed: int = typer.Option(1729, "--seed", help="Seed of the per-episode sampling."),
    vqa_hz: float = typer.Option(1.0, "--vqa-hz", min=0.01, help="VQA anchors per second."),
    max_interjections: int = typer.Option(3, "--max-interjections", min=0, help="Interjections per episode, at most."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Annotate a dataset with subtasks, plans, memory, interjections and VQA (LeRobot 0.6.1 language columns)."""
    from lerobot_assets.annotate import AnnotateConfig, AnnotationValidationError, SimBackend, annotate_dataset, parse_episodes
    from lerobot_assets.annotate.backends.base import Backend
    from lerobot_assets.annotate.pipeline import default_staging
    from lerobot_assets.tools.output import resolve_output

    chosen_modules = [m.strip() for m in modules.split(",") if m.strip()]
    try:
        config = AnnotateConfig(
            seed=seed, vqa_hz=vqa_hz, max_interjections=max_interjections,
            cameras=tuple(c.strip() for c in cameras.split(",") if c.strip()) if cameras else None,
        )
        chosen = parse_episodes(episodes)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    staging_dir = staging or default_staging(resolve_output(out))
    engine: Backend
    if backend == "sim":
        engine = SimBackend()
    elif backend == "openai":
        from lerobot_assets.annotate.backends.openai import OpenAIBackend

        engine = OpenAIBackend(
            api_base, model, api_key_env=api_key_env, cache_dir=cache or staging_dir / "replies",
            concurrency=concurrency, timeout_s=timeout,
        )
    else:
        raise typer.BadParameter(f"unknown backend {backend!r}; choose sim or openai", param_hint="--backend")
    try:
        with progress_bars() as progress:
            result = annotate_dataset(
                root, out, engine, modules=chosen_modules, episodes=chosen, config=config,
                staging_dir=staging_dir, overwrite=overwrite, progress=progress,
            )
    except AnnotationValidationError as e:
        typer.echo(f"error: annotation validation failed: {len(e.report.errors)} error(s); nothing written to {out}", err=True)
        for issue in e.report.errors:
            typer.echo(f"error: {issue}", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.summary())
