"""The `sim` backend: annotations from the recorded states, offline and deterministic.

PushT episodes (`observation.state` = agent position, `observation.environment_state` = the block's
8 keypoints, both in gym-pusht's 512x512 workspace): subtasks from contact phases. gym-pusht's space
has zero damping, so the block moves during a step exactly when the agent pushes it: frame i is "in
contact" when the block's keypoints change between frames i and i+1 (measured against the physics'
own contact count on replay, this agrees to the frame; distance to the T's quads does not: the agent
often grazes the block without pushing). Each contact run is "push" or "rotate" by what the block did
over it (translation against the arc its tips swept), the free runs are "reach" (first),
"reposition" (between) and "move clear" (last). Runs shorter than `MIN_RUN_FRAMES` join their
neighbours. VQA answers come from the block and agent poses projected into each camera: gym-pusht
draws the workspace at 512x512 and resizes it to the camera's size, so a workspace point (x, y) is
pixel (x * W/512, y * H/512).

Other datasets: subtasks from proprioception (moving / paused runs of `observation.state`, else
`action`), and no VQA. Phrasings come from templates, chosen per episode with a seeded RNG.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from lerobot_assets.annotate.backends.base import RawSpan, VqaRequest
from lerobot_assets.annotate.config import AnnotateConfig
from lerobot_assets.annotate.episodes import Camera, EpisodeData
from lerobot_assets.sources.pusht.config import PUSHT_TASK

WORKSPACE = 512.0
AGENT_RADIUS = 15.0
CONTACT_TOLERANCE = 2.0  # px, for the spatial relation 'near'
MOTION_EPS = 1e-4  # px: keypoint change that counts as the block moving
MIN_RUN_FRAMES = 2
GOAL_POSE = (256.0, 256.0, math.pi / 4)  # gym-pusht's fixed goal (x, y, theta)
# The T's local vertices (gym-pusht `add_tee`, scale 30, length 4): bar, then stem.
_TEE_LOCAL = np.array(
    [(-60, 30), (60, 30), (60, 0), (-60, 0), (-15, 30), (-15, 120), (15, 120), (15, 30)], dtype=np.float64
)

PHRASES: dict[str, list[str]] = {
    "reach": ["reach the T block", "move to the T block", "approach the T-shaped block"],
    "push": ["push the T block toward the target", "slide the T block toward the green target", "push the block toward the goal"],
    "rotate": ["rotate the T block into alignment with the target", "turn the T block to match the target", "rotate the block to line it up with the goal"],
    "reposition": ["reposition around the block", "move to another side of the block", "shift to a new contact point"],
    "settle": ["move clear of the block", "back away from the block", "release the block and settle"],
    "move": ["move the arm", "move toward the next position"],
    "pause": ["hold still", "pause"],
}
PUSHT_TASK_VARIANTS = [
    "Slide the T-shaped block onto the green T target.",
    "Move the T block so that it covers the T-shaped goal.",
    "Push the gray T until it lines up with the green outline.",
    "Align the T-shaped block with the target by pushing it.",
    "Get the T block onto the T-shaped target area.",
]
OPENINGS = ["On it.", "Okay, starting now.", "Sure, I'll take care of it.", "Got it."]
CUES = ["Now {next}.", "Next, {next}, please.", "Please {next} now."]
REPLIES = ["Okay, I'll {next}.", "Sure, {next}.", "Will do: {next}."]


def block_pose(keypoints: np.ndarray) -> tuple[float, float, float]:
    """(x, y, theta) of the block from its 8 keypoints: the rigid transform of `_TEE_LOCAL`."""
    kp = np.asarray(keypoints, np.float64).reshape(8, 2)
    bar = kp[1] - kp[0]
    theta = math.atan2(bar[1], bar[0])
    c, s = math.cos(theta), math.sin(theta)
    rotated = _TEE_LOCAL @ np.array([[c, s], [-s, c]])
    origin = (kp - rotated).mean(axis=0)
    return float(origin[0]), float(origin[1]), theta


def goal_keypoints() -> np.ndarray:
    x, y, th = GOAL_POSE
    c, s = math.cos(th), math.sin(th)
    return _TEE_LOCAL @ np.array([[c, s], [-s, c]]) + np.array([x, y])


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def _quad_distance(p: np.ndarray, quad: np.ndarray) -> float:
    """Distance from point p to a convex quad (0 inside)."""
    signs = []
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        signs.append((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))
    if all(s >= 0 for s in signs) or all(s <= 0 for s in signs):
        return 0.0
    return min(_segment_distance(p, quad[i], quad[(i + 1) % 4]) for i in range(4))


def agent_block_distance(agent: np.ndarray, keypoints: np.ndarray) -> float:
    kp = np.asarray(keypoints, np.float64).reshape(8, 2)
    return min(_quad_distance(np.asarray(agent, np.float64)[:2], kp[:4]), _quad_distance(np.asarray(agent, np.float64)[:2], kp[4:]))


def contact_frames(env_state: np.ndarray) -> np.ndarray:
    """Per frame i: whether the agent pushes the block during step i (the block moves between frames
    i and i+1); the last frame, which has no next, repeats the one before."""
    kp = np.asarray(env_state, np.float64)
    if len(kp) < 2:
        return np.zeros(len(kp), dtype=bool)
    moved = np.abs(np.diff(kp, axis=0)).max(axis=1) > MOTION_EPS
    return np.append(moved, moved[-1])


def runs(flags: np.ndarray, min_len: int = MIN_RUN_FRAMES) -> list[tuple[int, int, bool]]:
    """Runs (start, stop, value) of a boolean series; runs shorter than `min_len` join the run before
    (the first joins the one after)."""
    out: list[list[Any]] = []
    for i, v in enumerate(flags.tolist()):
        if out and out[-1][2] == v:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1, v])
    changed = True
    while changed and len(out) > 1:
        changed = False
        for k, (a, b, _) in enumerate(out):
            if b - a < min_len:
                if k == 0:
                    out[1][0] = a
                else:
                    out[k - 1][1] = b
                del out[k]
                # Neighbours with equal values merge.
                merged: list[list[Any]] = []
                for r in out:
                    if merged and merged[-1][2] == r[2]:
                        merged[-1][1] = r[1]
                    else:
                        merged.append(r)
                out = merged
                changed = True
                break
    return [(int(a), int(b), bool(v)) for a, b, v in out]


def _phrase(ep: EpisodeData, cfg: AnnotateConfig, kind: str) -> str:
    return random.Random(f"{cfg.seed}:{ep.index}:phrase:{kind}").choice(PHRASES[kind])


def _pick(ep: EpisodeData, cfg: AnnotateConfig, what: str, options: list[str]) -> str:
    return random.Random(f"{cfg.seed}:{ep.index}:{what}").choice(options)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def is_pusht(ep: EpisodeData) -> bool:
    return ep.env_state is not None and ep.state is not None and ep.state.shape[1] >= 2


class SimBackend:
    name = "sim"

    def identity(self) -> str:
        return "sim-v1"

    # -- plan --------------------------------------------------------------------------------
    def subtasks(self, ep: EpisodeData, cfg: AnnotateConfig) -> list[RawSpan]:
        if not ep.length:
            return []
        times = ep.times
        if is_pusht(ep):
            assert ep.state is not None and ep.env_state is not None
            spans = []
            parts = runs(contact_frames(ep.env_state))
            for k, (a, b, touching) in enumerate(parts):
                if touching:
                    x0, y0, th0 = block_pose(ep.env_state[a])
                    x1, y1, th1 = block_pose(ep.env_state[min(b, ep.length - 1)])
                    moved = math.hypot(x1 - x0, y1 - y0)
                    turned = abs(math.remainder(th1 - th0, 2 * math.pi)) * 60.0  # arc of the bar's tips
                    kind = "rotate" if turned > moved else "push"
                else:
                    kind = "reach" if k == 0 else ("settle" if k == len(parts) - 1 else "reposition")
                spans.append(RawSpan(_phrase(ep, cfg, kind), times[a], times[b - 1]))
            return spans
        series = ep.state if ep.state is not None else ep.action
        if series is None or ep.length < 2:
            return [RawSpan(_phrase(ep, cfg, "move"), times[0], times[-1])]
        speed = np.linalg.norm(np.diff(series, axis=0), axis=1)
        speed = np.append(speed, speed[-1])
        ref = float(np.percentile(speed, 95)) if speed.size else 0.0
        moving = speed > max(0.1 * ref, 1e-9)
        min_frames = max(MIN_RUN_FRAMES, int(round(cfg.min_subtask_seconds * ep.fps)))
        return [RawSpan(_phrase(ep, cfg, "move" if v else "pause"), times[a], times[b - 1]) for a, b, v in runs(moving, min_frames)]

    def task_variants(self, ep: EpisodeData, task: str, n: int, cfg: AnnotateConfig) -> list[str]:
        if task.strip() == PUSHT_TASK or is_pusht(ep):
            options = list(PUSHT_TASK_VARIANTS)
        else:
            base = task.strip().rstrip(".")
            options = [f"Please {_lower_first(base)}.", f"Your task: {_lower_first(base)}.", f"{base}, carefully."] if base else []
        random.Random(f"{cfg.seed}:{ep.index}:task_aug").shuffle(options)
        return options[:n]

    def memory(self, ep: EpisodeData, prior: str, completed: str, remaining: list[str]) -> str:
        done = [p for p in prior.removeprefix("Done so far: ").rstrip(".").split("; ") if p] if prior else []
        done = (done + [completed])[-3:]
        return "Done so far: " + "; ".join(done) + "."

    # -- interjections -----------------------------------------------------------------------
    def initial_speech(self, ep: EpisodeData, task: str, cfg: AnnotateConfig) -> str | None:
        return _pick(ep, cfg, "opening", OPENINGS)

    def interjection(self, ep: EpisodeData, prev: str, nxt: str, t: float, cfg: AnnotateConfig) -> tuple[str, str] | None:
        key = f"interjection:{t!r}"
        cue = _pick(ep, cfg, key, CUES).format(next=_lower_first(nxt))
        reply = _pick(ep, cfg, key + ":reply", REPLIES).format(next=_lower_first(nxt))
        return cue[:1].upper() + cue[1:], reply

    # -- vqa ---------------------------------------------------------------------------------
    def supports_vqa(self, ep: EpisodeData) -> bool:
        return is_pusht(ep) and bool(ep.cameras)

    def vqa(self, ep: EpisodeData, requests: list[VqaRequest], cfg: AnnotateConfig) -> list[tuple[str, dict[str, Any]] | None]:
        cams = {c.key: c for c in ep.cameras}
        return [self._answer(ep, cams[r.camera], ep.frame_of(r.timestamp), r.question_type) for r in requests]

    def _answer(self, ep: EpisodeData, cam: Camera, i: int, qtype: str) -> tuple[str, dict[str, Any]]:
        assert ep.state is not None and ep.env_state is not None
        agent, kp = ep.state[i, :2], ep.env_state[i].reshape(8, 2)
        sx, sy = cam.width / WORKSPACE, cam.height / WORKSPACE
        if qtype == "bbox":
            return "Where are the T-shaped block and the blue circle? Give pixel boxes.", {
                "detections": [
                    {"label": "T-shaped block", "bbox_format": "xyxy", "bbox": block_bbox(kp, cam)},
                    {"label": "blue circle", "bbox_format": "xyxy", "bbox": _box(
                        agent[0] - AGENT_RADIUS, agent[1] - AGENT_RADIUS, agent[0] + AGENT_RADIUS, agent[1] + AGENT_RADIUS, cam)},
                ]
            }
        if qtype == "keypoint":
            point = [round(min(max(agent[0] * sx, 0.0), cam.width), 1), round(min(max(agent[1] * sy, 0.0), cam.height), 1)]
            return "Where is the center of the blue circle?", {"label": "blue circle", "point_format": "xy", "point": point}
        if qtype == "count":
            return "How many T-shaped blocks are on the table?", {"label": "T-shaped block", "count": 1, "note": "the green T is the target, not a block"}
        if qtype == "attribute":
            x, y, th = block_pose(kp)
            gx, gy, gth = GOAL_POSE
            aligned = math.hypot(x - gx, y - gy) < 20 and abs(math.remainder(th - gth, 2 * math.pi)) < math.radians(15)
            return "Is the T-shaped block aligned with the green target?", {
                "label": "T-shaped block", "attribute": "alignment with the target", "value": "aligned" if aligned else "not aligned"}
        # spatial, in image coordinates (y grows downward)
        if agent_block_distance(agent, kp) <= AGENT_RADIUS + CONTACT_TOLERANCE:
            relation = "near"
        else:
            bx, by = kp.mean(axis=0)
            dx, dy = (agent[0] - bx) * sx, (agent[1] - by) * sy
            relation = ("right_of" if dx > 0 else "left_of") if abs(dx) >= abs(dy) else ("below" if dy > 0 else "above")
        return "Where is the blue circle relative to the T-shaped block?", {"subject": "blue circle", "relation": relation, "object": "T-shaped block"}

    def counters(self) -> dict[str, int]:
        return {"calls": 0, "cached": 0}


def _box(x1: float, y1: float, x2: float, y2: float, cam: Camera) -> list[int]:
    sx, sy = cam.width / WORKSPACE, cam.height / WORKSPACE
    return [
        int(min(max(math.floor(x1 * sx), 0), cam.width)),
        int(min(max(math.floor(y1 * sy), 0), cam.height)),
        int(min(max(math.ceil(x2 * sx), 0), cam.width)),
        int(min(max(math.ceil(y2 * sy), 0), cam.height)),
    ]


def block_bbox(keypoints: np.ndarray, cam: Camera) -> list[int]:
    """The pixel box of the block in camera `cam` (holds every projected keypoint)."""
    kp = np.asarray(keypoints, np.float64).reshape(8, 2)
    return _box(kp[:, 0].min(), kp[:, 1].min(), kp[:, 0].max(), kp[:, 1].max(), cam)
