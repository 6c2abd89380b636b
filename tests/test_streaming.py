"""StreamingDataset: items equal the map-style reader's for every frame (windows included), every
frame exactly once over any world size x DataLoader workers, exact resume at batch boundaries,
weighted mixing of several roots, and bad input named."""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from helpers import FIXTURE, record
from torch.utils.data import DataLoader

from lerobot_assets.loading import DatasetLayoutError, LeRobotV3Dataset
from lerobot_assets.loading.streaming import StreamingDataLoader, StreamingDataset, streaming_collate
from lerobot_assets.loading.streaming.order import consumer_stream
from lerobot_assets.loading.streaming.retry import RetryPolicy, with_retry
from lerobot_assets.loading.streaming.rows import FOOTER_PROBE, EpisodeRowsReader
from lerobot_assets.loading.streaming.split import EpisodeRef, assign, balance
from lerobot_assets.recording import DatasetWriter

FRONT, WRIST = "observation.images.front", "observation.images.wrist"
FPS = 30
LENGTHS = [15, 22, 9, 30, 12, 18, 25, 10]
TAB_LENGTHS = [5, 9, 3, 12, 7, 4, 8, 6, 11, 2, 10, 5, 13]
DELTAS = {FRONT: [-2 / FPS, 0.0, 1 / FPS], WRIST: [-1 / FPS, 0.0], "action": [-1 / FPS, 0.0, 2 / FPS],
          "observation.state": [-3 / FPS, 0.0]}


@pytest.fixture(scope="module")
def video_root(tmp_path_factory) -> Path:
    """Eight episodes, two cameras (one video file each), our writer."""
    root = tmp_path_factory.mktemp("stream") / "ds"
    writer, _ = record(root, LENGTHS)
    writer.finalize()
    return root


def write_tabular(root: Path, lengths: list[int], seed: int = 0, state_dim: int = 2, file_mb: float = 0.004) -> Path:
    """A dataset without cameras (fast to read), data files rolling over every few episodes."""
    writer = DatasetWriter.create(
        root, fps=FPS, robot_type="x", data_files_size_in_mb=file_mb,
        features={"observation.state": {"dtype": "float32", "shape": [state_dim], "names": None}},
    )
    rng = np.random.default_rng(seed)
    for e, n in enumerate(lengths):
        for _ in range(n):
            writer.add_frame({"observation.state": rng.standard_normal(state_dim).astype(np.float32),
                              "task": f"task {e % 3}"})
        writer.save_episode()
    writer.finalize()
    return root


@pytest.fixture(scope="module")
def tab_root(tmp_path_factory) -> Path:
    return write_tabular(tmp_path_factory.mktemp("stream") / "tab", TAB_LENGTHS)


def assert_items_equal(a: dict, b: dict, where: object) -> None:
    assert a.keys() == b.keys(), (where, a.keys() ^ b.keys())
    for key, value in a.items():
        if isinstance(value, (str, list)):
            assert value == b[key], (where, key)
        else:
            assert value.dtype == b[key].dtype and value.shape == b[key].shape, (where, key)
            assert torch.equal(value, b[key]), (where, key)


def key_of(item: dict) -> tuple[int, int, int]:
    return int(item["dataset_index"]), int(item["episode_index"]), int(item["frame_index"])


def batch_keys(batch: dict) -> list[tuple[int, int, int]]:
    return list(zip(batch["dataset_index"].tolist(), batch["episode_index"].tolist(), batch["frame_index"].tolist()))


# ------------------------------------------------------------------------------ items and windows
def test_every_frame_equals_map_style_reader_windows_included(video_root) -> None:
    """Natural order (shuffle=False) is the map-style reader's order; shuffled, every item equals
    the map-style item of the same frame: values, windows, `_is_pad`, decoded frames."""
    mapped = LeRobotV3Dataset(video_root, delta_timestamps=DELTAS)
    natural = list(StreamingDataset(video_root, shuffle=False, delta_timestamps=DELTAS))
    assert len(natural) == len(mapped) == sum(LENGTHS)
    for i, item in enumerate(natural):
        assert int(item.pop("dataset_index")) == 0
        assert_items_equal(item, mapped[i], i)
    assert natural[0][f"{FRONT}_is_pad"].tolist() == [True, False, False]
    assert natural[-1]["action_is_pad"].tolist() == [False, False, True]

    ds = StreamingDataset(video_root, delta_timestamps=DELTAS, episode_pool_size=3, seed=5, return_uint8=True)
    mapped8 = LeRobotV3Dataset(video_root, delta_timestamps=DELTAS, return_uint8=True)
    seen = []
    for item in ds:
        item.pop("dataset_index")
        assert_items_equal(item, mapped8[int(item["index"])], int(item["index"]))
        seen.append(int(item["index"]))
    assert sorted(seen) == list(range(len(mapped8))) and seen != sorted(seen)
    stats = ds.stats()
    assert stats["samples"] == len(seen) and stats["episodes_admitted"] == stats["episodes_left"] == len(LENGTHS)
    assert stats["decode_s"] > 0 and stats["data_bytes_fetched"] > 0


def test_lerobot_written_fixture_and_episode_subset() -> None:
    mapped = LeRobotV3Dataset(FIXTURE, episodes=[0, 2])
    items = list(StreamingDataset(FIXTURE, episodes=[2, 0], shuffle=False))
    assert [int(x["episode_index"]) for x in items] == [0] * 20 + [2] * 15
    for i, item in enumerate(items):
        item.pop("dataset_index")
        assert_items_equal(item, mapped[i], i)


def test_shuffle_pool_set_epoch_and_natural_order(tab_root) -> None:
    def order(**kw) -> list[tuple[int, int, int]]:
        ds = StreamingDataset(tab_root, **kw)
        return [key_of(x) for x in ds]

    a, b = order(seed=1, episode_pool_size=4), order(seed=1, episode_pool_size=4)
    assert a == b  # deterministic
    total = sum(TAB_LENGTHS)
    assert sorted(a) == sorted(set(a)) and len(a) == total
    ds = StreamingDataset(tab_root, seed=1, episode_pool_size=4)
    ds.set_epoch(1)
    c = [key_of(x) for x in ds]
    assert sorted(c) == sorted(a) and c != a  # set_epoch reshuffles
    assert order(seed=2, episode_pool_size=4) != a
    natural = order(shuffle=False)
    assert natural == sorted(natural)
    # The pool never holds more than episode_pool_size episodes at once.
    events = list(consumer_stream(StreamingDataset(tab_root).assignment(1)[0], pool_size=3, shuffle=True, seed=0,
                                  epoch=0, rank=0, worker=0))
    live, peak = 0, 0
    for event in events:
        live += {"admit": 1, "leave": -1}.get(event[0], 0)
        peak = max(peak, live)
    assert peak == 3 and live == 0


def test_pool_one_is_episode_by_episode_and_big_pool_mixes(tab_root) -> None:
    one = [key_of(x)[1] for x in StreamingDataset(tab_root, episode_pool_size=1, seed=3)]
    runs = [k for k, _ in itertools.groupby(one)]
    assert len(runs) == len(TAB_LENGTHS)  # each episode emitted whole before the next enters
    mixed = [key_of(x)[1] for x in StreamingDataset(tab_root, episode_pool_size=64, seed=3)]
    assert len([k for k, _ in itertools.groupby(mixed)]) > 3 * len(TAB_LENGTHS)


# ------------------------------------------------------------------------------ split
def test_split_groups_by_file_and_balances_frames() -> None:
    # Episodes 0-5 share file A, 6-7 file B, 8-11 file C.
    files = ["A"] * 6 + ["B"] * 2 + ["C"] * 4
    lengths = [10, 12, 8, 10, 10, 11, 30, 25, 9, 9, 9, 9]
    eps = [EpisodeRef(0, i, n, (f,)) for i, (n, f) in enumerate(zip(lengths, files))]
    parts = balance(eps, 2)
    assert sorted(e.position for p in parts for e in p) == list(range(12))
    loads = [sum(e.length for e in p) for p in parts]
    assert abs(loads[0] - loads[1]) <= max(lengths)
    # No file is split when whole groups balance: each file's episodes sit on one rank.
    for f in "ABC":
        assert sum(any(e.files == (f,) for e in p) for p in parts) == 1
    # One huge file is cut into contiguous runs instead of landing on one rank.
    one_file = [EpisodeRef(0, i, 10, ("A",)) for i in range(9)]
    three = balance(one_file, 3)
    assert [len(p) for p in three] == [3, 3, 3]
    assert all([e.position for e in p] == list(range(p[0].position, p[0].position + 3)) for p in three)
    # Fewer episodes than consumers: the extra consumers get nothing, nobody gets a duplicate.
    few = assign(eps[:2], world_size=3, rank=2, num_workers=2)
    assert few == [[], []]


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("num_workers", [0, 1, 2])
def test_exactly_once_over_ranks_and_dataloader_workers(tab_root, world_size, num_workers, caplog) -> None:
    """Every frame once over all ranks (simulated by arguments) x real DataLoader workers."""
    seen: list[tuple[int, int, int]] = []
    per_rank = []
    for rank in range(world_size):
        ds = StreamingDataset(tab_root, rank=rank, world_size=world_size, episode_pool_size=2, seed=7)
        loader = DataLoader(ds, batch_size=4, num_workers=num_workers, collate_fn=streaming_collate,
                            multiprocessing_context="fork" if num_workers else None)
        keys = [k for batch in loader for k in batch_keys(batch)]
        assert len(keys) == len(ds)
        per_rank.append(len(keys))
        seen += keys
    expected = [(0, e, f) for e, n in enumerate(TAB_LENGTHS) for f in range(n)]
    assert sorted(seen) == expected
    assert max(per_rank) - min(per_rank) <= max(TAB_LENGTHS)


def test_idle_consumers_yield_nothing_and_say_so(caplog) -> None:
    # The LeRobot fixture has 3 episodes; 2 ranks x 2 workers = 4 consumers: one is idle.
    seen = []
    with caplog.at_level(logging.WARNING, logger="lerobot_assets.loading.streaming.dataset"):
        for rank in range(2):
            ds = StreamingDataset(FIXTURE, rank=rank, world_size=2, return_uint8=True)
            for consumer in range(2):
                part = ds.assignment(2)[consumer]
                seen += [(e.position, f) for e in part for f in range(e.length)]
    assert sorted(seen) == [(p, f) for p, n in enumerate([20, 25, 15]) for f in range(n)]
    ds = StreamingDataset(FIXTURE, rank=1, world_size=2, return_uint8=True)
    loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=streaming_collate, multiprocessing_context="fork")
    keys = [k for b in loader for k in batch_keys(b)]
    assert len(keys) == len(ds) and len(set(keys)) == len(keys)
    quiet = StreamingDataset(FIXTURE, rank=0, world_size=4)
    with caplog.at_level(logging.WARNING, logger="lerobot_assets.loading.streaming.dataset"):
        assert list(StreamingDataset(FIXTURE, rank=3, world_size=4)) == []
    assert "no episodes to read" in caplog.text and "yields nothing" in caplog.text
    assert len(quiet) > 0


def test_rank_and_world_size_from_environment(tab_root, monkeypatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    ds = StreamingDataset(tab_root)
    assert (ds.rank, ds.world_size) == (1, 2)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ValueError, match="rank 2 is outside world_size 2"):
        StreamingDataset(tab_root)


DIST_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch.distributed as dist
    from torch.utils.data import DataLoader
    from lerobot_assets.loading.streaming import StreamingDataset, streaming_collate
    dist.init_process_group("gloo")
    ds = StreamingDataset(sys.argv[1], episode_pool_size=3, seed=11)  # rank/world from torch.distributed
    loader = DataLoader(ds, batch_size=5, num_workers=1, collate_fn=streaming_collate)
    keys = [[e, f] for b in loader for e, f in zip(b["episode_index"].tolist(), b["frame_index"].tolist())]
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, {"rank": ds.rank, "world": ds.world_size, "keys": keys})
    if dist.get_rank() == 0:
        print(json.dumps(everyone))
    dist.destroy_process_group()
""")


@pytest.mark.slow  # two fresh interpreters importing torch: ~15 s on 2 cores
def test_ranks_as_separate_processes_with_gloo(tab_root, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        procs.append(subprocess.Popen([sys.executable, "-c", DIST_SCRIPT, str(tab_root)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    results = json.loads(outs[0][0].strip().splitlines()[-1])
    assert [r["rank"] for r in results] == [0, 1] and {r["world"] for r in results} == {2}
    seen = sorted(tuple(k) for r in results for k in r["keys"])
    assert seen == [(e, f) for e, n in enumerate(TAB_LENGTHS) for f in range(n)]
    assert all(r["keys"] for r in results)


# ------------------------------------------------------------------------------ resume
def run_loader(loader: StreamingDataLoader, stop: int | None = None) -> list[list[tuple[int, int, int]]]:
    out = []
    for b, batch in enumerate(loader):
        assert "_stream" not in batch
        out.append(batch_keys(batch))
        if stop is not None and b + 1 == stop:
            break
    return out


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_at_several_batch_boundaries_equals_uninterrupted(tab_root, num_workers) -> None:
    def make() -> StreamingDataLoader:
        ds = StreamingDataset(tab_root, episode_pool_size=3, seed=4, rank=1, world_size=2)
        ds.set_epoch(2)
        return StreamingDataLoader(ds, batch_size=3, num_workers=num_workers, multiprocessing_context="fork"
                                   if num_workers else None)

    full = run_loader(make())
    assert len(full) == len(make())
    stops = (1, 2, 5, len(full) - 2, len(full)) if num_workers == 0 else (1, 4, len(full) - 1)
    for stop in stops:
        first = make()
        head = run_loader(first, stop)
        state = first.state_dict()
        assert state["epoch"] == 2 and state["world_size"] == 2
        second = make()
        second.load_state_dict(state)
        tail = run_loader(second)
        assert head + tail == full, stop
    # After a full pass the state is the next epoch's start.
    loader = make()
    run_loader(loader)
    assert loader.state_dict()["epoch"] == 3 and not any(loader.state_dict()["positions"])


def test_epochs_reach_persistent_workers_and_spawned_workers(tab_root) -> None:
    """set_epoch (done by the loader after each pass) reaches persistent workers through shared
    memory; spawned workers (pickled dataset) yield the same stream as forked ones."""
    def make(**kw) -> StreamingDataLoader:
        return StreamingDataLoader(StreamingDataset(tab_root, episode_pool_size=3, seed=6), batch_size=4, **kw)

    forked = make(num_workers=2, multiprocessing_context="fork")
    epoch0, epoch1 = run_loader(forked), run_loader(forked)
    persistent = make(num_workers=2, multiprocessing_context="fork", persistent_workers=True)
    assert run_loader(persistent) == epoch0 and run_loader(persistent) == epoch1 and epoch0 != epoch1
    spawned = make(num_workers=1, multiprocessing_context="spawn")
    assert run_loader(spawned) == run_loader(make(num_workers=0))


def test_resume_with_workers_decoding_video(video_root) -> None:
    def make() -> StreamingDataLoader:
        ds = StreamingDataset(video_root, episode_pool_size=2, seed=9, return_uint8=True)
        return StreamingDataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context="fork")

    full = [b for b in make()]
    first = make()
    for b, batch in enumerate(first):
        assert_items_equal(batch, full[b], b)
        if b == 6:
            break
    second = make()
    second.load_state_dict(first.state_dict())
    rest = list(second)
    assert len(rest) == len(full) - 7
    for b, batch in enumerate(rest):
        assert_items_equal(batch, full[7 + b], 7 + b)


def test_in_process_state_dict_and_different_world_size_is_refused(tab_root) -> None:
    ds = StreamingDataset(tab_root, episode_pool_size=4, seed=1)
    full = [key_of(x) for x in ds]
    it = iter(ds)
    head = [key_of(next(it)) for _ in range(17)]
    state = ds.state_dict()
    again = StreamingDataset(tab_root, episode_pool_size=4, seed=1)
    again.load_state_dict(state)
    assert head + [key_of(x) for x in again] == full
    # The resume applied once: the next pass is the whole epoch again.
    assert [key_of(x) for x in again] == full
    other = StreamingDataset(tab_root, episode_pool_size=4, seed=1, rank=0, world_size=2)
    with pytest.raises(ValueError, match="world_size=1 but this dataset has world_size=2"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="seed=1 but this dataset has seed=2"):
        StreamingDataset(tab_root, episode_pool_size=4, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="selected episodes"):
        StreamingDataset(tab_root, episodes=[0, 1], episode_pool_size=4, seed=1).load_state_dict(state)
    loader = StreamingDataLoader(StreamingDataset(tab_root, episode_pool_size=4, seed=1), batch_size=2, num_workers=2)
    with pytest.raises(ValueError, match="1 consumer.*this run has 2"):
        loader.load_state_dict(state)


# ------------------------------------------------------------------------------ several roots
def test_weighted_mixing_follows_weights(tmp_path) -> None:
    small = write_tabular(tmp_path / "small", [6, 4, 8], seed=1)
    big = write_tabular(tmp_path / "big", TAB_LENGTHS, seed=2)
    ds = StreamingDataset([small, big], weights=[1, 3], samples_per_epoch=4000, episode_pool_size=4, seed=0)
    items = list(ds)
    assert len(items) == len(ds) == 4000
    share = sum(int(x["dataset_index"]) == 0 for x in items) / len(items)
    # Binomial std at n=4000, p=0.25 is 0.0068; tolerance 0.03 (> 4 std).
    assert abs(share - 0.25) < 0.03, share
    # Each root cycles through its frames exactly once per cycle: the small root's first 18
    # samples are its 18 frames.
    small_keys = [key_of(x) for x in items if int(x["dataset_index"]) == 0]
    assert sorted(small_keys[:18]) == [(0, e, f) for e, n in enumerate([6, 4, 8]) for f in range(n)]
    mapped = LeRobotV3Dataset(big)
    for x in items[:50]:
        if int(x["dataset_index"]) == 1:
            ref = mapped[int(x["index"])]
            assert torch.equal(ref["observation.state"], x["observation.state"]) and ref["task"] == x["task"]
    # Without weights: the union once, each sample with its dataset_index.
    union = [key_of(x) for x in StreamingDataset([small, big], episode_pool_size=4)]
    assert sorted(union) == sorted([(0, e, f) for e, n in enumerate([6, 4, 8]) for f in range(n)]
                                   + [(1, e, f) for e, n in enumerate(TAB_LENGTHS) for f in range(n)])
    # Weighted mode resumes exactly too.
    loader = StreamingDataLoader(StreamingDataset([small, big], weights=[1, 3], samples_per_epoch=60), batch_size=4)
    full = run_loader(loader)
    first = StreamingDataLoader(StreamingDataset([small, big], weights=[1, 3], samples_per_epoch=60), batch_size=4)
    head = run_loader(first, 5)
    second = StreamingDataLoader(StreamingDataset([small, big], weights=[1, 3], samples_per_epoch=60), batch_size=4)
    second.load_state_dict(first.state_dict())
    assert head + run_loader(second) == full


def test_incompatible_roots_and_rename(tmp_path) -> None:
    a = write_tabular(tmp_path / "a", [3, 4], state_dim=2)
    b = write_tabular(tmp_path / "b", [3, 4], state_dim=3)
    with pytest.raises(ValueError, match=r"incompatible roots: feature 'observation.state' is float32 \[2\] in .*a "
                                         r"but float32 \[3\] in .*b"):
        StreamingDataset([a, b])
    renamed = tmp_path / "renamed"
    shutil.copytree(a, renamed)
    for path in [renamed / "meta/info.json", *(renamed / "data").rglob("*.parquet")]:
        if path.suffix == ".json":
            path.write_text(path.read_text().replace('"observation.state"', '"obs.state"'))
        else:
            table = pq.read_table(path)
            table = table.rename_columns(["obs.state" if c == "observation.state" else c for c in table.column_names])
            pq.write_table(table, path)
    with pytest.raises(ValueError, match=r"features only in .*a: \['observation.state'\]; only in .*renamed: "
                                         r"\['obs.state'\]"):
        StreamingDataset([a, renamed])
    ds = StreamingDataset([a, renamed], rename=[None, {"obs.state": "observation.state"}], shuffle=False,
                          delta_timestamps={"observation.state": [-1 / FPS, 0.0]})
    items = list(ds)
    assert len(items) == 14 and all("observation.state_is_pad" in x and "obs.state" not in x for x in items)
    assert torch.equal(items[0]["observation.state"], items[7]["observation.state"])  # same data
    with pytest.raises(ValueError, match=r"rename\[1\] names \['nope'\]"):
        StreamingDataset([a, renamed], rename=[None, {"nope": "x"}])


# ------------------------------------------------------------------------------ bad input
def test_bad_input_is_named(tab_root, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"episodes \[99\] are not in the dataset"):
        StreamingDataset(tab_root, episodes=[1, 99])
    with pytest.raises(ValueError, match="delta_timestamps key 'nope' is not a feature"):
        StreamingDataset(tab_root, delta_timestamps={"nope": [0.0]})
    with pytest.raises(ValueError, match="weights has 1 entries for 2 roots"):
        StreamingDataset([tab_root, tab_root], weights=[1])
    with pytest.raises(ValueError, match="episode_pool_size must be >= 1"):
        StreamingDataset(tab_root, episode_pool_size=0)
    broken = tmp_path / "broken"
    shutil.copytree(tab_root, broken)
    shard = sorted((broken / "data").rglob("*.parquet"))[1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(DatasetLayoutError, match=rf"{shard.relative_to(broken)}: cannot read data file"):
        list(StreamingDataset(broken, shuffle=False))


def test_several_episodes_per_row_group_still_work_with_a_warning(tab_root, tmp_path, caplog) -> None:
    collapsed = tmp_path / "collapsed"
    shutil.copytree(tab_root, collapsed)
    for path in (collapsed / "data").rglob("*.parquet"):
        pq.write_table(pq.read_table(path), path, row_group_size=1 << 20)  # one row group per file
    with caplog.at_level(logging.WARNING, logger="lerobot_assets.loading.streaming.rows"):
        items = list(StreamingDataset(collapsed, episode_pool_size=3, seed=2))
    reference = {key_of(x): x for x in StreamingDataset(tab_root, shuffle=False)}
    assert len(items) == len(reference)
    for x in items:
        assert_items_equal(x, reference[key_of(x)], key_of(x))
    assert "row groups hold several episodes" in caplog.text


def test_ranged_row_group_reads_equal_local_reads(tmp_path) -> None:
    """The remote path of the row reader (footer probe, then one range per episode) over a file
    far larger than the probe: every episode equals the local read; no byte is read twice."""
    lengths = [100 + 7 * i for i in range(30)]
    root = write_tabular(tmp_path / "big", lengths, state_dim=32, file_mb=100)
    [path] = (root / "data").rglob("*.parquet")
    rel = path.relative_to(root).as_posix()
    assert path.stat().st_size > 4 * FOOTER_PROBE
    reads: list[tuple[int, int]] = []

    def read(name: str, start: int, end: int) -> bytes:
        reads.append((start, end))
        with open(root / name, "rb") as f:
            f.seek(start)
            return f.read(end - start)

    columns = ["observation.state", "timestamp", "task_index"]
    remote = EpisodeRowsReader(root, columns, remote_size=lambda name: (root / name).stat().st_size, remote_read=read)
    local = EpisodeRowsReader(root, columns)
    for e in np.random.default_rng(0).permutation(len(lengths)).tolist():
        assert remote.read(rel, e, lengths[e]).equals(local.read(rel, e, lengths[e])), e
    assert len(reads) <= len(lengths) + 2 and sum(b - a for a, b in reads) <= path.stat().st_size
    assert remote.bytes_read == sum(b - a for a, b in reads)
    with pytest.raises(DatasetLayoutError, match=rf"{rel}: episode 3 has {lengths[3]} rows but meta/episodes says"):
        local.read(rel, 3, 5)


# ------------------------------------------------------------------------------ collate, retry
def test_collate_keeps_strings_and_variable_length_values() -> None:
    items = [
        {"a": torch.tensor([1.0, 2.0]), "n": torch.tensor(3), "task": "x", "lang": ["p", "q"],
         "tokens": torch.arange(2)},
        {"a": torch.tensor([3.0, 4.0]), "n": torch.tensor(4), "task": "y", "lang": [], "tokens": torch.arange(5)},
    ]
    batch = streaming_collate(items)
    assert torch.equal(batch["a"], torch.tensor([[1.0, 2.0], [3.0, 4.0]])) and batch["n"].tolist() == [3, 4]
    assert batch["task"] == ["x", "y"] and batch["lang"] == [["p", "q"], []]
    assert [t.tolist() for t in batch["tokens"]] == [[0, 1], [0, 1, 2, 3, 4]]
    mixed = streaming_collate([{"a": 1}, {"a": 2, "b": "z"}])
    assert mixed["a"].tolist() == [1, 2] and mixed["b"] == [None, "z"]


def test_retry_with_backoff_then_error_naming_the_file() -> None:
    calls, sleeps = [], []

    def flaky() -> bytes:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset by peer")
        return b"ok"

    policy = RetryPolicy(attempts=4, backoff_s=0.1)
    assert with_retry(flaky, "s3://b/x", policy, sleep=sleeps.append) == b"ok"
    assert len(calls) == 3 and len(sleeps) == 2 and 0.1 <= sleeps[0] <= 0.15 and 0.2 <= sleeps[1] <= 0.3

    def down() -> bytes:
        raise TimeoutError("timed out")

    with pytest.raises(OSError, match=r"s3://b/x: read failed after 4 attempts: TimeoutError: timed out"):
        with_retry(down, "s3://b/x", policy, sleep=sleeps.append)

    def missing() -> bytes:
        calls.append(1)
        raise FileNotFoundError("s3://b/y")

    calls.clear()
    with pytest.raises(FileNotFoundError):
        with_retry(missing, "s3://b/y", policy, sleep=sleeps.append)
    assert len(calls) == 1  # never retried


def test_counts_are_frames_per_episode(tab_root) -> None:
    counts = collections.Counter(key_of(x)[1] for x in StreamingDataset(tab_root))
    assert [counts[e] for e in range(len(TAB_LENGTHS))] == TAB_LENGTHS
