"""SQL over dataset metadata (DuckDB) vs loading the same metadata with pandas, in one run.

Corpus (pyarrow, in the v3.0 schema; tests/sql_fixtures.py): 20 datasets, 100 shards in all (5 episode
files, 5 data files and 5 MP4 placeholders per camera per dataset, whatever the size), 20-40 frames
per episode, two cameras, a few injected quality problems. Sizes: 1,000 / 10,000 / 100,000 episodes.

Queries:
  tasks        episodes per task per dataset (`task_summary` model: unnest tasks, join tasks + info)
  durations    duration percentiles (p50/p90/p99) per dataset, from episodes + info
  quality      the quality flags: per dataset, how many episodes carry each flag (`episode_quality`)

Each is timed four ways, every DuckDB way through the read-only session the CLI uses:
  live         no catalog (`--no-catalog`): every model computed from the files at every query
  catalog      the catalog current (`Catalog.materialize_all()`, what the Dagster assets keep up to
               date): the session copies the tables whose recorded inputs equal the files now
  one_changed  one data shard of one dataset rewritten since the catalog was built (1 of 100 files):
               the per-file frame checks of 99 files come from the catalog, that one is computed,
               and the models reading them are recomputed
  pandas       the baseline: `pd.read_parquet` of every episodes shard + tasks.parquet + info.json
               ("load"); the quality flags also need every data shard ("load + frames"). The pandas
               answers of tasks/durations (and three of the flags) are checked against DuckDB's.
Every way must give the live answers (asserted). Also timed: opening each session, the full catalog
build, and the incremental build after the one changed shard.

Times are the median of --repeat warm runs (first, cold run reported too). The last line printed is
a JSON object with every figure.

    .venv/bin/python benchmarks/bench_sql.py [--sizes 1000,10000,100000] [--repeat 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

CORPUS_VERSION = 1
N_DATASETS = 20
SHARDS_PER_DATASET = 5  # 100 shards over 20 datasets
FPS = 30

QUERIES = {
    "tasks": "select dataset, task, episodes from task_summary order by dataset, task",
    "durations": """
        select e.dataset,
               quantile_cont(e.length / i.fps, 0.5) as p50,
               quantile_cont(e.length / i.fps, 0.9) as p90,
               quantile_cont(e.length / i.fps, 0.99) as p99
        from episodes as e join info as i using (dataset)
        group by e.dataset order by e.dataset""",
    "quality": """
        select dataset,
               count(*) filter (where frame_count_mismatch) as frame_count_mismatch,
               count(*) filter (where video_length_mismatch) as video_length_mismatch,
               count(*) filter (where inconsistent_video_timestamps) as inconsistent_video_timestamps,
               count(*) filter (where timestamp_gap) as timestamp_gap,
               count(*) filter (where non_monotonic_timestamps) as non_monotonic_timestamps,
               count(*) filter (where has_nan_or_inf) as has_nan_or_inf,
               count(*) filter (where idle) as idle,
               count(*) filter (where too_short) as too_short,
               count(*) filter (where n_flags > 0) as flagged
        from episode_quality group by dataset order by dataset""",
}


def make_corpus(root: Path, n_episodes: int) -> dict[str, Any]:
    from sql_fixtures import SyntheticSpec, write_synthetic_dataset

    marker = root / "corpus.json"
    if marker.exists():
        meta = json.loads(marker.read_text())
        if meta.get("version") == CORPUS_VERSION and meta.get("episodes") == n_episodes:
            return meta
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    per_dataset = n_episodes // N_DATASETS
    per_file = math.ceil(per_dataset / SHARDS_PER_DATASET)
    kinds = ["nan_state", "idle", "video_short", "timestamp_gap", "non_monotonic", "missing_frame"]
    start = time.perf_counter()
    for d in range(N_DATASETS):
        # one problem episode in every ~50, of rotating kinds
        anomalies = {e: [kinds[(e // 50 + d) % len(kinds)]] for e in range(7, per_dataset, 50)}
        write_synthetic_dataset(
            root / "datasets" / f"ds-{d:03d}",
            SyntheticSpec(
                n_episodes=per_dataset,
                min_frames=20,
                max_frames=40,
                fps=FPS,
                episodes_per_meta_file=per_file,
                episodes_per_data_file=per_file,
                episodes_per_video_file=per_file,
                seed=d,
                anomalies=anomalies,
                tasks=("pick the cube", "place the cube", "push the block", "open the drawer"),
            ),
        )
    meta = {
        "version": CORPUS_VERSION,
        "episodes": n_episodes,
        "datasets": N_DATASETS,
        "episode_shards": N_DATASETS * SHARDS_PER_DATASET,
        "generate_s": round(time.perf_counter() - start, 2),
    }
    marker.write_text(json.dumps(meta))
    return meta


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(cold seconds, median warm seconds, last result)."""
    t = time.perf_counter()
    result = fn()
    cold = time.perf_counter() - t
    warm = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        warm.append(time.perf_counter() - t)
    return cold, statistics.median(warm), result


# ---- pandas baseline -------------------------------------------------------------------------------


def pandas_load(home: Path) -> dict[str, Any]:
    import pandas as pd

    episodes, tasks, info = [], [], []
    for root in sorted((home / "datasets").iterdir()):
        name = f"datasets/{root.name}"
        frame = pd.concat([pd.read_parquet(p) for p in sorted(root.glob("meta/episodes/chunk-*/file-*.parquet"))])
        frame.insert(0, "dataset", name)
        episodes.append(frame)
        t = pd.read_parquet(root / "meta/tasks.parquet").reset_index()
        t.insert(0, "dataset", name)
        tasks.append(t)
        doc = json.loads((root / "meta/info.json").read_text())
        info.append({"dataset": name, "fps": float(doc["fps"]), "total_episodes": doc["total_episodes"]})
    return {"episodes": pd.concat(episodes, ignore_index=True), "tasks": pd.concat(tasks, ignore_index=True), "info": pd.DataFrame(info)}


def pandas_load_frames(home: Path) -> Any:
    import pandas as pd

    parts = []
    for root in sorted((home / "datasets").iterdir()):
        frame = pd.concat([pd.read_parquet(p) for p in sorted(root.glob("data/chunk-*/file-*.parquet"))])
        frame.insert(0, "dataset", f"datasets/{root.name}")
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def pandas_tasks(m: dict[str, Any]) -> list[tuple]:
    e = m["episodes"][["dataset", "tasks"]].explode("tasks").rename(columns={"tasks": "task"})
    g = e.groupby(["dataset", "task"]).size().reset_index(name="episodes").sort_values(["dataset", "task"])
    return [tuple(r) for r in g.itertuples(index=False)]


def pandas_durations(m: dict[str, Any]) -> list[tuple]:
    e = m["episodes"][["dataset", "length"]].merge(m["info"][["dataset", "fps"]], on="dataset")
    e["s"] = e["length"] / e["fps"]
    q = e.groupby("dataset")["s"].quantile([0.5, 0.9, 0.99]).unstack()
    return [(d, *map(float, row)) for d, row in zip(q.index, q.to_numpy())]


def pandas_quality(m: dict[str, Any], frames: Any) -> dict[str, dict[str, int]]:
    """Three of the flags, in pandas: too_short, frame_count_mismatch, has_nan_or_inf."""
    import numpy as np

    e = m["episodes"][["dataset", "episode_index", "length"]].merge(m["info"][["dataset", "fps"]], on="dataset")
    counts = frames.groupby(["dataset", "episode_index"]).size().rename("n").reset_index()
    state = np.stack(frames["observation.state"].to_numpy())
    action = np.stack(frames["action"].to_numpy())
    bad = ~(np.isfinite(state).all(axis=1) & np.isfinite(action).all(axis=1))
    nonfinite = frames.assign(bad=bad).groupby(["dataset", "episode_index"])["bad"].any().reset_index()
    e = e.merge(counts, on=["dataset", "episode_index"], how="left").merge(nonfinite, on=["dataset", "episode_index"], how="left")
    e["too_short"] = e["length"] < 0.5 * e["fps"]
    e["frame_count_mismatch"] = e["n"].fillna(0) != e["length"]
    e["has_nan_or_inf"] = e["bad"].fillna(False).astype(bool)
    out = e.groupby("dataset")[["too_short", "frame_count_mismatch", "has_nan_or_inf"]].sum()
    return {d: {k: int(v) for k, v in row.items()} for d, row in out.iterrows()}


# ---- DuckDB ------------------------------------------------------------------------------------------


def rewrite_in_place(path: Path) -> None:
    """The same bytes under a new inode and mtime, as a writer's temp-and-rename leaves a changed shard:
    its fingerprint changes, the answers do not (so every mode can still be checked against live)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(path.read_bytes())
    os.replace(tmp, path)


def time_session(home: Path, project: Any, repeat: int, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from lerobot_assets.sql import QuerySession

    gc.collect()
    t = time.perf_counter()
    session = QuerySession.open(home, project=project, **kwargs)
    timings: dict[str, Any] = {"open_s": time.perf_counter() - t, "served": dict(session.served)}
    answers: dict[str, Any] = {}
    for name, sql in QUERIES.items():
        cold, warm, result = timed(lambda sql=sql: session.rows(sql)[1], repeat)
        timings[name] = {"cold_s": cold, "median_s": warm}
        answers[name] = result
    session.close()
    return timings, answers


def bench_size(n: int, workdir: Path, repeat: int) -> dict[str, Any]:
    import duckdb

    from lerobot_assets.sql import Catalog, load_project

    home = workdir / f"corpus-{n}"
    corpus = make_corpus(home, n)
    project = load_project()
    out: dict[str, Any] = {"episodes": n, "corpus": corpus}
    catalog_path = workdir / f"catalog-{n}.duckdb"
    catalog_path.unlink(missing_ok=True)

    live, answers = time_session(home, project, repeat, use_catalog=False)
    out["live"] = live
    out["frames"] = duckdb.sql(f"select count(*) from read_parquet('{home}/datasets/*/data/*/*.parquet')").fetchall()[0][0]

    catalog = Catalog(home, project=project, path=catalog_path)
    t = time.perf_counter()
    catalog.materialize_all()
    out["catalog_build_s"] = time.perf_counter() - t
    out["catalog"], got = time_session(home, project, repeat, catalog_path=catalog_path)
    assert got == answers, "catalog and live answers differ"

    shard = sorted(home.glob("datasets/ds-000/data/chunk-*/file-*.parquet"))[0]
    rewrite_in_place(shard)
    out["one_changed"], got = time_session(home, project, repeat, catalog_path=catalog_path)
    assert got == answers, "incremental and live answers differ"
    assert out["one_changed"]["served"]["int_episode_frame_checks"].startswith("99 of 100")
    t = time.perf_counter()
    results = {r.name: r for r in catalog.materialize_all()}
    out["catalog_rebuild_one_changed_s"] = time.perf_counter() - t
    assert results["int_episode_frame_checks"].files_computed == 1

    # pandas baseline
    gc.collect()
    t = time.perf_counter()
    meta = pandas_load(home)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    frames = pandas_load_frames(home)
    frames_s = time.perf_counter() - t
    pandas: dict[str, Any] = {"load_s": load_s, "load_frames_s": frames_s}
    baselines: tuple[tuple[str, Callable[[], Any]], ...] = (
        ("tasks", partial(pandas_tasks, meta)),
        ("durations", partial(pandas_durations, meta)),
        ("quality", partial(pandas_quality, meta, frames)),
    )
    for name, fn in baselines:
        t = time.perf_counter()
        result = fn()
        pandas[f"{name}_compute_s"] = time.perf_counter() - t
        if name == "tasks":
            assert result == [tuple(r) for r in answers["tasks"]], "pandas and DuckDB disagree on tasks"
        elif name == "durations":
            for a, b in zip(result, answers["durations"]):
                assert a[0] == b[0] and all(math.isclose(x, y, rel_tol=1e-9) for x, y in zip(a[1:], b[1:]))
        else:
            cols = ["too_short", "frame_count_mismatch", "has_nan_or_inf"]
            for row in answers["quality"]:
                got_row = dict(zip(["dataset", "frame_count_mismatch", "video_length_mismatch", "inconsistent_video_timestamps",
                                    "timestamp_gap", "non_monotonic_timestamps", "has_nan_or_inf", "idle", "too_short", "flagged"], row))
                assert {k: got_row[k] for k in cols} == result[got_row["dataset"]], f"pandas and DuckDB disagree on {got_row['dataset']}"
    out["pandas"] = pandas
    del frames, meta
    gc.collect()

    # the goal: each query < 200 ms and >= 10x faster than the pandas load it replaces
    baseline = {"tasks": load_s, "durations": load_s, "quality": load_s + frames_s}
    out["speedup_vs_pandas_load"] = {
        mode: {q: baseline[q] / out[mode][q]["median_s"] for q in QUERIES} for mode in MODES
    }
    return out


MODES = ("live", "catalog", "one_changed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "out" / "sql")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    import duckdb
    import pandas
    import pyarrow

    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        r = bench_size(n, args.workdir, args.repeat)
        results.append(r)
        ms = lambda s: f"{s * 1000:7.1f} ms"  # noqa: E731
        print(f"\n== {n:,} episodes, {r['frames']:,} frames, {r['corpus']['episode_shards']} episode shards "
              f"(+ as many data shards), {N_DATASETS} datasets; corpus generated in {r['corpus']['generate_s']} s")
        print(f"catalog build (all models) {r['catalog_build_s']:.2f} s; after one changed shard "
              f"{r['catalog_rebuild_one_changed_s']:.2f} s")
        print(f"pandas load: metadata {r['pandas']['load_s']:.2f} s, + frames {r['pandas']['load_frames_s']:.2f} s")
        print("  session open: " + "   ".join(f"{m} {ms(r[m]['open_s'])}" for m in MODES))
        for q in QUERIES:
            print(f"  {q:<10} " + "   ".join(
                f"{m} {ms(r[m][q]['median_s'])} (x{r['speedup_vs_pandas_load'][m][q]:.0f})" for m in MODES
            ) + "   (x = speedup vs the pandas load)")
    growth = {}
    if len(results) > 1:
        for mode in MODES:
            growth[mode] = {
                q: [round(r[mode][q]["median_s"] / results[0][mode][q]["median_s"], 2) for r in results] for q in QUERIES
            }
        growth["pandas_load"] = [round(r["pandas"]["load_s"] / results[0]["pandas"]["load_s"], 2) for r in results]
        print("\ngrowth relative to the smallest size (episodes x" + ", x".join(str(r["episodes"] // results[0]["episodes"]) for r in results) + "):")
        for mode in MODES:
            for q, g in growth[mode].items():
                print(f"  {mode:<12} {q:<10} " + "  ".join(f"x{x}" for x in g))
        print("  pandas load              " + "  ".join(f"x{x}" for x in growth["pandas_load"]))
    summary = {
        "benchmark": "bench_sql",
        "machine": {"cpus": os.cpu_count(), "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": {"duckdb": duckdb.__version__, "pandas": pandas.__version__, "pyarrow": pyarrow.__version__},
        "goal": "each query < 200 ms and >= 10x faster than the pandas load",
        "results": [
            {
                "episodes": r["episodes"],
                "frames": r["frames"],
                "catalog_build_s": round(r["catalog_build_s"], 3),
                "catalog_rebuild_one_changed_s": round(r["catalog_rebuild_one_changed_s"], 3),
                "pandas_load_s": round(r["pandas"]["load_s"], 3),
                "pandas_load_frames_s": round(r["pandas"]["load_frames_s"], 3),
                "open_ms": {m: round(r[m]["open_s"] * 1000, 1) for m in MODES},
                **{f"{m}_ms": {q: round(r[m][q]["median_s"] * 1000, 1) for q in QUERIES} for m in MODES},
                "speedup_vs_pandas_load": {m: {q: round(v, 1) for q, v in d.items()} for m, d in r["speedup_vs_pandas_load"].items()},
                "under_200ms": {m: {q: r[m][q]["median_s"] < 0.2 for q in QUERIES} for m in MODES},
            }
            for r in results
        ],
        "growth": growth,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
