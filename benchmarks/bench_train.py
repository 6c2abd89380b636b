"""Train the state policy on this machine within a time budget and evaluate it on held-out seeds.

Records its own dataset (expert episodes of seeds 0..EPISODES-1, no top camera; reused when
--work holds it already), measures the data loader alone, calibrates the training step time and
sets the step count to fit `--minutes`, trains, then evaluates the policy, the scripted expert
(ceiling) and random actions (floor) on the same `--eval-episodes` seeds from `--eval-seed-start`.

The success criterion is gym-pusht's (coverage > 95%); the policy observes privileged state (agent
position + the block's keypoints), not images: LeRobot's anchor (diffusion policy, 63.8% over 500
rollouts after 200k steps on an RTX 3090) looks at 96x96 images. With `--device cuda` the image
policy is trained instead. Prints one line per phase and a final JSON object.

    .venv/bin/python benchmarks/bench_train.py [--episodes 200] [--minutes 15] [--eval-episodes 100]
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SVT_LOG", "1")

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from lerobot_assets.evaluate import evaluate_checkpoint  # noqa: E402
from lerobot_assets.format.info import DatasetInfo  # noqa: E402
from lerobot_assets.sources.pusht import PushTSourceConfig  # noqa: E402
from lerobot_assets.sources.pusht.record import record_pusht  # noqa: E402
from lerobot_assets.train import PolicyConfig, PolicyDataset, StepSampler, TrainConfig, train  # noqa: E402
from lerobot_assets.train.data import check_features, collate, fill_shapes  # noqa: E402


def loader_rate(root: Path, policy: PolicyConfig, batch_size: int, workers: int, batches: int) -> tuple[float, float]:
    """Samples per wall second and per CPU second of the DataLoader alone (same dataset, sampler and
    collation as training)."""
    info, _ = check_features(root, policy)
    ds = PolicyDataset(root, fill_shapes(policy, info))
    loader = DataLoader(ds, batch_sampler=StepSampler(len(ds), batch_size, 0, batches + 2),
                        num_workers=workers, collate_fn=collate)
    it = iter(loader)
    next(it)  # columns loaded, workers started: not what a steady state costs
    next(it)
    t0, cpu0 = time.perf_counter(), time.process_time()
    n = 0
    for batch in it:
        n += len(batch["action"])
    return n / (time.perf_counter() - t0), n / max(1e-9, time.process_time() - cpu0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path(".bench_train"))
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--minutes", type=float, default=15.0,
                   help="training budget in CPU-minutes of this process (all threads; on a 2-core machine about "
                        "half that in wall time when nothing else runs); loader and eval not counted")
    p.add_argument("--steps", type=int, default=None, help="fixed step count instead of the budget")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--chunk-size", type=int, default=16)
    p.add_argument("--n-action-steps", type=int, default=2)
    p.add_argument("--n-obs-steps", type=int, default=2)
    p.add_argument("--ema", type=float, default=None)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--eval-seed-start", type=int, default=1000)
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads: on a shared 2-core machine 2 threads spin against the neighbours (measured "
                        "with load ~9: 292 CPU-ms per step with 2 threads, 20 with 1)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    work = args.work
    data = work / f"pusht_{args.episodes}"
    t0 = time.perf_counter()
    rec = record_pusht(data, PushTSourceConfig(seed=0, episodes=args.episodes, top_camera=False))
    info = DatasetInfo.load(data)
    recorded = (f"{rec.episodes} recorded now in {time.perf_counter() - t0:.0f} s, expert success {rec.success_rate:.0%}"
                if rec.episodes else "recorded earlier")
    print(f"dataset: {info.total_episodes} episodes, {info.total_frames} frames at {data} ({recorded})")

    image = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    policy = PolicyConfig(encoder="image" if image else "state", hidden_dim=args.hidden, num_layers=args.layers,
                          chunk_size=args.chunk_size, n_action_steps=args.n_action_steps, n_obs_steps=args.n_obs_steps)
    loader, loader_cpu = loader_rate(data, policy, args.batch_size, args.num_workers, batches=30)
    print(f"data loader alone: {loader:.0f} samples/s, {loader_cpu:.0f} per CPU-s (batch {args.batch_size}, "
          f"{args.num_workers} workers)")

    def config(out: Path, steps: int) -> TrainConfig:
        return TrainConfig(dataset=str(data), output_dir=str(out), policy=policy, steps=steps, batch_size=args.batch_size,
                           lr=args.lr, warmup_steps=min(500, steps // 20), ema_decay=args.ema, seed=args.seed,
                           num_workers=args.num_workers, device=args.device, log_freq=100)

    steps = args.steps
    if steps is None:
        calib = work / "calibration"
        if calib.exists():
            import shutil
            shutil.rmtree(calib)
        # CPU time, not wall time: on a shared machine the wall clock measures the neighbours.
        probe = train(config(calib, 150), progress=False)
        per_step = probe.cpu_s / probe.step
        steps = max(100, int(args.minutes * 60 / per_step * 0.95))
        print(f"calibration: {per_step * 1000:.1f} CPU-ms/step ({probe.elapsed_s / probe.step * 1000:.1f} ms wall) "
              f"-> {steps} steps for {args.minutes:g} CPU-min")
    run = work / f"run_{int(time.time())}"
    result = train(config(run, steps), progress=True)
    train_cpu = result.step * args.batch_size / max(1e-9, result.cpu_s)
    print(f"trained {result.step} steps in {result.cpu_s / 60:.1f} CPU-min ({result.elapsed_s / 60:.1f} min wall): "
          f"{result.samples_per_s:.0f} samples/s, {train_cpu:.0f} per CPU-s "
          f"(the loader takes {train_cpu / loader_cpu:.0%} of it), "
          f"final loss {result.final_loss:.4f}")

    ev = evaluate_checkpoint(result.checkpoint, run / "eval", episodes=args.eval_episodes,
                             seed_start=args.eval_seed_start, videos=args.videos, device=args.device)
    pol = ev.policy.aggregates
    summary = {
        "policy": policy.encoder,
        "episodes": info.total_episodes,
        "frames": info.total_frames,
        "train_steps": result.step,
        "train_minutes": round(result.elapsed_s / 60, 2),
        "train_cpu_minutes": round(result.cpu_s / 60, 2),
        "train_samples_per_s": round(result.samples_per_s, 1),
        "train_samples_per_cpu_s": round(train_cpu, 1),
        "loader_samples_per_s": round(loader, 1),
        "loader_samples_per_cpu_s": round(loader_cpu, 1),
        # the share of a training step's CPU time the loader would take (loading is part of training)
        "loader_cpu_share": round(train_cpu / loader_cpu, 3),
        "final_loss": round(result.final_loss, 5),
        "eval_seeds": [args.eval_seed_start, args.eval_seed_start + args.eval_episodes - 1],
        "pc_success": pol["pc_success"],
        "pc_success_interval": [round(x, 1) for x in pol["pc_success_interval"]],
        "avg_max_reward": round(pol["avg_max_reward"], 4),
        "avg_sum_reward": round(pol["avg_sum_reward"], 3),
        "expert_pc_success": ev.baselines["expert"].aggregates["pc_success"],
        "expert_avg_max_reward": round(ev.baselines["expert"].aggregates["avg_max_reward"], 4),
        "random_pc_success": ev.baselines["random"].aggregates["pc_success"],
        "random_avg_max_reward": round(ev.baselines["random"].aggregates["avg_max_reward"], 4),
        "eval_s": round(ev.policy.eval_s, 1),
        "checkpoint": str(result.checkpoint),
        "device": result.device,
        "torch_threads": torch.get_num_threads(),
    }
    lo, hi = pol["pc_success_interval"]
    print(f"policy: {pol['pc_success']:.1f}% success (95% interval {lo:.1f}-{hi:.1f}), avg max reward "
          f"{pol['avg_max_reward']:.3f}; expert {summary['expert_pc_success']:.1f}%, random {summary['random_pc_success']:.1f}%")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
