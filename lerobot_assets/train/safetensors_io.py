"""Reading and writing `.safetensors` files without the `safetensors` package.

The format is small and fixed (https://huggingface.co/docs/safetensors): an 8-byte little-endian
header length, a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
{str: str}}` padded with spaces to a multiple of 8, then the tensors' bytes, row-major,
little-endian. Files written here load with `safetensors.torch.load_file` (LeRobot's loader) and
files it writes load here. Tensors are written in sorted name order, as the reference writer does.
"""

import json
import struct
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from lerobot_assets.format.atomic import write_atomic

_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_TORCH = {v: k for k, v in _DTYPES.items()}
assert sys.byteorder == "little", "safetensors_io writes native byte order, which must be little-endian"
# Bound on a header we are willing to parse: a corrupt length must not allocate gigabytes.
_MAX_HEADER = 100 << 20


class SafetensorsError(ValueError):
    """A file that is not a readable safetensors file; the message names the file."""


def to_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _DTYPES:
            raise TypeError(f"tensor {name!r}: dtype {t.dtype} cannot be stored in safetensors here")
        # bfloat16 has no numpy dtype: its bytes go through an int16 view. Native order is little-endian
        # on every platform torch ships CPU wheels for (checked at import below).
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def save_file(tensors: Mapping[str, torch.Tensor], path: Path | str, metadata: Mapping[str, str] | None = None) -> None:
    """Write `tensors` to `path` atomically (temp sibling + rename)."""
    data = to_bytes(tensors, metadata)

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    write_atomic(Path(path), write)


def load_file(path: Path | str) -> dict[str, torch.Tensor]:
    """Every tensor of the file (fresh, writable CPU tensors); SafetensorsError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SafetensorsError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) < 8:
        raise SafetensorsError(f"{path}: not a safetensors file (shorter than its header length)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(_MAX_HEADER, len(data) - 8):
        raise SafetensorsError(f"{path}: not a safetensors file (header length {n} past the end)")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    body = memoryview(data)[8 + n :]
    out: dict[str, torch.Tensor] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _TORCH[entry["dtype"]]
            shape = [int(s) for s in entry["shape"]]
            begin, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{path}: tensor {name!r} has a malformed header entry {entry!r}") from None
        storage = torch.bool if dtype == torch.bool else dtype
        itemsize = torch.empty((), dtype=storage).element_size()
        count = int(np.prod(shape)) if shape else 1
        if not 0 <= begin <= end <= len(body) or end - begin != count * itemsize:
            raise SafetensorsError(f"{path}: tensor {name!r} offsets {begin}..{end} do not fit its shape {shape}")
        chunk = bytes(body[begin:end])
        if dtype == torch.bfloat16:
            t = torch.frombuffer(bytearray(chunk), dtype=torch.int16).view(torch.bfloat16)
        elif count == 0:
            t = torch.empty(0, dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(chunk), dtype=dtype)
        out[name] = t.reshape(shape).clone()
    return out


def read_metadata(path: Path | str) -> dict[str, str]:
    path = Path(path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > _MAX_HEADER:
            raise SafetensorsError(f"{path}: not a safetensors file")
        header = json.loads(f.read(n))
    meta = header.get("__metadata__", {}) if isinstance(header, dict) else {}
    return dict(meta)
