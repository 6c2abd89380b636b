"""One episode's tabular rows, read by row group from the data parquet (local or fsspec).

The streaming reader never loads a whole data file: each admitted episode reads the row group(s)
holding it. The episode -> row group map comes from each file's footer (min/max statistics of
`episode_index`), read once per file per process. Datasets written by LeRobot's recorder or by
lerobot-assets have one row group per episode, so an episode costs one ranged read. A file whose
row groups hold several episodes still works (the group is read and filtered) and is named once in
a warning saying the cost.

Remote files: the footer is fetched once (two ranged reads), then each episode is one ranged read
of its row group's bytes; reads are retried with backoff (`retry.py`).
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_assets.loading.columns import DatasetLayoutError
from lerobot_assets.loading.streaming.retry import ReadFailedError

logger = logging.getLogger(__name__)

# pyarrow reads the last 64 KiB of a file for its footer: one read of that much serves it (and
# whatever row groups sit in it); a longer footer costs one more read.
FOOTER_PROBE = 64 << 10


class _RangesFile(io.RawIOBase):
    """A read-only file of `size` bytes of which some ranges are held; other reads are fetched."""

    def __init__(self, size: int, ranges: list[tuple[int, bytes]], fetch: Callable[[int, int], bytes]):
        super().__init__()
        self._size = size
        self._ranges = sorted(ranges)
        self._fetch = fetch
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, min(self._size, base + offset))
        return self._pos

    def size(self) -> int:
        return self._size

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._size - self._pos)
        if n <= 0:
            return 0
        start, end = self._pos, self._pos + n
        for rs, data in self._ranges:
            if rs <= start and end <= rs + len(data):
                b[:n] = data[start - rs:end - rs]
                break
        else:
            b[:n] = self._fetch(start, end)
        self._pos = end
        return n


@dataclass
class _DataFile:
    """A data file's footer and the row groups of each episode."""

    parquet: Any  # pq.ParquetFile (local) or FileMetaData (remote)
    metadata: pq.FileMetaData
    size: int
    footer: bytes  # remote: the tail of the file holding the footer
    groups_of: dict[int, list[int]]
    multi: bool  # some row group holds several episodes
    lock: threading.Lock


class EpisodeRowsReader:
    """Reads the rows of one episode (by episode_index) from the data file holding it.

    `open_file(rel)` -> (size, ranged read function) for remote roots; None for local roots
    (memory-mapped reads). `columns`: the columns to read. Per process: never pickled with state.
    """

    def __init__(
        self,
        root: Path | str,
        columns: list[str],
        *,
        remote_size: Callable[[str], int] | None = None,
        remote_read: Callable[[str, int, int], bytes] | None = None,
        max_open_files: int = 16,
    ) -> None:
        self.root = root
        self.columns = list(dict.fromkeys([*columns, "episode_index", "frame_index"]))
        self._remote_size = remote_size
        self._remote_read = remote_read
        self.max_open_files = max_open_files
        self._files: OrderedDict[str, _DataFile] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._warned: set[str] = set()
        self.bytes_read = 0  # bytes asked of storage (remote), or of the row groups read (local)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = OrderedDict()
        state["_lock"] = None
        state["_loading"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes_read += n

    def _where(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def _open(self, rel: str) -> _DataFile:
        with self._lock:
            entry = self._files.get(rel)
            if entry is not None:
                self._files.move_to_end(rel)
                return entry
            # One footer read per file even when prefetch threads ask for it together.
            loading = self._loading.setdefault(rel, threading.Lock())
        with loading:
            with self._lock:
                entry = self._files.get(rel)
            if entry is None:
                entry = self._load_footer(rel)
                with self._lock:
                    self._files[rel] = entry
                    while len(self._files) > self.max_open_files:
                        self._files.popitem(last=False)
        return entry

    def _load_footer(self, rel: str) -> _DataFile:
        where = self._where(rel)
        try:
            if self._remote_read is None:
                pf = pq.ParquetFile(Path(self.root) / rel, memory_map=True)
                md, size, footer = pf.metadata, 0, b""
                parquet: Any = pf
            else:
                assert self._remote_size is not None
                size = self._remote_size(rel)
                tail = self._remote_read(rel, max(0, size - FOOTER_PROBE), size)
                if len(tail) < 8 or tail[-4:] != b"PAR1":
                    raise DatasetLayoutError(f"{where}: cannot read data file: not a parquet file (no PAR1 footer)")
                footer_len = int.from_bytes(tail[-8:-4], "little")
                self._count(len(tail))
                if footer_len + 8 > len(tail):  # a long footer: fetch only the part not read yet
                    head = self._remote_read(rel, max(0, size - footer_len - 8), size - len(tail))
                    self._count(len(head))
                    tail = head + tail
                footer = tail
                md = pq.read_metadata(_RangesFile(size, [(size - len(tail), tail)], self._fetcher(rel)))
                parquet = md
        except (DatasetLayoutError, ReadFailedError):
            raise
        except (OSError, pa.ArrowInvalid, ValueError) as e:
            raise DatasetLayoutError(f"{where}: cannot read data file: {e}") from e
        groups_of, multi = self._row_groups(where, md, parquet)
        return _DataFile(parquet, md, size, footer, groups_of, multi, threading.Lock())

    def _fetcher(self, rel: str) -> Callable[[int, int], bytes]:
        assert self._remote_read is not None
        read = self._remote_read

        def fetch(start: int, end: int) -> bytes:
            data = read(rel, start, end)
            self._count(len(data))
            return data

        return fetch

    def _row_groups(self, where: str, md: pq.FileMetaData, parquet: Any) -> tuple[dict[int, list[int]], bool]:
        names = md.schema.names
        if "episode_index" not in names:
            raise DatasetLayoutError(f"{where}: no episode_index column")
        col = names.index("episode_index")
        groups_of: dict[int, list[int]] = {}
        multi = False
        for rg in range(md.num_row_groups):
            if md.row_group(rg).num_rows == 0:
                continue
            stats = md.row_group(rg).column(col).statistics
            if stats is None or not stats.has_min_max:
                raise DatasetLayoutError(
                    f"{where}: row group {rg} has no episode_index statistics; the streaming reader maps "
                    "episodes to row groups from them (rewrite the file with statistics)"
                )
            lo, hi = int(stats.min), int(stats.max)
            multi |= hi > lo
            for ep in range(lo, hi + 1):
                groups_of.setdefault(ep, []).append(rg)
        return groups_of, multi

    def read(self, rel: str, episode_index: int, length: int) -> pa.Table:
        """The episode's rows, ordered by frame_index; DatasetLayoutError naming the file when the
        file cannot be read or holds another number of rows than the metadata says."""
        return self.read_many(rel, [(episode_index, length)])[int(episode_index)]

    def read_many(self, rel: str, episodes: list[tuple[int, int]]) -> dict[int, pa.Table]:
        """Several episodes ((episode_index, length) pairs) of one file in one read, each as read()."""
        entry = self._open(rel)
        where = self._where(rel)
        wanted: set[int] = set()
        for episode_index, _ in episodes:
            found = entry.groups_of.get(int(episode_index), [])
            if not found:
                raise DatasetLayoutError(f"{where}: no row group holds episode {episode_index}")
            wanted.update(found)
        groups = sorted(wanted)
        if entry.multi and rel not in self._warned:
            self._warned.add(rel)
            logger.warning(
                "%s: row groups hold several episodes (%d groups, %d rows): each episode read reads and "
                "filters its whole row group; a file with one row group per episode (as LeRobot's recorder "
                "and lerobot-assets write) reads only the episode's rows",
                where, entry.metadata.num_row_groups, entry.metadata.num_rows,
            )
        try:
            if self._remote_read is None:
                with entry.lock:
                    table = entry.parquet.read_row_groups(groups, columns=self.columns)
                self._count(sum(entry.metadata.row_group(g).total_byte_size for g in groups))
            else:
                table = self._read_remote(rel, entry, groups)
        except (DatasetLayoutError, ReadFailedError):
            raise
        except (OSError, pa.ArrowInvalid, ValueError, KeyError) as e:
            raise DatasetLayoutError(f"{where}: cannot read data file: {e}") from e
        ep_col = table.column("episode_index").to_numpy()
        frames = table.column("frame_index").to_numpy()
        # Sorted by (episode, frame) once: each episode is then one slice.
        order = np.lexsort((frames, ep_col))
        sorted_eps = ep_col[order]
        out: dict[int, pa.Table] = {}
        for episode_index, length in episodes:
            lo, hi = np.searchsorted(sorted_eps, [episode_index, episode_index + 1])
            if hi - lo != length:
                raise DatasetLayoutError(
                    f"{where}: episode {episode_index} has {hi - lo} rows but meta/episodes says length {length}"
                )
            rows = order[lo:hi]
            contiguous = len(rows) > 0 and rows[-1] - rows[0] == len(rows) - 1 and np.all(np.diff(rows) == 1)
            out[int(episode_index)] = table.slice(int(rows[0]), len(rows)) if contiguous else table.take(pa.array(rows))
        return out

    def _read_remote(self, rel: str, entry: _DataFile, groups: list[int]) -> pa.Table:
        md = entry.metadata
        lo, hi = entry.size, 0
        for g in groups:
            rg = md.row_group(g)
            for c in range(rg.num_columns):
                cc = rg.column(c)
                start = cc.data_page_offset
                if cc.has_dictionary_page and cc.dictionary_page_offset is not None:
                    start = min(start, cc.dictionary_page_offset)
                lo, hi = min(lo, start), max(hi, start + cc.total_compressed_size)
        tail_start = entry.size - len(entry.footer)
        ranges = [(tail_start, entry.footer)]
        if lo < tail_start:  # the row group is not all in the footer read already
            body = self._fetcher(rel)(lo, min(hi, tail_start))
            # Adjacent to the tail: one contiguous range, so no read straddles two.
            ranges = [(lo, body + entry.footer)] if lo + len(body) == tail_start else [*ranges, (lo, body)]
        f = _RangesFile(entry.size, ranges, self._fetcher(rel))
        return pq.ParquetFile(f, metadata=md).read_row_groups(groups, columns=self.columns)
