"""Splits of a dataset against the dataset they were cut from: every episode lands in exactly one
split, unchanged.

Checked by content, not by trusting a record of what the split tool did: each episode is reduced to
a digest of its data rows without the columns a split renumbers (`episode_index`, `index`,
`task_index`) but with its task text, its length and its per-camera video durations. The splits'
digests, pooled, must equal the source's digests as multisets: a missing episode, one in two
splits, or one whose frames changed all show as a difference, named by split and episode.
"""

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.format.episodes import read_episodes
from lerobot_assets.format.info import DatasetInfo
from lerobot_assets.format.tasks import read_tasks
from lerobot_assets.format.templates import format_path

RENUMBERED = ("episode_index", "index", "task_index")


def _column_bytes(col: pa.ChunkedArray | pa.Array) -> bytes:
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_fixed_size_list(arr.type) and pa.types.is_primitive(arr.type.value_type):
        return arr.flatten().to_numpy(zero_copy_only=False).tobytes()
    if pa.types.is_primitive(arr.type):
        return np.ascontiguousarray(arr.to_numpy(zero_copy_only=False)).tobytes()
    return repr(arr.to_pylist()).encode()


def episode_digests(root: Path) -> dict[int, str]:
    """{episode_index: digest of its content} for a local dataset root (see module docstring)."""
    root = Path(root)
    info = DatasetInfo.load(root)
    tasks = read_tasks(root)
    episodes = read_episodes(root).to_pylist()
    by_file: dict[tuple[int, int], list[dict]] = {}
    for row in episodes:
        by_file.setdefault((row["data/chunk_index"], row["data/file_index"]), []).append(row)
    out: dict[int, str] = {}
    for (chunk, file), rows in sorted(by_file.items()):
        table = pq.read_table(root / format_path(info.data_path, "data", chunk, file))
        ep_col = table.column("episode_index").to_numpy()
        keep = [c for c in table.column_names if c not in RENUMBERED]
        for row in rows:
            ep = row["episode_index"]
            part = table.filter(pa.array(ep_col == ep)).select(keep)
            h = hashlib.sha256()
            h.update(repr((int(row["length"]), list(row["tasks"] or []))).encode())
            task_idx = table.filter(pa.array(ep_col == ep)).column("task_index").to_numpy()
            h.update(repr([tasks[int(i)] if 0 <= int(i) < len(tasks) else None for i in task_idx]).encode())
            for name in sorted(keep):
                h.update(name.encode())
                h.update(_column_bytes(part.column(name)))
            for key in info.video_keys:
                span = row.get(f"videos/{key}/to_timestamp", 0.0) - row.get(f"videos/{key}/from_timestamp", 0.0)
                h.update(f"{key}:{round(span * info.fps)}".encode())
            out[ep] = h.hexdigest()
    return out


@dataclass
class SplitReport:
    source_episodes: int = 0
    split_episodes: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def split_problems(source: Path, splits: Mapping[str, Path], max_problems: int = 20) -> SplitReport:
    """Whether `splits` ({name: root}) partition `source`: disjoint, and their union is the source."""
    wanted = episode_digests(source)
    report = SplitReport(source_episodes=len(wanted))
    owner: dict[str, list[str]] = {}
    for name, root in splits.items():
        got = episode_digests(root)
        report.split_episodes[name] = len(got)
        for ep, digest in sorted(got.items()):
            owner.setdefault(digest, []).append(f"{name} episode {ep}")
    have = Counter({d: len(v) for d, v in owner.items()})
    need = Counter(wanted.values())
    by_digest = {d: ep for ep, d in sorted(wanted.items(), reverse=True)}
    for digest, count in sorted(have.items()):
        if digest not in need:
            report.problems.append(f"{owner[digest][0]} matches no episode of the source (its frames or task differ)")
        elif count > need[digest]:
            report.problems.append(
                f"source episode {by_digest[digest]} is in more than one split: {', '.join(owner[digest])}"
            )
    for digest, count in sorted(need.items(), key=lambda kv: by_digest[kv[0]]):
        if have.get(digest, 0) < count:
            report.problems.append(f"source episode {by_digest[digest]} is in no split")
    total = sum(report.split_episodes.values())
    if total != report.source_episodes and not report.problems:
        report.problems.append(f"the splits hold {total} episodes, the source {report.source_episodes}")
    del report.problems[max_problems:]
    return report
