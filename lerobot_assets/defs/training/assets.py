"""Training and evaluation as assets: dataset_splits -> policy_checkpoint -> policy_eval.

Bodies call lerobot_assets.train / lerobot_assets.evaluate; files live under the data home
(`training/policy_checkpoint/<run key>/`, `evaluations/policy_eval/<run key>/<step>/`), the
metadata carries the numbers. A run key hashes the dataset fingerprint and the settings, so
re-materializing with unchanged inputs reuses the checkpoint instead of training again, and a run
a crash interrupted resumes from its last checkpoint.
(No `from __future__ import annotations` here: Dagster reads the annotations at definition time.)
"""

import base64
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import dagster as dg
from pydantic import Field

from lerobot_assets.defs.curation.assets import dataset_splits
from lerobot_assets.defs.resources import DataHome
from lerobot_assets.home.curation import SPLITS_DIR, splits_root
from lerobot_assets.home.layout import MERGED_DATASET, HomeLayout
from lerobot_assets.home.workspace import HomeWorkspace

if TYPE_CHECKING:
    from lerobot_assets.train import TrainConfig

# lerobot_assets.train and .evaluate are imported where they are used: they load torch (about 1.5 s,
# several on a loaded machine), which every process that loads the code location (webserver, daemon,
# each run and step) would otherwise pay for.

TRAINING_GROUP = "training"
# Bump when the policy or the training loop changes what a checkpoint is: Dagster then shows
# policy_checkpoint as stale (code version changed).
CODE_VERSION = "chunking-v1"
TRAIN_SPLIT = "train"


TRAINING_REL = "training/policy_checkpoint"
EVALUATION_REL = "evaluations/policy_eval"


def training_base(layout: HomeLayout) -> Path:
    return layout.root / TRAINING_REL


def evaluation_base(layout: HomeLayout) -> Path:
    return layout.root / EVALUATION_REL


def pull_training_inputs(ws: HomeWorkspace) -> None:
    """The train split and the merged dataset (whose provenance a split lacks), on a remote home."""
    ws.pull(f"datasets/{SPLITS_DIR}/{TRAIN_SPLIT}")
    ws.pull(f"datasets/{MERGED_DATASET}")


def training_dataset(layout: HomeLayout) -> tuple[Path, Optional[str]]:
    """The train split when the splits exist, else the merged dataset; (root, split name or None)."""
    split = splits_root(layout) / TRAIN_SPLIT
    if (split / "meta" / "info.json").is_file():
        return split, TRAIN_SPLIT
    return layout.dataset(), None


class PolicyTrainingConfig(dg.Config):
    """Training settings (lerobot_assets.train.TrainConfig); the defaults train the state policy in
    a few CPU-minutes."""

    steps: int = Field(2000, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = 1e-3
    policy: str = Field("state", description="state or image")
    hidden_dim: int = 512
    num_layers: int = 4
    chunk_size: int = 16
    n_action_steps: int = 2
    ema_decay: Optional[float] = None
    seed: int = 0
    device: str = Field("auto", description="auto (CUDA when present), cpu or cuda")
    num_workers: int = 0

    def train_config(self, dataset: Path, split: Optional[str], sources: Optional[list[str]]) -> "TrainConfig":
        from lerobot_assets.train import PolicyConfig, TrainConfig

        return TrainConfig(
            dataset=str(dataset), output_dir="", steps=self.steps, batch_size=self.batch_size, lr=self.lr,
            warmup_steps=min(100, self.steps // 10), ema_decay=self.ema_decay, seed=self.seed,
            device=self.device, num_workers=self.num_workers, split=split, sources=sources,
            log_freq=max(1, self.steps // 200),
            policy=PolicyConfig(encoder=self.policy, hidden_dim=self.hidden_dim, num_layers=self.num_layers,
                                chunk_size=self.chunk_size, n_action_steps=min(self.n_action_steps, self.chunk_size)),
        )


def loss_curve_png(points: list[tuple[int, float]], width: int = 480, height: int = 200) -> bytes:
    """A log-scale loss curve as PNG (PIL only: no plotting library in the dependencies)."""
    import math

    from PIL import Image, ImageDraw

    im = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(im)
    pts = [(s, v) for s, v in points if v > 0 and math.isfinite(v)]
    if len(pts) >= 2:
        s0, s1 = pts[0][0], pts[-1][0]
        logs = [math.log10(v) for _, v in pts]
        lo, hi = min(logs), max(logs)
        span = (hi - lo) or 1.0
        xy = [(8 + (s - s0) / max(1, s1 - s0) * (width - 16), 8 + (hi - lv) / span * (height - 28)) for (s, _), lv in zip(pts, logs)]
        draw.line(xy, fill=(31, 119, 180), width=2)
        draw.text((8, height - 16), f"step {s0}..{s1}   loss {10 ** hi:.3g} -> {pts[-1][1]:.3g} (log scale)", fill="black")
    buf = BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _image_md(png: bytes, caption: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"**{caption}**\n\n![{caption}](data:image/png;base64,{base64.b64encode(png).decode()})")


@dg.asset(
    group_name=TRAINING_GROUP,
    deps=[dataset_splits],
    kinds={"pytorch"},
    code_version=CODE_VERSION,
    description=(
        "An action-chunking policy trained on the training split (datasets/splits/train, else the merged "
        "dataset); checkpoints in LeRobot's layout under training/policy_checkpoint/<run key>/. Reused when "
        "the dataset fingerprint and settings are unchanged."
    ),
)
def policy_checkpoint(context: dg.AssetExecutionContext, config: PolicyTrainingConfig, home: DataHome) -> dg.MaterializeResult:
    with home.workspace("policy_checkpoint", context.log.info) as ws:
        layout = ws.layout
        pull_training_inputs(ws)
        ws.pull(TRAINING_REL)  # earlier runs: an unchanged dataset and config reuse theirs
        root, split = training_dataset(layout)
        from lerobot_assets.train import train_in
        from lerobot_assets.train.data import dataset_sources

        sources = dataset_sources(layout.dataset())  # a split keeps no provenance: its merged dataset's
        run = train_in(training_base(layout), config.train_config(root, split, sources))
        ws.write(TRAINING_REL)
        ws.publish_all()
        where = {"dataset": ws.location(root), "checkpoint": ws.location(run.checkpoint)}
    context.log.info(f"policy_checkpoint ({run.mode}): step {run.step}, final loss {run.final_loss:.4f}, {run.checkpoint}")
    points = run.result.losses if run.result is not None else []
    metadata: dict[str, Any] = {
        "mode": dg.MetadataValue.text(run.mode),
        "steps": dg.MetadataValue.int(run.step),
        "final_loss": dg.MetadataValue.float(run.final_loss),
        "dataset": dg.MetadataValue.path(where["dataset"]),
        "split": dg.MetadataValue.text(split or "(merged dataset)"),
        "dataset_fingerprint": dg.MetadataValue.text(run.fingerprint),
        "checkpoint": dg.MetadataValue.path(where["checkpoint"]),
    }
    if run.samples_per_s is not None:
        metadata["samples_per_s"] = dg.MetadataValue.float(round(run.samples_per_s, 1))
    if points:
        metadata["loss_curve"] = _image_md(loss_curve_png(points), "training loss")
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(run.output_dir.name))


class PolicyEvalConfig(dg.Config):
    """Evaluation settings: seeds `seed_start ..` (refused if any trained the policy), a success floor
    for the non-blocking check."""

    episodes: int = Field(50, ge=1)
    seed_start: int = Field(100_000, ge=0, description="well past the seeds sim sessions use")
    videos: int = Field(2, ge=0)
    batch_size: int = Field(10, ge=1)
    max_steps: int = Field(300, ge=1)
    baselines: bool = True
    success_floor: float = Field(0.0, ge=0, le=100, description="pc_success below this fails policy_eval_above_floor")
    device: str = "auto"


@dg.asset(
    group_name=TRAINING_GROUP,
    deps=[policy_checkpoint],
    kinds={"pytorch"},
    description=(
        "The policy in the PushT simulation on held-out seeds, beside the scripted expert and random actions on "
        "the same seeds: eval_info.json in LeRobot's shape, videos and a preview under evaluations/policy_eval/."
    ),
)
def policy_eval(context: dg.AssetExecutionContext, config: PolicyEvalConfig, home: DataHome) -> dg.MaterializeResult:
    with home.workspace("policy_eval", context.log.info) as ws:
        layout = ws.layout
        ws.pull(TRAINING_REL)
        ws.pull(EVALUATION_REL)
        from lerobot_assets.evaluate import evaluate_checkpoint
        from lerobot_assets.train import current_run

        run = current_run(training_base(layout))
        if run is None:
            raise FileNotFoundError(f"{training_base(layout)}: no trained policy yet; materialize policy_checkpoint first")
        checkpoint = run / "checkpoints" / "last"
        out = evaluation_base(layout) / run.name
        result = evaluate_checkpoint(
            checkpoint, out, episodes=config.episodes, seed_start=config.seed_start, videos=config.videos,
            batch_size=config.batch_size, baselines=config.baselines, max_steps=config.max_steps, device=config.device,
            extra={"success_floor": config.success_floor},
        )
        ws.write(EVALUATION_REL)
        preview = result.preview.read_bytes() if result.preview is not None else None
        ws.publish_all()
        where = {"eval_info": ws.location(out / "eval_info.json"), "checkpoint": ws.location(checkpoint.resolve())}
    a = result.policy.aggregates
    lo, hi = a["pc_success_interval"]
    context.log.info(f"policy_eval: {a['pc_success']:.1f}% success ({lo:.1f}-{hi:.1f}) over {a['n_episodes']} episodes")
    metadata: dict[str, Any] = {
        "pc_success": dg.MetadataValue.float(a["pc_success"]),
        "pc_success_interval": dg.MetadataValue.text(f"{lo:.1f} - {hi:.1f} (95%, Beta posterior)"),
        "avg_max_reward": dg.MetadataValue.float(a["avg_max_reward"]),
        "avg_sum_reward": dg.MetadataValue.float(a["avg_sum_reward"]),
        "episodes": dg.MetadataValue.int(a["n_episodes"]),
        "seeds": dg.MetadataValue.text(f"{config.seed_start}..{config.seed_start + config.episodes - 1}"),
        "eval_info": dg.MetadataValue.path(where["eval_info"]),
        "checkpoint": dg.MetadataValue.path(where["checkpoint"]),
    }
    for name, b in result.baselines.items():
        metadata[f"{name}_pc_success"] = dg.MetadataValue.float(b.aggregates["pc_success"])
        metadata[f"{name}_avg_max_reward"] = dg.MetadataValue.float(b.aggregates["avg_max_reward"])
    if preview is not None:
        metadata["preview"] = _image_md(preview, "rollout 0")
    return dg.MaterializeResult(metadata=metadata)


training_assets = [policy_checkpoint, policy_eval]
