"""Curation as declared assets: curated_episodes (SQL) -> curated_dataset -> dataset_splits, with
their blocking checks, on a real Dagster instance over PushT sessions."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from test_defs_support import checks, materialize_dataset, materialize_session, materialized, metadata, resources

from lerobot_assets.checks.splits import episode_digests, split_problems
from lerobot_assets.home import HomeLayout
from lerobot_assets.tools.split import split_dataset


def curation_defs() -> list:
    from lerobot_assets.defs.curation.assets import curation_assets
    from lerobot_assets.defs.curation.checks import curation_checks
    from lerobot_assets.defs.datasets.assets import byte_index
    from lerobot_assets.defs.sql.assets import build_sql_defs

    sql_assets, sql_checks = build_sql_defs()
    return [byte_index, *sql_assets, *sql_checks, *curation_assets, *curation_checks]


def durations(root: Path) -> list[float]:
    info = json.loads((root / "meta/info.json").read_text())
    rows = pq.read_table(next((root / "meta/episodes").rglob("*.parquet"))).to_pylist()
    return [r["length"] / info["fps"] for r in sorted(rows, key=lambda r: r["episode_index"])]


def test_curated_dataset_and_splits(instance: dg.DagsterInstance, home: Path) -> None:
    # Long enough for the expert to finish: episodes of different lengths (78 to 123 frames).
    assert materialize_session(instance, home, "sim-s0000-0004", max_steps=300).success
    assert materialize_dataset(instance, home).success
    layout = HomeLayout(home)
    merged = layout.dataset("lerobot_dataset")
    secs = durations(merged)
    assert len(secs) == 5 and len(set(secs)) > 1, secs
    limit = sorted(secs)[-2]  # rejects the longest episode(s)
    keep = [i for i, s in enumerate(secs) if s <= limit]

    result = dg.materialize(
        curation_defs(), instance=instance, resources=resources(home, sql_vars={"curation_max_seconds": limit}), raise_on_error=False
    )
    assert result.success
    assert {"curated_episodes", "curated_dataset", "dataset_splits"} <= materialized(result)
    got = checks(result)
    for name in ("curated_dataset_valid", "curated_dataset_matches_rules", "dataset_splits_partition", "dataset_splits_valid"):
        assert got[name] is True, name
    meta = metadata(result, "curated_dataset")
    assert (meta["kept_episodes"], meta["rejected_episodes"], meta["mode"]) == (len(keep), 5 - len(keep), "rebuild")

    curated = layout.dataset("curated_dataset")
    merged_digests, curated_digests = episode_digests(merged), episode_digests(curated)
    # The curated dataset is exactly the kept merged episodes, in order, renumbered 0..n-1.
    assert [curated_digests[i] for i in range(len(keep))] == [merged_digests[e] for e in keep]
    assert (curated / "meta/byte_index").is_dir()

    # 80/20 by largest remainder over the kept episodes: every episode in exactly one split.
    n = len(keep)
    train_n = int(n * 0.8) + (1 if (n * 0.8) % 1 > (n * 0.2) % 1 else 0)
    splits = metadata(result, "dataset_splits")["episodes"]
    assert splits == {"train": train_n, "val": n - train_n}
    assert sum(splits.values()) == n
    for name in ("train", "val"):
        assert (layout.dataset("splits") / name / "meta/byte_index").is_dir()

    # Tightening the rule rejects one more episode: the new version is cut from the current curated dataset.
    tighter = sorted(secs[e] for e in keep)[-2]
    keep2 = [i for i, s in enumerate(secs) if s <= tighter]
    assert len(keep2) < len(keep)
    again = dg.materialize(
        curation_defs(), instance=instance, resources=resources(home, sql_vars={"curation_max_seconds": tighter}), raise_on_error=False
    )
    assert again.success
    meta2 = metadata(again, "curated_dataset")
    assert (meta2["mode"], meta2["kept_episodes"]) == ("incremental", len(keep2))
    assert checks(again)["curated_dataset_matches_rules"] is True
    now = episode_digests(curated)
    assert [now[i] for i in range(len(keep2))] == [merged_digests[e] for e in keep2]

    # Every produced dataset is queryable by its own name.
    from lerobot_assets.sql import QuerySession

    session = QuerySession.open(home)
    try:
        _, rows = session.rows("select dataset, count(*) from episodes group by dataset order by dataset")
    finally:
        session.close()
    counts = dict(rows)
    assert counts["datasets/curated_dataset"] == len(keep2)
    assert counts["datasets/splits/train"] + counts["datasets/splits/val"] == len(keep2)


@pytest.mark.parametrize("damage", ["duplicate", "missing"])
def test_split_check_names_the_episode(tmp_path: Path, damage: str) -> None:
    from helpers import record

    src = tmp_path / "src"
    record(src, [5, 6, 7, 8])
    split_dataset(src, {"train": 0.5, "val": 0.5}, tmp_path / "splits")
    roots = {"train": tmp_path / "splits/train", "val": tmp_path / "splits/val"}
    assert split_problems(src, roots).ok
    if damage == "duplicate":
        shutil.rmtree(roots["val"])
        shutil.copytree(roots["train"], roots["val"])
        report = split_problems(src, roots)
        assert not report.ok
        assert any("in more than one split" in p for p in report.problems)
        assert any(p == "source episode 2 is in no split" for p in report.problems), report.problems
    else:
        del roots["val"]
        report = split_problems(src, roots)
        assert report.problems == ["source episode 2 is in no split", "source episode 3 is in no split"]
