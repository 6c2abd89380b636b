"""Arrow columns of the data parquet as the numpy arrays `LeRobotV3Dataset` indexes per item."""

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class DatasetLayoutError(ValueError):
    """The dataset's data files do not match its episodes metadata (run `lerobot-assets validate`)."""


def torch_dtype_for(np_dtype: np.dtype) -> np.dtype:
    """The numpy dtype whose torch tensor matches what LeRobot returns for values of this dtype.

    LeRobot builds items with `torch.tensor(python_value)`, so floats become float32, integers
    int64 and booleans bool regardless of the stored width.
    """
    if np.issubdtype(np_dtype, np.floating):
        return np.dtype(np.float32)
    if np.issubdtype(np_dtype, np.bool_):
        return np.dtype(np.bool_)
    if np.issubdtype(np_dtype, np.integer):
        return np.dtype(np.int64)
    return np_dtype


def column_to_numpy(col: pa.ChunkedArray | pa.Array, shape: list[int]) -> np.ndarray:
    """Arrow column of scalars or (nested, fixed or variable) lists -> numpy (n, *value_shape)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) and n:
        lengths = pc.list_value_length(arr)
        lo, hi = pc.min_max(lengths).values()
        if lo != hi:
            raise DatasetLayoutError(f"list column has rows of unequal length ({lo.as_py()}..{hi.as_py()})")
    depth = 0
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        # flatten() honours slicing offsets for every list flavour.
        arr = arr.flatten()
        depth += 1
    values = arr.to_numpy(zero_copy_only=False)
    if depth == 0:
        return values
    per_row = values.size // n if n else int(np.prod(shape))
    value_shape = list(shape) if int(np.prod(shape)) == per_row else [per_row]
    if n * per_row != values.size:
        raise DatasetLayoutError(f"list column has rows of unequal length (expected {value_shape} per row)")
    return values.reshape(n, *value_shape)


def language_values(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A `language` column (LeRobot 0.6.1's `language_persistent` / `language_events`: per frame a
    list of message structs) as an object array of Python lists of dicts, one per row, with each
    message's `tool_calls` JSON strings decoded, as LeRobot's `datasets` Json feature returns them."""
    rows = col.to_pylist()
    out = np.empty(len(rows), dtype=object)
    for i, messages in enumerate(rows):
        decoded: list[Any] = []
        for m in messages or []:
            if isinstance(m, dict) and isinstance(m.get("tool_calls"), list):
                m = {**m, "tool_calls": [json.loads(c) if isinstance(c, str) else c for c in m["tool_calls"]]}
            decoded.append(m)
        out[i] = decoded
    return out
