"""`lerobot-assets record-sim`: record PushT episodes into a v3 dataset; `sim-report`: how well the
scripted expert does, without recording.

Like the other command modules, the library is imported inside each command: the simulator stack
(gymnasium, cv2, pymunk, shapely) should not slow down every `lerobot-assets` start.
"""

import json
from pathlib import Path

import typer
from tqdm import tqdm

from lerobot_assets.cli import app


# The docstring is the --help text, which keeps its line breaks: a paragraph is one line.
@app.command("record-sim")
def record_sim(
    root: Path = typer.Option(..., "--root", help="dataset root (created, or appended to if it exists)"),
    episodes: int = typer.Option(
        10, "--episodes", min=1,
        help="the run's episodes: seeds SEED..SEED+EPISODES-1; those ROOT holds already are skipped",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="seed of the first episode (episode i uses seed+i)"),
    max_steps: int = typer.Option(300, "--max-steps", min=1, help="an episode ends at success or after this many steps"),
    vcodec: str = typer.Option("libsvtav1", "--vcodec", help="video encoder: libsvtav1, libx264, libx265, ..."),
    crf: int | None = typer.Option(None, "--crf", help="encoder quality (default: the encoder config's)"),
    top_camera: bool = typer.Option(True, "--top-camera/--no-top-camera", help="also record the 480x640 top camera"),
) -> None:
    """Record seeded PushT simulation episodes (scripted expert) into the dataset at ROOT.

    A re-run continues where ROOT stands: seeds ROOT already holds (recognized by their first frame) are not recorded again, so re-running an interrupted run with the same arguments finishes it, equal to an uninterrupted run. The progress bar counts episodes durable on disk.
    """
    from lerobot_assets.sources.pusht import EpisodeResult, PushTSourceConfig
    from lerobot_assets.sources.pusht.record import record_pusht
    from lerobot_assets.video.config import VideoEncoderConfig

    try:
        encoder = VideoEncoderConfig(vcodec=vcodec, **({"crf": crf} if crf is not None else {}))
        config = PushTSourceConfig(seed=seed, episodes=episodes, max_steps=max_steps, top_camera=top_camera)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    bars: list[tqdm] = []

    def start(held: list[int]) -> None:
        # Drawn once the writer has the root (on_held): a run refused at the start shows no bar.
        bars.append(tqdm(total=episodes, initial=len(held), unit="episode", desc="recording"))
        bars.append(tqdm(unit="frame", desc="frames", leave=False))

    def episode_done(result: EpisodeResult) -> None:
        bars[0].update()
        bars[0].set_postfix(success=result.success)

    try:
        report = record_pusht(root, config, encoder=encoder, on_frame=lambda: bars[1].update(),
                              on_held=start, on_episode=episode_done)
    finally:
        for bar in reversed(bars):
            bar.close()
    held = f"; {len(report.held_seeds)} were there already" if report.held_seeds else ""
    typer.echo(
        f"recorded {report.episodes} episodes ({report.frames} frames) into {report.root}{held}: "
        f"{report.successes}/{report.episodes} reached the goal ({report.success_rate:.0%}), "
        f"{report.frames_per_s:.1f} frames/s"
    )


@app.command("sim-report")
def sim_report(
    episodes: int = typer.Option(10, "--episodes", min=0, help="number of episodes to run"),
    seed: int = typer.Option(0, "--seed", min=0, help="seed of the first episode (episode i uses seed+i)"),
    max_steps: int = typer.Option(300, "--max-steps", min=1, help="an episode ends at success or after this many steps"),
    top_camera: bool = typer.Option(True, "--top-camera/--no-top-camera", help="also render the 480x640 top camera (its cost counts in the speed)"),
    expert_noise: float = typer.Option(0.0, "--expert-noise", min=0.0, help="std (px) of Gaussian noise on each commanded target"),
) -> None:
    """Run seeded PushT episodes with the scripted expert, record nothing, and print its success rate and
    speed as JSON."""
    from lerobot_assets.sources.pusht import PushTSourceConfig, report

    try:
        config = PushTSourceConfig(
            seed=seed, episodes=episodes, max_steps=max_steps, top_camera=top_camera, expert_noise=expert_noise
        )
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(report(config), indent=2))
