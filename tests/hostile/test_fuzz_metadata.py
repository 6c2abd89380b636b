"""Fuzzing the metadata a dataset command reads (issue "Hostile and careless input"): random
`meta/info.json` contents and random episodes parquet contents, each run through `validate`,
`info`, `byte-index` and `sql` over the episodes and frames (the typer commands, in-process).

Whatever the input: no exception escapes a command (the entry point would turn it into a bare
`error:` line, but an unexpected one is a crash we did not name), a failure is one `error:` line
naming the dataset's file (or, for `validate`, problem lines), no command hangs (each run has an
alarm), and nothing is written into the dataset (byte-index writes `meta/byte_index/` only when
it succeeds).
"""

import json
import math
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import FIXTURE
from hostile_support import tree_digest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lerobot_assets.cli import app

EPISODES = "meta/episodes/chunk-000/file-000.parquet"
COMMANDS = ("validate", "info", "byte-index", "sql")
# The sql command reads every source of the root (--no-catalog: nothing is written anywhere).
SQL_QUERY = "SELECT (SELECT count(*) FROM episodes) AS episodes, (SELECT count(*) FROM frames) AS frames"
PER_COMMAND_TIMEOUT_S = 20  # a run takes well under a second; this only catches hangs
FUZZ = settings(
    # ~20 s for the three tests; FUZZ_METADATA_EXAMPLES=500 for a longer hunt.
    max_examples=int(os.environ.get("FUZZ_METADATA_EXAMPLES", "30")),
    deadline=None,  # the alarm below bounds each command; hypothesis' deadline would only report after the fact
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
INFO = json.loads((FIXTURE / "meta/info.json").read_text()) if FIXTURE.is_dir() else {}
EPISODES_TABLE = pq.read_table(FIXTURE / EPISODES) if FIXTURE.is_dir() else pa.table({})

pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason="LeRobot-written fixture not available")


class Hang(Exception):
    pass


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    """Raise Hang in this (main) thread after `seconds`: a blocked open() or a busy loop fails the
    example instead of stalling the suite."""
    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"command ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_commands(root: Path) -> None:
    """Every command on `root`: only clean outcomes, no write into the dataset."""
    runner = CliRunner()
    for command in COMMANDS:
        before = tree_digest(root)
        with alarm(PER_COMMAND_TIMEOUT_S):
            args = ["sql", SQL_QUERY, "--root", str(root), "--no-catalog"] if command == "sql" else [command, str(root)]
            result = runner.invoke(app, args)
        shown = f"{command}: exit {result.exit_code}\n{result.output[-3000:]}"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{shown}\nunexpected {type(result.exception).__name__}") from result.exception
        assert result.exit_code in (0, 1, 2), shown
        if result.exit_code != 0:
            if command == "validate" and result.exit_code == 1:
                lines = [line for line in result.output.splitlines() if line]
                assert any(line.startswith("ERROR ") for line in lines), shown
                # One line per problem: a message that spans lines would start a line with anything.
                assert all(line.startswith(("ERROR ", "WARNING ", "INVALID ")) for line in lines), shown
            else:
                errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
                assert len(errors) == 1 and str(root) in errors[0], shown
        after = tree_digest(root)
        if command == "byte-index" and result.exit_code == 0:
            after = {k: v for k, v in after.items() if not k.startswith("meta/byte_index")}
        assert after == before, f"{shown}\n{command} changed the dataset"


@contextmanager
def dataset() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz-meta-") as tmp:
        root = Path(tmp) / "ds"
        shutil.copytree(FIXTURE, root)
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        yield root


# --------------------------------------------------------------------------- info.json
JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
HOSTILE_STRINGS = st.sampled_from([
    "", ".", "..", "../x", "/abs", "a/b", "a\\b", "a\x00b", "{chunk_index}", "{video_key}",
    "data/{chunk_index}/{file_index}.parquet", "videos/{video_key}/{chunk_index:c}/{file_index}.mp4",
    "videos/{video_key}/{chunk_index}/{file_index}.mp4", "{0}", "{", "}", "*", "v3.0", "v2.1",
])
INFO_KEYS = [*INFO.keys(), "not_a_key"]
FEATURE_FIELDS = ["dtype", "shape", "names", "info"]


def _set_top(info: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    info[key] = value
    return info


def _set_feature(info: dict[str, Any], index: int, field: str, value: Any) -> dict[str, Any]:
    features = info.get("features")
    if not isinstance(features, dict) or not features:
        return info  # an earlier edit replaced the features: nothing to edit in
    key = list(features)[index % len(features)]
    if isinstance(features[key], dict):
        features[key][field] = value
    return info


def _rename_feature(info: dict[str, Any], index: int, new: str) -> dict[str, Any]:
    if not isinstance(info.get("features"), dict) or not info["features"]:
        return info
    keys = list(info["features"])
    old = keys[index % len(keys)]
    info["features"] = {(new if k == old else k): v for k, v in info["features"].items()}
    return info


def _drop(info: dict[str, Any], key: str) -> dict[str, Any]:
    info.pop(key, None)
    return info


info_edits: st.SearchStrategy[Callable[[dict[str, Any]], Any]] = st.one_of(
    st.builds(lambda k, v: lambda i: _set_top(i, k, v), st.sampled_from(INFO_KEYS), JSON_VALUES | HOSTILE_STRINGS),
    st.builds(lambda n, f, v: lambda i: _set_feature(i, n, f, v), st.integers(0, 20), st.sampled_from(FEATURE_FIELDS),
              JSON_VALUES | HOSTILE_STRINGS | st.sampled_from(["video", "image", "float32", "string"])),
    st.builds(lambda n, new: lambda i: _rename_feature(i, n, new), st.integers(0, 20), HOSTILE_STRINGS | st.text(max_size=10)),
    st.builds(lambda k: lambda i: _drop(i, k), st.sampled_from(INFO_KEYS)),
    st.builds(lambda v: lambda i: v, JSON_VALUES),  # the whole document replaced
)


@FUZZ
@given(edits=st.lists(info_edits, min_size=1, max_size=4))
def test_fuzz_info_json_contents(edits: list[Callable[[dict[str, Any]], Any]]) -> None:
    doc: Any = json.loads(json.dumps(INFO))
    for edit in edits:
        doc = edit(doc) if isinstance(doc, dict) else doc
    with dataset() as root:
        (root / "meta/info.json").write_text(json.dumps(doc))
        run_commands(root)


@FUZZ
@given(cut=st.integers(0, 4000), garbage=st.binary(max_size=64))
def test_fuzz_info_json_bytes(cut: int, garbage: bytes) -> None:
    text = (FIXTURE / "meta/info.json").read_bytes()
    with dataset() as root:
        (root / "meta/info.json").write_bytes(text[:cut] + garbage)
        run_commands(root)


# --------------------------------------------------------------------------- episodes parquet
def _array(kind: str, n: int, seed: int) -> pa.Array:
    values: dict[str, list[Any]] = {
        "null": [None] * n,
        "negative": [-(seed % 5) - 1] * n,
        "huge": [2**62 + seed] * n,
        "nan": [math.nan] * n,
        "inf": [math.inf] * n,
        "float": [seed / 7 + 0.5] * n,
        "text": [f"x{seed}"] * n,
        "list": [[seed, None]] * n,
        "empty-list": [[]] * n,
        "zero": [0] * n,
    }
    return pa.array(values[kind])


COLUMN_KINDS = ["null", "negative", "huge", "nan", "inf", "float", "text", "list", "empty-list", "zero"]
HOSTILE_COLUMNS = ["videos/../../x/from_timestamp", "videos//abs/chunk_index", "videos/a\\b/to_timestamp", "episode_index",
                   "videos/../x/chunk_index"]


# The columns the commands read (most of the shard is stats/... columns, which they do not):
# edits pick one of these by name.
KEY_COLUMNS = [c for c in EPISODES_TABLE.column_names if not c.startswith("stats/")]


def _replace(table: pa.Table, name: str, kind: str, seed: int) -> pa.Table:
    if name not in table.column_names:
        return table
    i = table.column_names.index(name)
    return table.set_column(i, name, _array(kind, table.num_rows, seed))


def _rename(table: pa.Table, old: str, new: str) -> pa.Table:
    return table.rename_columns([new if c == old else c for c in table.column_names])


def _drop_column(table: pa.Table, name: str) -> pa.Table:
    # By position: a rename may have left two columns of that name, which drop_columns refuses.
    return table.select([i for i, c in enumerate(table.column_names) if c != name])


def _set_cell(table: pa.Table, name: str, row: int, kind: str, seed: int) -> pa.Table:
    """One row's value of a column changed (the rest stays valid)."""
    if name not in table.column_names or not table.num_rows:
        return table
    i = table.column_names.index(name)
    values = table.column(i).to_pylist()
    values[row % len(values)] = _array(kind, 1, seed).to_pylist()[0]
    try:
        column = pa.array(values, type=table.schema.field(i).type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        column = pa.array([str(v) for v in values])  # mixed types: the column becomes strings
    return table.set_column(i, name, column)


COLUMNS = st.sampled_from(KEY_COLUMNS)
episodes_edits: st.SearchStrategy[Callable[[pa.Table], pa.Table]] = st.one_of(
    st.builds(lambda c, k, s: lambda t: _replace(t, c, k, s), COLUMNS, st.sampled_from(COLUMN_KINDS), st.integers(0, 99)),
    st.builds(lambda c, r, k, s: lambda t: _set_cell(t, c, r, k, s), COLUMNS, st.integers(0, 5), st.sampled_from(COLUMN_KINDS),
              st.integers(0, 99)),
    st.builds(lambda c, new: lambda t: _rename(t, c, new), COLUMNS, st.sampled_from(HOSTILE_COLUMNS) | st.text(max_size=10)),
    st.builds(lambda c: lambda t: _drop_column(t, c), COLUMNS),
    st.builds(lambda k: lambda t: t.slice(0, k), st.integers(0, 3)),
    st.builds(lambda: lambda t: pa.concat_tables([t, t])),
)


@FUZZ
@given(edits=st.lists(episodes_edits, min_size=1, max_size=3), cut=st.none() | st.integers(0, 20000))
def test_fuzz_episodes_parquet_contents(edits: list[Callable[[pa.Table], pa.Table]], cut: int | None) -> None:
    table = EPISODES_TABLE
    for edit in edits:
        table = edit(table)
    with dataset() as root:
        path = root / EPISODES
        pq.write_table(table, path)
        if cut is not None:
            path.write_bytes(path.read_bytes()[:cut])
        run_commands(root)
