"""`lerobot-assets demo`, `ui`, `register-sim`, `register-import`: the Dagster pipeline from the CLI.

Every command works on a data home (`--home`, default $LEROBOT_ASSETS_HOME, else ./.demo_home) whose Dagster instance lives in
`<home>/dagster` (telemetry off), so `demo` and `ui` on the same home show the same runs.
"""

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from lerobot_assets.cli import app
from lerobot_assets.home.layout import MERGED_DATASET, HomeLayout, default_home, is_remote_url

_HOME_HELP = "data home (inbox/, sessions/, datasets/, dagster/ ...); default $LEROBOT_ASSETS_HOME, else ./.demo_home"
# What a data home may hold; the demo refuses any other directory rather than write into it.
_HOME_ENTRIES = {"inbox", "imports", "downloads", "raw", "sessions", "datasets", "previews", "dagster", "catalog", "checks"}
# Pools default to one slot: the SQL models and checks share the DuckDB catalog file, which takes
# one writer process at a time, so Dagster queues their steps instead of letting them collide.
_DAGSTER_YAML = (
    "# Written by lerobot-assets.\ntelemetry:\n  enabled: false\n"
    "concurrency:\n  pools:\n    default_limit: 1\n"
)


@dataclass(frozen=True)
class PreparedHome:
    url: str  # a resolved local path, or the remote home's URL
    dagster_home: Path

    @property
    def remote(self) -> bool:
        return is_remote_url(self.url)

    def dataset(self) -> str:
        """Where the merged dataset is: a local root, or the remote prefix (readers follow its pointer)."""
        return f"{self.url.rstrip('/')}/datasets/{MERGED_DATASET}" if self.remote else str(HomeLayout(Path(self.url)).dataset())

    def __str__(self) -> str:
        return self.url


def _prepare_home(home: str | None, fresh_instance: bool) -> PreparedHome:
    """Create the home (default: `default_home()`) and its Dagster instance dir; point this process's
    env at them.

    A remote home (s3://...) holds no Dagster instance (SQLite wants a local file): it uses
    $DAGSTER_HOME when set, else one in this machine's local directory for that home."""
    url = home or default_home()
    if is_remote_url(url):
        return _prepare_remote_home(url, fresh_instance)
    root = Path(url.removeprefix("file://")).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise typer.BadParameter(f"{root} is not a directory", param_hint="--home")
    if root.exists():
        foreign = sorted(p.name for p in root.iterdir() if p.name not in _HOME_ENTRIES and not p.name.startswith("."))
        if foreign:
            raise typer.BadParameter(
                f"{root} holds {foreign[:5]}, which is not a lerobot-assets data home; choose an empty or new directory",
                param_hint="--home",
            )
    prepared = PreparedHome(str(root), root / "dagster")
    _prepare_instance(prepared, fresh_instance)
    return prepared


def _prepare_remote_home(url: str, fresh_instance: bool) -> PreparedHome:
    from lerobot_assets.home.remote import default_local_dir, home_filesystem

    try:
        fs, path = home_filesystem(url)
        entries = fs.ls(path, detail=False) if fs.exists(path) else []
    except Exception as e:  # any fsspec backend's error: missing package, credentials, bucket, network
        raise typer.BadParameter(f"{url}: cannot list the data home: {type(e).__name__}: {e}", param_hint="--home") from None
    foreign = sorted({str(p).rstrip("/").rsplit("/", 1)[-1] for p in entries} - _HOME_ENTRIES)
    if foreign:
        raise typer.BadParameter(
            f"{url} holds {foreign[:5]}, which is not a lerobot-assets data home; choose an empty or new prefix",
            param_hint="--home",
        )
    given = os.environ.get("DAGSTER_HOME")
    prepared = PreparedHome(url, Path(given) if given else default_local_dir(url) / "dagster")
    # Only an instance of our own making is ever wiped: never the one $DAGSTER_HOME names.
    _prepare_instance(prepared, fresh_instance and not given)
    return prepared


def _prepare_instance(home: PreparedHome, fresh: bool) -> None:
    dagster_home = home.dagster_home
    if fresh and dagster_home.exists():
        shutil.rmtree(dagster_home)
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(_DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ["LEROBOT_ASSETS_HOME"] = home.url
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SVT_LOG", "1")


def _run_config(log_level: str, sim: dict[str, Any] | None = None, sql_vars: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    resources: dict[str, Any] = {}
    if sim:
        resources["sim"] = {"config": sim}
    if sql_vars:
        resources["sql"] = {"config": {"vars": sql_vars}}
    if resources:
        config["resources"] = resources
    return config


def _checks_line(result: Any) -> tuple[bool, str]:
    evals = result.get_asset_check_evaluations()
    ok = all(e.passed for e in evals)
    return ok, ", ".join(f"{e.check_name} {'OK' if e.passed else 'FAILED'}" for e in evals) or "no checks"


def _metadata(result: Any, asset: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


@app.command("demo")
def demo_command(
    home: str = typer.Option(None, "--home", help=_HOME_HELP),
    sessions: int = typer.Option(2, "--sessions", min=1, max=1000, help="PushT sim sessions to record"),
    episodes: int = typer.Option(10, "--episodes", min=1, max=10000, help="episodes per session"),
    max_steps: int = typer.Option(300, "--max-steps", min=1, help="an episode ends at success or after this many steps"),
    top_camera: bool = typer.Option(True, "--top-camera/--no-top-camera", help="also record the 480x640 top camera"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="print Dagster's log lines (per episode) as well"),
    train_steps: int = typer.Option(
        600, "--train-steps", min=0, help="steps of the demo's short policy training (0: no training or evaluation)"
    ),
    eval_episodes: int = typer.Option(20, "--eval-episodes", min=1, help="rollouts of the demo's policy evaluation"),
    curation_max_seconds: float = typer.Option(
        12.0, "--curation-max-seconds", min=0.0,
        help="curated_dataset keeps episodes at most this long (the slowest demonstrations are dropped); 0: no limit",
    ),
) -> None:
    """Build the whole asset graph on a fresh Dagster instance: N sim sessions of M episodes -> merged dataset.

    Registers sessions sim-s0000-..., materializes raw_episodes and session_dataset per session
    (with their blocking validation), then lerobot_dataset, dataset_stats, byte_index, the SQL models,
    curated_dataset, dataset_splits and annotated_dataset, and prints where the dataset is and how to
    open the UI.
    """
    t0 = time.perf_counter()
    prepared = _prepare_home(home, fresh_instance=True)

    import dagster as dg

    from lerobot_assets.defs.definitions import defs
    from lerobot_assets.defs.ingest.partitions import SESSIONS
    from lerobot_assets.home import sim_session_keys

    instance = dg.DagsterInstance.get()
    keys = sim_session_keys(sessions, episodes)
    instance.add_dynamic_partitions(SESSIONS, keys)
    typer.echo(f"data home {prepared}\nDagster instance {prepared.dagster_home} (telemetry off)")
    typer.echo(
        f"registered {len(keys)} session{'s' if len(keys) != 1 else ''} of {episodes} "
        f"episode{'s' if episodes != 1 else ''}: {', '.join(keys)}"
    )
    sim = {} if (max_steps, top_camera) == (300, True) else {"max_steps": max_steps, "top_camera": top_camera}
    level = "INFO" if verbose else "WARNING"
    session_job = defs.resolve_job_def("session_job")
    failed: list[str] = []
    for i, key in enumerate(keys, 1):
        t = time.perf_counter()
        result = session_job.execute_in_process(
            partition_key=key, instance=instance, run_config=_run_config(level, sim), raise_on_error=False
        )
        ok, checks = _checks_line(result)
        raw = _metadata(result, "raw_episodes")
        built = _metadata(result, "session_dataset")
        success = raw.get("success_rate")
        typer.echo(
            f"[{i}/{len(keys)}] {key}: {built.get('episodes', '?')} episodes, {built.get('frames', '?')} frames"
            + (f", expert success {success:.0%}" if success is not None else "")
            + f"; {checks}; {time.perf_counter() - t:.1f} s"
        )
        if not (result.success and ok):
            failed.append(key)
    if failed:
        typer.echo(f"error: sessions {failed} failed; see `lerobot-assets ui --home {prepared}` for the runs", err=True)
        raise typer.Exit(1)
    t = time.perf_counter()
    result = defs.resolve_job_def("dataset_job").execute_in_process(
        instance=instance,
        run_config=_run_config(level, sql_vars={"curation_max_seconds": curation_max_seconds}),
        raise_on_error=False,
    )
    ok, checks = _checks_line(result)
    merged = _metadata(result, "lerobot_dataset")
    typer.echo(
        f"lerobot_dataset: {merged.get('mode', '?')} of {merged.get('sessions', '?')} sessions, "
        f"{merged.get('episodes', '?')} episodes, {merged.get('frames', '?')} frames, "
        f"{(merged.get('bytes') or 0) / 1e6:.1f} MB; dataset_stats; {checks}; {time.perf_counter() - t:.1f} s"
    )
    curated, splits = _metadata(result, "curated_dataset"), _metadata(result, "dataset_splits")
    if curated:
        limit = f"at most {curation_max_seconds:g} s, " if curation_max_seconds > 0 else ""
        typer.echo(
            f"curated_dataset: kept {curated.get('kept_episodes', '?')} of {merged.get('episodes', '?')} episodes "
            f"(rules: {limit}no quality flag); dataset_splits: "
            + ", ".join(f"{name} {n}" for name, n in (splits.get("episodes") or {}).items())
        )
    annotated = _metadata(result, "annotated_dataset")
    if annotated:
        styles = annotated.get("rows_per_style") or {}
        typer.echo(
            f"annotated_dataset ({annotated.get('backend', '?')} backend): {annotated.get('episodes_covered', '?')} episodes, "
            + ", ".join(f"{n} {style}" for style, n in styles.items())
        )
    if not (result.success and ok):
        typer.echo(f"error: building the merged dataset failed; see `lerobot-assets ui --home {prepared}`", err=True)
        raise typer.Exit(1)
    if train_steps:
        t = time.perf_counter()
        ops = {
            "policy_checkpoint": {"config": {"steps": train_steps}},
            "policy_eval": {"config": {"episodes": eval_episodes, "videos": 1}},
        }
        result = defs.resolve_job_def("training_job").execute_in_process(
            instance=instance, run_config=_run_config(level) | {"ops": ops}, raise_on_error=False
        )
        ok, checks = _checks_line(result)
        ckpt, ev = _metadata(result, "policy_checkpoint"), _metadata(result, "policy_eval")
        if ev:
            typer.echo(
                f"policy_checkpoint: {ckpt.get('steps', '?')} steps on {ckpt.get('split', '?')}, final loss "
                f"{ckpt.get('final_loss', float('nan')):.4f}; policy_eval: {ev.get('pc_success', float('nan')):.0f}% success "
                f"over {ev.get('episodes', '?')} held-out seeds ({ev.get('pc_success_interval', '?')}), expert "
                f"{ev.get('expert_pc_success', float('nan')):.0f}%, random {ev.get('random_pc_success', float('nan')):.0f}% "
                f"(a short demo run: benchmarks/bench_train.py gives the real figures); {checks}; {time.perf_counter() - t:.1f} s"
            )
        if not (result.success and ok):
            typer.echo(f"error: training or evaluating the policy failed; see `lerobot-assets ui --home {prepared}`", err=True)
            raise typer.Exit(1)
    dataset = prepared.dataset()
    if prepared.remote:
        from lerobot_assets.home.remote import RemoteHome

        pointer = RemoteHome(prepared.url).pointer(f"datasets/{MERGED_DATASET}")
        version = f"{dataset}/{pointer.version}" if pointer is not None else "(not published)"
        loading = (
            f"published version {version}; LeRobot reads a local copy of that prefix (e.g. `aws s3 sync {version} ./pusht`), "
            f"here: lerobot-assets info {dataset}"
        )
    else:
        loading = f"LeRobot: LeRobotDataset('local/pusht', root='{dataset}'); here: lerobot-assets info {dataset}"
    typer.echo(
        f"\ndone in {time.perf_counter() - t0:.1f} s.\n"
        f"  dataset:  {dataset}\n"
        f"            ({loading})\n"
        f"  UI:       make ui   (or: lerobot-assets ui --home {prepared}), then open http://127.0.0.1:3000/assets"
    )


def _dagster_executable() -> str:
    local = Path(sys.executable).with_name("dagster")
    return str(local) if local.is_file() else (shutil.which("dagster") or "dagster")


def _code_location_args() -> list[str]:
    """The checkout's workspace.yaml (the same code location as `dagster dev` in the repo root)
    when running from a source checkout, else the installed module."""
    repo = Path(__file__).resolve().parents[2]
    if (repo / "workspace.yaml").is_file() and (repo / "definitions.py").is_file():
        return ["-w", str(repo / "workspace.yaml")]
    return ["-m", "lerobot_assets.defs.definitions"]


@app.command("ui")
def ui_command(
    home: str = typer.Option(None, "--home", help=_HOME_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="address the webserver listens on"),
    port: int = typer.Option(3000, "--port", help="webserver port"),
) -> None:
    """Start `dagster dev` (webserver + daemon: sensors, automation) on the home's Dagster instance."""
    prepared = _prepare_home(home, fresh_instance=False)
    args = [_dagster_executable(), "dev", "-h", host, "-p", str(port), *_code_location_args()]
    typer.echo(f"Dagster UI: http://{host}:{port}/assets  (DAGSTER_HOME={prepared.dagster_home}, data home {prepared}); Ctrl-C stops it")
    sys.stdout.flush()
    # exec: dagster dev becomes this process, so Ctrl-C (SIGINT to the group) stops it cleanly.
    os.execvpe(args[0], args, os.environ.copy())


@app.command("register-sim")
def register_sim_command(
    home: str = typer.Option(None, "--home", help=_HOME_HELP),
    sessions: int = typer.Option(1, "--sessions", min=1, max=1000),
    episodes: int = typer.Option(10, "--episodes", min=1, max=10000),
    first_seed: int | None = typer.Option(None, "--first-seed", min=0, help="default: after the highest registered seed"),
) -> None:
    """Register sim sessions (partitions) in the home's instance; `ui`'s automation sensor then builds them."""
    _prepare_home(home, fresh_instance=False)
    import dagster as dg

    from lerobot_assets.defs.ingest.partitions import SESSIONS
    from lerobot_assets.home import next_free_seed, overlapping_sim_sessions, sim_session_keys

    instance = dg.DagsterInstance.get()
    existing = list(instance.get_dynamic_partitions(SESSIONS))
    first = first_seed if first_seed is not None else next_free_seed(existing)
    keys = [k for k in sim_session_keys(sessions, episodes, first) if k not in existing]
    clashes = {k: overlapping_sim_sessions(existing, k) for k in keys}
    if any(clashes.values()):
        typer.echo(f"error: seed ranges overlap registered sessions: { {k: v for k, v in clashes.items() if v} }", err=True)
        raise typer.Exit(2)
    instance.add_dynamic_partitions(SESSIONS, keys)
    typer.echo(f"registered {', '.join(keys) or 'nothing new'}")


@app.command("register-import")
def register_import_command(
    name: str = typer.Argument(..., help="the session becomes import-NAME"),
    source: str = typer.Argument(..., help="local dataset root, Hub repo id owner/name, or hf://datasets/owner/name[@rev]"),
    home: str = typer.Option(None, "--home", help=_HOME_HELP),
    revision: str | None = typer.Option(None, "--revision", help="Hub branch, tag or commit"),
) -> None:
    """Register an existing LeRobot v3 dataset as a session of the home.

    A local SOURCE is stored as an absolute path and must be a dataset root (meta/info.json) now.
    """
    from pydantic import ValidationError

    from lerobot_assets.home import import_session_key
    from lerobot_assets.sources.lerobot_import import ImportSpec, checked_source, register_import

    # Every argument is checked before the home is touched: a typo must not leave a new home behind.
    try:
        spec = ImportSpec(name=name, source=source, revision=revision)
        key = import_session_key(spec.name)
        spec = spec.model_copy(update={"source": checked_source(spec.source, spec.revision)})
    except ValidationError as e:
        typer.echo(f"error: {'; '.join(err['msg'] for err in e.errors())}", err=True)
        raise typer.Exit(2) from None
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    prepared = _prepare_home(home, fresh_instance=False)
    import dagster as dg

    from lerobot_assets.defs.ingest.partitions import SESSIONS
    from lerobot_assets.home.workspace import open_workspace

    with open_workspace(prepared.url, f"register-import-{spec.name}") as ws:
        written = register_import(ws.layout.imports, spec)
        ws.write(written.relative_to(ws.layout.root).as_posix())
    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition(SESSIONS, key):
        instance.add_dynamic_partitions(SESSIONS, [key])
    typer.echo(f"registered {key} -> {spec.source}")
