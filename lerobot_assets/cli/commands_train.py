"""`lerobot-assets train`: a policy from a v3 dataset, checkpoints in LeRobot's layout;
`lerobot-assets eval`: a checkpoint in the PushT simulation, with expert and random baselines.

Errors are raised with messages naming the thing (a missing feature, an existing output, the file
of a checkpoint that does not load, cuda without CUDA); `main` prints them as one line, exit 1.
The library is imported inside each command: torch and the simulator stay out of other commands' start.
"""

from pathlib import Path

import typer

from lerobot_assets.cli import app


@app.command("train")
def train_command(
    dataset: Path | None = typer.Option(None, "--dataset", help="v3 dataset root to train on (with --resume: the saved one)"),
    out: Path = typer.Option(..., "--out", help="output directory (checkpoints/<step>/..., checkpoints/last)"),
    steps: int | None = typer.Option(None, "--steps", min=1, help="training steps [default: 1000; with --resume: the saved run's]"),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    policy: str = typer.Option("state", "--policy", help="state (MLP on observation.state + environment_state) or image (conv net on observation.image + state)"),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda"),
    resume: bool = typer.Option(False, "--resume", help="continue OUT's last checkpoint exactly"),
    seed: int = typer.Option(0, "--seed", min=0),
    lr: float = typer.Option(1e-3, "--lr", min=0.0),
    chunk_size: int = typer.Option(16, "--chunk-size", min=1, help="actions predicted at once"),
    n_action_steps: int = typer.Option(2, "--n-action-steps", min=1, help="actions executed per prediction at rollout"),
    ema: float | None = typer.Option(None, "--ema", help="EMA decay of the weights (e.g. 0.999); the checkpoint's model is the EMA"),
    save_freq: int | None = typer.Option(None, "--save-freq", min=1, help="also checkpoint every N steps"),
    num_workers: int = typer.Option(0, "--num-workers", min=0, help="DataLoader worker processes"),
) -> None:
    """Train an action-chunking policy on the dataset at ROOT; OUT must not exist unless --resume.

    The policy is normalized with the dataset's exact stats (stored in the checkpoint); train_config.json records the dataset root, its fingerprint and its sources. With --resume the saved configuration is used (--steps may extend it) and the run continues exactly where the last checkpoint stands.
    """
    from lerobot_assets.train import PolicyConfig, TrainConfig, read_train_config, train

    if policy not in ("state", "image"):
        raise ValueError(f"--policy {policy!r}: expected state or image")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device {device!r}: expected auto, cpu or cuda")
    if resume:
        config = read_train_config(out)
        config = config.model_copy(update={"output_dir": str(out), "device": device} | ({"steps": steps} if steps else {}))
        if dataset is not None and Path(config.dataset).resolve() != dataset.resolve():
            raise ValueError(f"--dataset {dataset}: {out} was trained on {config.dataset}; resume continues that dataset")
    else:
        if dataset is None:
            raise ValueError("--dataset is required (unless --resume)")
        if not (dataset / "meta" / "info.json").is_file():
            raise FileNotFoundError(f"{dataset}: not a v3 dataset (no meta/info.json)")
        config = TrainConfig(
            dataset=str(dataset), output_dir=str(out), steps=steps or 1000, batch_size=batch_size, lr=lr,
            seed=seed, device=device, ema_decay=ema, save_freq=save_freq, num_workers=num_workers,
            policy=PolicyConfig(encoder=policy, chunk_size=chunk_size, n_action_steps=n_action_steps),
        )
    result = train(config, resume=resume)
    typer.echo(
        f"trained to step {result.step} ({result.steps_this_run} this run) on {config.dataset}: final loss "
        f"{result.final_loss:.4f}, {result.samples_per_s:.0f} samples/s on {result.device}; checkpoint {result.checkpoint}"
    )


@app.command("eval")
def eval_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="a training output dir (its last checkpoint), a checkpoint dir or its pretrained_model"),
    episodes: int = typer.Option(50, "--episodes", min=1),
    seed_start: int = typer.Option(1000, "--seed-start", min=0, help="episode i runs seed SEED_START+i; seeds that trained the policy are refused"),
    videos: int = typer.Option(4, "--videos", min=0, help="MP4s of the first K rollouts (480x640 top view)"),
    out: Path | None = typer.Option(None, "--out", help="output dir [default: <training output>/eval/<step>]"),
    batch_size: int = typer.Option(10, "--batch-size", min=1, help="envs stepped together"),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="also run the scripted expert and random actions on the same seeds"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing evaluation in OUT"),
) -> None:
    """Evaluate a checkpoint in gym-pusht on held-out seeds: eval_info.json in LeRobot's shape (with a Beta-posterior interval of the success rate and the baselines), videos and a preview strip."""
    from lerobot_assets.evaluate import EVAL_INFO, evaluate_checkpoint
    from lerobot_assets.train import resolve_pretrained

    pretrained = resolve_pretrained(checkpoint)
    if out is None:
        step_dir = pretrained.parent
        if step_dir.parent.name != "checkpoints":
            raise ValueError(f"--out is required: {checkpoint} is not inside a training output directory")
        out = step_dir.parent.parent / "eval" / step_dir.name
    if (out / EVAL_INFO).exists() and not overwrite:
        raise FileExistsError(f"{out / EVAL_INFO}: exists; pass --overwrite or choose another --out")
    result = evaluate_checkpoint(pretrained, out, episodes=episodes, seed_start=seed_start, videos=videos,
                                 batch_size=batch_size, baselines=baselines, device=device)
    a = result.policy.aggregates
    lo, hi = a["pc_success_interval"]
    base = "".join(f"; {name} {b.aggregates['pc_success']:.1f}%" for name, b in result.baselines.items())
    typer.echo(
        f"success {a['pc_success']:.1f}% (95% interval {lo:.1f}-{hi:.1f}), avg max reward {a['avg_max_reward']:.3f} "
        f"over {a['n_episodes']} episodes, seeds {seed_start}..{seed_start + episodes - 1}{base}; {out / EVAL_INFO}"
    )
