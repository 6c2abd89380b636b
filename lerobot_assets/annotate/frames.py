"""Frames for the VLM: decoded with our decoder, tiled into JPEG contact sheets with timestamp badges
(LeRobot's layout: 224 px wide tiles, a black badge with white `{t:06.2f}s` in the top-left corner,
5 columns x 4 rows per sheet, JPEG quality 84), sent as base64 data URLs."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lerobot_assets.annotate.episodes import EpisodeData

TILE_WIDTH = 224
COLUMNS, ROWS = 5, 4
JPEG_QUALITY = 84


def sample_times(ep: EpisodeData, fps: float = 2.0, cap: int = 60) -> list[float]:
    """round(duration * fps) + 1 frames (at most `cap`), spread uniformly; every frame if fewer."""
    n = min(cap, int(round(ep.duration * fps)) + 1)
    if n >= ep.length:
        return ep.times
    idx = np.unique(np.round(np.linspace(0, ep.length - 1, n)).astype(int))
    return [ep.times[i] for i in idx]


def frames_at(ep: EpisodeData, camera: str, times: Sequence[float]) -> list[np.ndarray]:
    """HWC uint8 frames of `camera` at frame timestamps `times` (one per time, in order)."""
    # Imported on use: the decoder stack (torch, torchcodec) would otherwise load with the code
    # location in every Dagster process, annotating or not.
    from lerobot_assets.video.decode import decode_frames

    if camera not in ep.videos:
        raise ValueError(f"episode {ep.index}: camera {camera!r} has no video (cameras: {sorted(ep.videos)})")
    path, start = ep.videos[camera]
    frames = decode_frames(path, [start + t for t in times], tolerance_s=0.5 / max(ep.fps, 1), return_uint8=True)
    return [f.permute(1, 2, 0).numpy() for f in frames]


def _badge(img: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(img)
    size = max(14, int(0.12 * img.height))
    try:
        font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    box = draw.textbbox((0, 0), text, font=font)
    draw.rectangle((0, 0, box[2] + 4, box[3] + 4), fill=(0, 0, 0))
    draw.text((2, 2), text, fill=(255, 255, 255), font=font)


def tile(frame: np.ndarray, label: str) -> Image.Image:
    img = Image.fromarray(frame)
    h = max(1, round(img.height * TILE_WIDTH / img.width))
    img = img.resize((TILE_WIDTH, h), Image.Resampling.BILINEAR)
    _badge(img, label)
    return img


def contact_sheets(frames: Sequence[np.ndarray], times: Sequence[float]) -> list[bytes]:
    """JPEG sheets of up to 20 badged tiles each, row-major on black."""
    tiles = [tile(f, f"{t:06.2f}s") for f, t in zip(frames, times)]
    sheets = []
    per = COLUMNS * ROWS
    for start in range(0, len(tiles), per):
        group = tiles[start : start + per]
        th = max(t.height for t in group)
        cols = min(COLUMNS, len(group))
        rows = (len(group) + COLUMNS - 1) // COLUMNS
        sheet = Image.new("RGB", (cols * TILE_WIDTH, rows * th), (0, 0, 0))
        for i, t in enumerate(group):
            sheet.paste(t, ((i % COLUMNS) * TILE_WIDTH, (i // COLUMNS) * th))
        buf = io.BytesIO()
        sheet.save(buf, format="JPEG", quality=JPEG_QUALITY)
        sheets.append(buf.getvalue())
    return sheets


def jpeg(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def image_block(data: bytes) -> dict[str, object]:
    return {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(data).decode()}}
