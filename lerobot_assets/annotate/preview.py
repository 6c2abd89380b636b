"""A preview of an annotated dataset: one frame with its active subtask written on it and a VQA box
drawn (the first bbox answer of the first episode that has one), for the asset's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lerobot_assets.annotate.episodes import iter_episodes
from lerobot_assets.annotate.frames import frames_at
from lerobot_assets.annotate.resolve import active_at


def preview_image(root: Path | str) -> np.ndarray | None:
    """HWC uint8, or None when no episode has a VQA box on a camera with a video."""
    for ep in iter_episodes(Path(root)):
        width = {c.key: c.width for c in ep.cameras}
        # the largest camera first: its box and caption read best
        for r in sorted(ep.events, key=lambda r: -width.get(r.get("camera") or "", 0)):
            if r.get("style") != "vqa" or r.get("role") != "assistant" or r.get("camera") not in ep.videos:
                continue
            answer = json.loads(r["content"])
            if "detections" not in answer:
                continue
            t, cam = float(r["timestamp"]), r["camera"]
            img = Image.fromarray(frames_at(ep, cam, [t])[0])
            scale = max(1, 320 // max(img.width, 1))
            if scale > 1:  # small cameras (PushT's 96x96) are enlarged so the text reads
                img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
            draw = ImageDraw.Draw(img)
            for det in answer["detections"]:
                x1, y1, x2, y2 = (v * scale for v in det["bbox"])
                draw.rectangle((x1, y1, x2, y2), outline=(255, 0, 0), width=2)
                draw.text((x1 + 2, y1 + 2), str(det.get("label", "")), fill=(255, 0, 0))
            sub = active_at(ep.persistent, t, "subtask")
            caption = f"ep {ep.index} t={t:.2f}s: {sub['content'] if sub else '-'}"
            draw.rectangle((0, img.height - 14, img.width, img.height), fill=(0, 0, 0))
            draw.text((2, img.height - 13), caption, fill=(255, 255, 255))
            return np.asarray(img)
    return None
