"""SQL over annotations: the `annotations` source (one row per language row, the say tool's name),
the `annotation_summary` model against counts computed in Python, and the data test that every
episode of an annotated dataset has a subtask."""

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lerobot_assets.annotate import SimBackend, annotate_dataset
from lerobot_assets.annotate.episodes import iter_episodes
from lerobot_assets.annotate.modules import spans_from_rows
from lerobot_assets.annotate.schema import to_arrow
from lerobot_assets.sources.pusht.config import PushTSourceConfig
from lerobot_assets.sources.pusht.record import record_pusht
from lerobot_assets.sql import Catalog

NAME = "datasets/annotated_dataset"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("home")
    src = base / "src"
    record_pusht(src, PushTSourceConfig(seed=2, episodes=2, max_steps=50, top_camera=False))
    home = base / "home"
    (home / "datasets").mkdir(parents=True)
    shutil.copytree(src, home / "datasets/lerobot_dataset")  # a dataset without annotations joins in too
    annotate_dataset(src, home / "datasets/annotated_dataset", SimBackend(), staging_dir=base / "staging")
    return home


def test_source_and_summary_match_the_rows(home: Path) -> None:
    catalog = Catalog(home)
    catalog.materialize("annotation_summary", with_upstream=True, force=True)
    summary = {r["style"]: r for r in catalog.read_model("annotation_summary").to_pylist() if r["dataset"] == NAME}
    assert not [r for r in catalog.read_model("annotation_summary").to_pylist() if r["dataset"] != NAME]
    eps = list(iter_episodes(home / "datasets/annotated_dataset"))
    counts = Counter((r["style"] or "speech") for ep in eps for r in ep.persistent + ep.events)
    assert {s: r["rows"] for s, r in summary.items()} == dict(counts)
    assert summary["speech"]["column"] == "language_events" and summary["subtask"]["column"] == "language_persistent"
    assert all(r["episodes"] == 2 for r in summary.values())
    spans = [spans_from_rows(ep.persistent) for ep in eps]
    seconds = [min(s.end, ep.times[-1]) - s.start for ep, sp in zip(eps, spans) for s in sp]
    assert summary["subtask"]["mean_subtasks_per_episode"] == pytest.approx(len(seconds) / 2)
    assert summary["subtask"]["mean_subtask_seconds"] == pytest.approx(float(np.mean(seconds)), abs=1e-6)
    assert catalog.run_data_test("assert_annotated_episodes_have_subtasks").passed


def test_data_test_fails_on_an_episode_without_subtasks(home: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    broken = tmp_path / "home"
    shutil.copytree(home, broken)
    path = next((broken / "datasets/annotated_dataset").glob("data/*/*.parquet"))
    table = pq.read_table(path)
    eps = table.column("episode_index").to_pylist()
    pers = table.column("language_persistent").to_pylist()
    pers = [[r for r in p if r["style"] != "subtask"] if e == 1 else p for p, e in zip(pers, eps)]
    i = table.schema.get_field_index("language_persistent")
    pq.write_table(table.set_column(i, table.schema.field(i), to_arrow("language_persistent", pers)), path)
    catalog = Catalog(broken)
    catalog.materialize("annotation_summary", with_upstream=True, force=True)
    result = catalog.run_data_test("assert_annotated_episodes_have_subtasks")
    assert not result.passed and result.failing_rows == 1
