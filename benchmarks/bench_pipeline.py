"""Orchestration overhead: PushT sessions through the Dagster graph vs the same work through the library alone.

"The same work" is the same chain of library calls the assets and checks make, without Dagster:

    per session:  normalize_session (simulate -> raw-v1 episodes)   [raw_episodes]
                  build_session_dataset (raw -> v3 via DatasetWriter) [session_dataset]
                  validate_dataset                                    [session_dataset_valid]
    then:         merge_datasets                                      [lerobot_dataset]
                  validate_dataset + totals                           [lerobot_dataset_valid/_totals]
                  compute_dataset_stats + write_stats                 [dataset_stats]

The Dagster side runs the real jobs (session_job per session, then dataset_job) in process on a
persistent SQLite instance (what `lerobot-assets demo` does), so its extra cost is Dagster itself
(runs, events, storage) plus what only the graph does: metadata (preview frames, stats tables).

Sessions alternate which side runs first, so drift in machine load (other processes) hits both
sides alike; wall and CPU time (this process, all threads) are both reported. Both sides must
produce the same dataset (episodes, frames, data values), or the benchmark fails.
The last line printed is a JSON object.

    .venv/bin/python benchmarks/bench_pipeline.py [--sessions 10] [--episodes 20] [--top-camera]
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SVT_LOG", "1")


class Clock:
    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        w, c = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            self.wall += time.perf_counter() - w
            self.cpu += time.process_time() - c


def library_session(layout: Any, key: str, sim: Any) -> int:
    from lerobot_assets.checks.validate import validate_dataset
    from lerobot_assets.home import build_session_dataset, normalize_session

    quiet = lambda _msg: None  # noqa: E731
    summary = normalize_session(key, layout, sim=sim, progress=quiet)
    build = build_session_dataset(summary, layout.session(key), progress=quiet)
    report = validate_dataset(build.root)
    assert report.ok, report.summary()
    assert (build.episodes, build.frames) == (summary.episodes, summary.frames)
    return build.frames


def library_merge(layout: Any, keys: list[str]) -> dict[str, Any]:
    from lerobot_assets.checks.validate import validate_dataset
    from lerobot_assets.format.info import DatasetInfo
    from lerobot_assets.format.stats_json import write_stats
    from lerobot_assets.stats.dataset import compute_dataset_stats
    from lerobot_assets.tools.merge import merge_datasets

    root = layout.dataset()
    result = merge_datasets([(k, layout.session(k)) for k in keys], root, progress=lambda _m: None)
    report = validate_dataset(root)
    assert report.ok, report.summary()
    sessions = [DatasetInfo.load(layout.session(k)) for k in keys]
    assert result.frames == sum(i.total_frames for i in sessions)
    write_stats(root, compute_dataset_stats(root))
    return {"episodes": result.episodes, "frames": result.frames}


def dagster_session(job: Any, instance: Any, key: str, run_config: dict[str, Any]) -> None:
    result = job.execute_in_process(partition_key=key, instance=instance, run_config=run_config, raise_on_error=False)
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations()), f"{key} failed"


def dagster_merge(job: Any, instance: Any, run_config: dict[str, Any]) -> dict[str, Any]:
    result = job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations()), "dataset_job failed"
    md = next(e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "lerobot_dataset")
    return {k: md.materialization.metadata[k].value for k in ("episodes", "frames")}


def same_data(a: Path, b: Path) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def table(root: Path) -> pa.Table:
        return pa.concat_tables([pq.read_table(p) for p in sorted(root.glob("data/*/*.parquet"))])

    return table(a).equals(table(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=20, help="episodes per session")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--top-camera", action="store_true", help="also record the 480x640 top camera (slower)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_pipeline-"))
    shutil.rmtree(work, ignore_errors=True)
    (work / "dagster").mkdir(parents=True)
    (work / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(work / "dagster")

    import dagster as dg

    from lerobot_assets.defs.definitions import defs
    from lerobot_assets.home import HomeLayout, sim_session_keys
    from lerobot_assets.sources.pusht import PushTSourceConfig

    sim_fields = {"max_steps": args.max_steps, "top_camera": args.top_camera}
    sim = PushTSourceConfig(**sim_fields)
    lib_layout = HomeLayout(work / "library")
    dag_home = work / "dagster_home"
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    session_config = quiet | {"resources": {"home": {"config": {"root": str(dag_home)}}, "sim": {"config": sim_fields}}}
    dataset_config = quiet | {"resources": {"home": {"config": {"root": str(dag_home)}}}}
    session_job = defs.resolve_job_def("session_job")
    dataset_job = defs.resolve_job_def("dataset_job")

    with dg.DagsterInstance.get() as instance:
        # Warm-up on both sides (imports, codec and env initialisation), not timed.
        warm = "sim-s9000-9000"
        instance.add_dynamic_partitions("sessions", [warm])
        warm_sim = {"max_steps": 5, "top_camera": args.top_camera}
        warm_layout = HomeLayout(work / "warm_library")
        library_session(warm_layout, warm, PushTSourceConfig(**warm_sim))
        warm_config = quiet | {"resources": {"home": {"config": {"root": str(work / "warm_dagster")}}, "sim": {"config": warm_sim}}}
        dagster_session(session_job, instance, warm, warm_config)
        instance.delete_dynamic_partition("sessions", warm)

        keys = sim_session_keys(args.sessions, args.episodes)
        instance.add_dynamic_partitions("sessions", keys)
        lib, dag = Clock(), Clock()
        for i, key in enumerate(keys):
            t = time.perf_counter()
            sides = [("library", lambda k=key: lib.run(library_session, lib_layout, k, sim)),
                     ("dagster", lambda k=key: dag.run(dagster_session, session_job, instance, k, session_config))]
            if i % 2:
                sides.reverse()
            for _, fn in sides:
                fn()
            print(f"{key}: both sides done in {time.perf_counter() - t:.1f} s "
                  f"(library {lib.wall:.1f} s, dagster {dag.wall:.1f} s so far)", flush=True)
        lib_session_wall, dag_session_wall = lib.wall, dag.wall
        lib_merged = lib.run(library_merge, lib_layout, keys)
        dag_merged = dag.run(dagster_merge, dataset_job, instance, dataset_config)

    assert lib_merged == dag_merged, (lib_merged, dag_merged)
    identical = same_data(lib_layout.dataset(), HomeLayout(dag_home).dataset())
    assert identical, "the two sides wrote different data"
    runs = args.sessions + 1
    result = {
        "benchmark": "pipeline_orchestration_overhead",
        "sessions": args.sessions,
        "episodes_per_session": args.episodes,
        "episodes": lib_merged["episodes"],
        "frames": lib_merged["frames"],
        "top_camera": args.top_camera,
        "max_steps": args.max_steps,
        "library_s": round(lib.wall, 2),
        "dagster_s": round(dag.wall, 2),
        "overhead_s": round(dag.wall - lib.wall, 2),
        "overhead_pct": round(100 * (dag.wall - lib.wall) / lib.wall, 2),
        "library_cpu_s": round(lib.cpu, 2),
        "dagster_cpu_s": round(dag.cpu, 2),
        "cpu_overhead_pct": round(100 * (dag.cpu - lib.cpu) / lib.cpu, 2),
        "sessions_library_s": round(lib_session_wall, 2),
        "sessions_dagster_s": round(dag_session_wall, 2),
        "merge_library_s": round(lib.wall - lib_session_wall, 2),
        "merge_dagster_s": round(dag.wall - dag_session_wall, 2),
        "dagster_runs": runs,
        "overhead_per_run_s": round((dag.wall - lib.wall) / runs, 3),
        "identical_data": identical,
        "goal_pct": 10,
        "goal_met": (dag.wall - lib.wall) / lib.wall <= 0.10,
        "cpu_count": os.cpu_count(),
        "workdir": str(work),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
