"""Hostile and careless input against the writer, atomic file operations, the data home and the
recording / pipeline commands: each test fails on the defect it names and passes once it is fixed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hostile_support import assert_one_line_error, run_cli, tree_digest

from lerobot_assets.home.keys import import_session_key, inbox_session_key, parse_session_key
from lerobot_assets.sources.lerobot_import import ImportSpec, register_import

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot-v3-tiny"


# ---------------------------------------------------------------- item 9: session names, import sources
@pytest.mark.parametrize("bad", ["nl\n", "ok\n", "a\nb", "x" * 200, "-lead", ""])
def test_session_names_are_checked_whole(bad):
    # `$` matches before a final newline: "nl\n" used to pass and name a file with a newline.
    with pytest.raises(ValueError, match="import name"):
        import_session_key(bad)
    with pytest.raises(ValueError, match="inbox folder"):
        inbox_session_key(bad)
    with pytest.raises(ValueError, match="not a session name"):
        parse_session_key(f"import-{bad}")
    with pytest.raises(ValueError):
        ImportSpec(name=bad, source=str(FIXTURE))


def test_sim_session_keys_are_checked_whole():
    with pytest.raises(ValueError, match="not a session name|sim session"):
        parse_session_key("sim-s0000-0009\n")


def test_register_import_refuses_a_name_with_a_newline(tmp_path):
    home = tmp_path / "home"
    proc = run_cli(["register-import", "nl\n", str(FIXTURE), "--home", str(home)], cwd=tmp_path)
    assert_one_line_error(proc, 2, "import name")
    assert not list((home / "imports").glob("*")) if (home / "imports").exists() else True


def test_register_import_refuses_a_missing_source_naming_it(tmp_path):
    home = tmp_path / "home"
    proc = run_cli(["register-import", "gone", "/nonexistent/dataset", "--home", str(home)], cwd=tmp_path)
    assert_one_line_error(proc, 2, "/nonexistent/dataset")
    assert not (home / "imports/gone.json").exists()
    # Failing early: the home was not even created for a command that could not work.
    assert not home.exists()


def test_register_import_refuses_a_directory_that_is_not_a_dataset(tmp_path):
    (tmp_path / "plain").mkdir()
    proc = run_cli(["register-import", "plain", "./plain", "--home", str(tmp_path / "home")], cwd=tmp_path)
    assert_one_line_error(proc, 2, str(tmp_path / "plain"))


def test_register_import_stores_a_relative_source_resolved(tmp_path):
    home = tmp_path / "home"
    (tmp_path / "work").mkdir()
    (tmp_path / "work/ds").symlink_to(FIXTURE, target_is_directory=True)
    proc = run_cli(["register-import", "rel", "ds", "--home", str(home)], cwd=tmp_path / "work")
    assert proc.returncode == 0, proc.stderr
    stored = json.loads((home / "imports/rel.json").read_text())
    # Stored as the dataset it named from where the user stood, not relative to whoever reads it.
    assert stored["source"] == str(FIXTURE.resolve())


def test_register_import_library_call_resolves_and_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(FIXTURE.parent)
    path = register_import(tmp_path / "imports", ImportSpec(name="tiny", source=FIXTURE.name))
    assert json.loads(path.read_text())["source"] == str(FIXTURE.resolve())
    with pytest.raises(FileNotFoundError, match="/nonexistent"):
        register_import(tmp_path / "imports", ImportSpec(name="gone", source="/nonexistent"))
    assert not (tmp_path / "imports/gone.json").exists()
    # Hub sources stay as given: they are resolved (downloaded) when the session is built.
    hub = register_import(tmp_path / "imports", ImportSpec(name="hub", source="lerobot/pusht"))
    assert json.loads(hub.read_text())["source"] == "lerobot/pusht"


# ---------------------------------------------------------------- item 16: one decoder-cache default, one override
def test_reader_decoder_cache_follows_the_environment(monkeypatch):
    from lerobot_assets.loading import LeRobotV3Dataset
    from lerobot_assets.video.cache import CACHE_SIZE_ENV_VARS, DEFAULT_DECODER_CACHE_SIZE

    for name in CACHE_SIZE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    ds = LeRobotV3Dataset(FIXTURE)
    assert ds.decoder_cache_size == DEFAULT_DECODER_CACHE_SIZE
    assert ds._file_frames.decoder_cache().max_size == DEFAULT_DECODER_CACHE_SIZE
    monkeypatch.setenv(CACHE_SIZE_ENV_VARS[0], "3")
    ds = LeRobotV3Dataset(FIXTURE)
    # The documented variable used to be ignored here: the reader always passed 64.
    assert ds.decoder_cache_size == 3 and ds._file_frames.decoder_cache().max_size == 3
    ds[0]  # decodes through that cache
    monkeypatch.setenv(CACHE_SIZE_ENV_VARS[0], "none")
    assert LeRobotV3Dataset(FIXTURE)._file_frames.decoder_cache().max_size is None
    # An explicit argument still wins over the environment.
    assert LeRobotV3Dataset(FIXTURE, decoder_cache_size=5)._file_frames.decoder_cache().max_size == 5


# ---------------------------------------------------------------- item 15: modes follow the umask
def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_created_files_and_directories_respect_the_umask(tmp_path, umask):
    from helpers import record

    from lerobot_assets.tools.merge import merge_datasets

    old = os.umask(umask)
    try:
        w, _ = record(tmp_path / "rec", [5, 4])
        w.finalize()
        merge_datasets([("a", tmp_path / "rec"), ("b", tmp_path / "rec")], tmp_path / "out/merged")
        register_import(tmp_path / "imports", ImportSpec(name="tiny", source=str(FIXTURE)))
    finally:
        os.umask(old)
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    for root in (tmp_path / "rec", tmp_path / "out/merged", tmp_path / "imports"):
        modes = _modes(root)
        files = {p: m for p, m in modes.items() if (root / p).is_file()}
        dirs = {p: m for p, m in modes.items() if (root / p).is_dir()}
        assert "meta/info.json" in files or root.name == "imports"
        # mkstemp / mkdtemp made every file 0600 and a merged root 0700, whatever the umask.
        assert {p: oct(m) for p, m in files.items() if m != file_mode} == {}, root
        assert {p: oct(m) for p, m in dirs.items() if m != dir_mode} == {}, root


# ---------------------------------------------------------------- item 4: a directory swap survives kill -9 at every step
SWAP_SCRIPT = textwrap.dedent(
    """
    import os, shutil, signal, sys
    from pathlib import Path
    from lerobot_assets.format.atomic import replace_dir

    kill_at, new, final = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    steps = 0

    def counted(fn):
        def step(*args, **kwargs):
            global steps
            result = fn(*args, **kwargs)
            steps += 1
            if steps == kill_at:  # SIGKILL right after the k-th change on disk: no cleanup runs
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return step

    # Every call that changes the tree: renames, removals (shutil.rmtree's too), creations.
    for name in ("replace", "rename", "unlink", "rmdir", "mkdir"):
        setattr(os, name, counted(getattr(os, name)))
    plain_open, counted_open = os.open, counted(os.open)
    os.open = lambda path, flags, *a, **k: (counted_open if flags & os.O_CREAT else plain_open)(path, flags, *a, **k)
    replace_dir(new, final)
    print("STEPS", steps)
    """
)


def _make_tree(root: Path, tag: str) -> None:
    for rel in ("meta/info.json", "data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet", "README"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"{tag}:{rel}")


def _swap_case(base: Path, kill_at: int) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    parent = base / "datasets"
    final, new = parent / "merged", parent / ".merged.rebuild-x"
    _make_tree(final, "old")
    _make_tree(new, "new")
    proc = subprocess.run([sys.executable, "-c", SWAP_SCRIPT, str(kill_at), str(new), str(final)],
                          capture_output=True, text=True, timeout=120)
    return proc, new, final


def test_replace_dir_survives_kill_9_at_every_step(tmp_path):
    from lerobot_assets.format.atomic import recover_replace, replace_dir

    old_tree, new_tree = tmp_path / "ref-old", tmp_path / "ref-new"
    _make_tree(old_tree, "old")
    _make_tree(new_tree, "new")
    want = {"old": tree_digest(old_tree), "new": tree_digest(new_tree)}
    outcomes = []
    for kill_at in range(1, 100):
        proc, new, final = _swap_case(tmp_path / f"k{kill_at}", kill_at)
        if proc.returncode == 0:
            assert "STEPS" in proc.stdout
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        # Two ways the next call comes: a reader that recovers first, or the next swap itself.
        twin = tmp_path / f"k{kill_at}-twin"
        shutil.copytree(final.parent.parent, twin, symlinks=True)
        recover_replace(final)
        found = [k for k, digest in want.items() if tree_digest(final) == digest]
        assert len(found) == 1, (kill_at, sorted(p.name for p in final.parent.iterdir()))
        leftovers = sorted(p.name for p in final.parent.iterdir() if p.name not in {"merged", ".merged.swap.lock"})
        # The new directory is only left when the swap never started (the caller's to clean up).
        assert leftovers == ([new.name] if found == ["old"] else []), (kill_at, leftovers)
        outcomes.append(found[0])

        again = twin / "datasets/.next"
        _make_tree(again, "next")
        replace_dir(again, twin / "datasets/merged")
        assert tree_digest(twin / "datasets/merged") == tree_digest(tmp_path / f"k{kill_at}-twin/datasets/merged")
        assert sorted(p.name for p in (twin / "datasets").iterdir()
                      if p.name not in {"merged", ".merged.swap.lock", new.name}) == [], kill_at
        assert (twin / "datasets/merged/README").read_text() == "next:README"
    else:
        pytest.fail("the swap never finished")
    assert len(outcomes) >= 5 and "old" in outcomes and "new" in outcomes, outcomes


def test_recover_replace_restores_a_legacy_half_swap(tmp_path):
    # The former swap renamed the target to .old-<name>-<pid>-<ns> and was killed before the
    # second rename: the target was missing and nothing ever put it back.
    from lerobot_assets.format.atomic import recover_replace

    parent = tmp_path / "sessions"
    _make_tree(parent / ".old-sim-s0000-0001-123-456", "old")
    recover_replace(parent / "sim-s0000-0001")
    assert (parent / "sim-s0000-0001/README").read_text() == "old:README"
    assert sorted(p.name for p in parent.iterdir() if p.name != ".sim-s0000-0001.swap.lock") == ["sim-s0000-0001"]


def test_merge_finishes_a_swap_killed_midway_before_looking_at_its_output(tmp_path):
    from helpers import record

    from lerobot_assets.tools.merge import merge_datasets

    w, _ = record(tmp_path / "src", [4, 3])
    w.finalize()
    out = tmp_path / "datasets/merged"
    assert merge_datasets([("a", tmp_path / "src")], out).mode == "rebuild"
    # A rebuild killed after its first rename: the output is moved aside, the new one not yet in.
    shutil.copytree(out, out.parent / ".merged.rebuild-k")
    os.replace(out, out.parent / ".merged.old-k")
    (out.parent / ".merged.swap.json").write_text(json.dumps({"new": ".merged.rebuild-k", "old": ".merged.old-k"}))
    result = merge_datasets([("a", tmp_path / "src")], out)
    # Recovered first, so the output is seen to hold these sources already: nothing is rebuilt.
    assert result.mode == "unchanged", result
    assert sorted(p.name for p in out.parent.iterdir()) == [".merged.lock", ".merged.swap.lock", "merged"]


# ---------------------------------------------------------------- item 3: a refused second open leaves the live writer alone
MID_COMMIT_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    sys.path.insert(0, {tests!r})
    from helpers import make_frame, FEATURES
    from lerobot_assets.recording import DatasetWriter
    from lerobot_assets.recording.commit import Commit

    publish = Commit.publish
    commits = 0

    def paused_publish(self):
        global commits
        commits += 1
        if commits == 3:  # the third episode's files are staged: hold here until the test says go
            print("STAGED", len(self.moves), flush=True)
            sys.stdin.readline()
        publish(self)

    Commit.publish = paused_publish
    w = DatasetWriter.create({root!r}, fps=30, features=FEATURES)
    rng = np.random.default_rng(0)
    for ep in range(3):
        for t in range(8 + ep):
            w.add_frame(make_frame(rng, t, "task"))
        w.save_episode()
    w.finalize()
    print("DONE", flush=True)
    """
)


def test_a_refused_second_open_leaves_a_writer_mid_commit_intact(tmp_path):
    from lerobot_assets.checks.validate import validate_dataset
    from lerobot_assets.format import DatasetMeta
    from lerobot_assets.recording import DatasetLockedError, DatasetWriter

    root = tmp_path / "live"
    script = MID_COMMIT_SCRIPT.format(tests=str(Path(__file__).resolve().parents[1]), root=str(root))
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=os.environ | {"SVT_LOG": "1"})
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        assert line.startswith("STAGED"), line + proc.stderr.read() if proc.stderr else line
        staged_before = sorted(p.name for p in root.rglob(".*.tmp*"))
        assert staged_before  # the live writer's staged files of its third episode
        with pytest.raises(DatasetLockedError, match="another DatasetWriter") as refused:
            DatasetWriter.open(root)
        assert str(root) in str(refused.value)
        # The refused open deleted them (it recovered before taking the lock).
        assert sorted(p.name for p in root.rglob(".*.tmp*")) == staged_before
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "DONE" in out, err[-3000:]
    meta = DatasetMeta(root)
    assert (meta.info.total_episodes, meta.info.total_frames) == (3, 8 + 9 + 10)
    report = validate_dataset(root)
    assert report.ok, [str(p) for p in report.problems]


# ---------------------------------------------------------------- item 2: relative paths, and a failed first save
def _validate_ok(root: Path) -> None:
    from lerobot_assets.checks.validate import validate_dataset

    report = validate_dataset(root)
    assert report.ok, [str(p) for p in report.problems]


def test_record_sim_into_a_relative_root(tmp_path):
    proc = run_cli(["record-sim", "--root", "simple", "--episodes", "2", "--max-steps", "8", "--no-top-camera"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(tmp_path / "simple") in proc.stdout  # the report names the root it resolved
    _validate_ok(tmp_path / "simple")


def test_writer_and_merge_resolve_relative_roots_once(tmp_path, monkeypatch):
    from helpers import record

    from lerobot_assets.format import DatasetMeta
    from lerobot_assets.recording import DatasetWriter
    from lerobot_assets.tools.merge import merge_datasets

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    w, _ = record(Path("rel"), [5])
    assert w.root == tmp_path / "rel"
    monkeypatch.chdir(tmp_path / "elsewhere")  # a caller that changes directory mid-recording
    record(Path("rel"), [4], writer=w)
    w.finalize()
    assert DatasetMeta(tmp_path / "rel").info.total_episodes == 2
    assert not (tmp_path / "elsewhere/rel").exists()
    _validate_ok(tmp_path / "rel")

    monkeypatch.chdir(tmp_path)
    w = DatasetWriter.open("rel")
    assert w.root == tmp_path / "rel"
    w.finalize()
    result = merge_datasets([("a", Path("rel"))], Path("out/merged"))
    assert result.episodes == 2
    _validate_ok(tmp_path / "out/merged")


def test_a_failed_first_save_leaves_nothing_half_made(tmp_path, monkeypatch):
    import numpy as np
    from helpers import FEATURES, make_frame, record

    from lerobot_assets.recording import DatasetWriter
    from lerobot_assets.recording import writer as writer_module

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    root = tmp_path / "fresh"
    monkeypatch.setattr(writer_module, "episode_table", broken)
    w = DatasetWriter.create(root, fps=30, features=FEATURES)
    rng = np.random.default_rng(0)
    for t in range(4):
        w.add_frame(make_frame(rng, t, "x"))
    with pytest.raises(OSError, match="No space"):
        w.save_episode()
    w.finalize()
    # Formerly a root holding only meta/info.json: not a dataset, yet not empty either.
    assert not root.exists(), sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    monkeypatch.undo()

    # A root the user made stays, empty; a retry records into it.
    root.mkdir()
    w = DatasetWriter.create(root, fps=30, features=FEATURES)
    w.finalize()
    assert root.is_dir() and list(root.iterdir()) == []
    w, _ = record(root, [3])
    w.finalize()
    _validate_ok(root)


KILLED_FIRST_EPISODE = textwrap.dedent(
    """
    import os, signal, sys, numpy as np
    sys.path.insert(0, {tests!r})
    from helpers import make_frame, FEATURES
    from lerobot_assets.recording import DatasetWriter
    w = DatasetWriter.create({root!r}, fps=30, features=FEATURES)
    rng = np.random.default_rng(0)
    for t in range(6):
        w.add_frame(make_frame(rng, t, "task"))
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_a_root_killed_before_its_first_save_is_no_dataset_and_can_be_recorded_into(tmp_path):
    from helpers import FEATURES, record

    from lerobot_assets.recording import DatasetWriter

    root = tmp_path / "killed"
    script = KILLED_FIRST_EPISODE.format(tests=str(Path(__file__).resolve().parents[1]), root=str(root))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=os.environ | {"SVT_LOG": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    # No meta/info.json claiming a dataset that has none of its other files.
    assert not (root / "meta/info.json").exists()
    w = DatasetWriter.open_or_create(root, fps=30, features=FEATURES)
    record(root, [4], writer=w)
    w.finalize()
    _validate_ok(root)


# ---------------------------------------------------------------- item 6: a re-run continues, never duplicates
def test_record_sim_rerun_continues_where_the_root_stands(tmp_path):
    import pyarrow.parquet as pq

    args = ["--max-steps", "6", "--no-top-camera"]
    # The root an interrupted `--episodes 4` left: its first two episodes are durable.
    first = run_cli(["record-sim", "--root", "resumed", "--episodes", "2", *args], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    rerun = run_cli(["record-sim", "--root", "resumed", "--episodes", "4", *args], cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "recorded 2 episodes" in rerun.stdout and "2 were there already" in rerun.stdout, rerun.stdout
    whole = run_cli(["record-sim", "--root", "whole", "--episodes", "4", *args], cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-2000:]
    # Formerly seeds 0-3 were appended again: 6 episodes, two of them duplicates.
    for rel in ("data/chunk-000/file-000.parquet", "meta/tasks.parquet"):
        assert pq.read_table(tmp_path / "resumed" / rel).equals(pq.read_table(tmp_path / "whole" / rel)), rel
    cols = ["episode_index", "length", "dataset_from_index", "dataset_to_index"]
    ep = "meta/episodes/chunk-000/file-000.parquet"
    assert pq.read_table(tmp_path / "resumed" / ep, columns=cols).equals(pq.read_table(tmp_path / "whole" / ep, columns=cols))
    _validate_ok(tmp_path / "resumed")
    # Run once more: nothing left to record, nothing changes.
    before = tree_digest(tmp_path / "resumed")
    again = run_cli(["record-sim", "--root", "resumed", "--episodes", "4", *args], cwd=tmp_path)
    assert again.returncode == 0 and "recorded 0 episodes" in again.stdout, again.stdout + again.stderr[-2000:]
    assert tree_digest(tmp_path / "resumed") == before


def test_record_sim_progress_counts_durable_episodes(tmp_path, monkeypatch):
    import time

    from lerobot_assets.format.info import DatasetInfo
    from lerobot_assets.recording.commit import Commit
    from lerobot_assets.sources.pusht import PushTSourceConfig
    from lerobot_assets.sources.pusht.record import record_pusht

    publish = Commit.publish

    def slow_publish(self):  # a slow disk: each commit lags well behind the next episode's frames
        time.sleep(0.3)
        publish(self)

    monkeypatch.setattr(Commit, "publish", slow_publish)
    root = tmp_path / "progress"
    on_disk = []

    def on_episode(result):
        on_disk.append(DatasetInfo.load(root).total_episodes if (root / "meta/info.json").is_file() else 0)

    config = PushTSourceConfig(seed=0, episodes=3, max_steps=4, top_camera=False)
    record_pusht(root, config, on_episode=on_episode)
    # The bar said 7/8 with 6 on disk: each tick must be an episode already durable.
    assert len(on_disk) == 3 and all(n >= i + 1 for i, n in enumerate(on_disk)), on_disk


# ---------------------------------------------------------------- item 11: two record-sim on one root; a full disk
def _digest_outside_staging(root: Path) -> dict[str, str]:
    return {k: v for k, v in tree_digest(root).items() if not k.startswith(".staging")}


@pytest.mark.parametrize("published", [False, True])
def test_the_losing_record_sim_gets_one_line_and_changes_nothing(tmp_path, published):
    import numpy as np
    from helpers import FEATURES, make_frame

    from lerobot_assets.recording import DatasetWriter
    from lerobot_assets.sources.pusht import PushTSourceConfig

    root = tmp_path / "shared"
    features = PushTSourceConfig(top_camera=False).features() if published else FEATURES
    live = DatasetWriter.create(root, fps=10, features=features, robot_type="pusht")
    try:
        if published:  # the winner has saved an episode and is recording the next one
            from lerobot_assets.sources.pusht import iter_episode_frames

            for frame in iter_episode_frames(0, PushTSourceConfig(max_steps=5, top_camera=False)):
                live.add_frame(frame)
            live.save_episode()
        else:  # the winner is recording its first episode: nothing is published yet
            rng = np.random.default_rng(0)
            for t in range(3):
                live.add_frame(make_frame(rng, t, "x"))
        before = _digest_outside_staging(root)
        proc = run_cli(["record-sim", "--root", str(root), "--episodes", "2", "--max-steps", "5", "--no-top-camera"],
                       cwd=tmp_path)
        assert_one_line_error(proc, 1, f"{root}: another DatasetWriter is writing this dataset")
        assert _digest_outside_staging(root) == before
        assert "recording:" not in proc.stderr  # no progress bar for a run that never started
    finally:
        live.finalize()


def test_record_sim_on_a_full_disk_names_the_file_and_keeps_every_saved_episode(tmp_path):
    import resource

    from hostile_support import CLI

    from lerobot_assets.format.info import DatasetInfo

    def small_disk() -> None:  # files may not grow past 400 kB: the top camera's video hits it first
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))

    env = os.environ | {"SDL_VIDEODRIVER": "dummy", "SVT_LOG": "1"}
    proc = subprocess.run([str(CLI), "record-sim", "--root", "full", "--episodes", "30", "--max-steps", "60"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=small_disk, stdin=subprocess.DEVNULL)
    assert_one_line_error(proc, 1, "File too large")
    line = next(x for x in proc.stderr.splitlines() if x.startswith("error:"))
    # The file the dataset was writing, not a hidden temp file of it.
    assert f"{tmp_path}/full/videos/observation.images.top/chunk-000/file-000.mp4:" in line, line
    saved = DatasetInfo.load(tmp_path / "full").total_episodes
    assert 1 <= saved < 30
    _validate_ok(tmp_path / "full")
    assert not [p for p in (tmp_path / "full").rglob("*") if ".tmp" in p.name]


KILLED_APPEND = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from lerobot_assets.recording import commit
    from lerobot_assets.tools.merge import merge_datasets

    def killed_apply(root, moves):  # the journal is durable, no file is renamed yet
        os.kill(os.getpid(), signal.SIGKILL)

    commit._apply = killed_apply
    merge_datasets([("a", Path({a!r})), ("b", Path({b!r}))], Path({out!r}))
    """
)


def _merge_a_then_kill_appending_b(tmp_path: Path, script: str) -> Path:
    """Sessions a and b recorded, a merged; then `script` appends b in a subprocess that is killed."""
    from helpers import record

    from lerobot_assets.tools.merge import merge_datasets

    for name, lengths, seed in (("a", [4, 3], 0), ("b", [5], 1)):
        w, _ = record(tmp_path / name, lengths, seed=seed)
        w.finalize()
    out = tmp_path / "merged"
    merge_datasets([("a", tmp_path / "a")], out)
    code = script.format(a=str(tmp_path / "a"), b=str(tmp_path / "b"), out=str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return out


def test_merge_rerun_after_an_append_killed_mid_commit_adds_the_source_once(tmp_path):

    from lerobot_assets.format import DatasetMeta
    from lerobot_assets.tools.merge import merge_datasets

    out = _merge_a_then_kill_appending_b(tmp_path, KILLED_APPEND)
    result = merge_datasets([("a", tmp_path / "a"), ("b", tmp_path / "b")], out)
    # Formerly: provenance read before the journal was rolled forward, so b was appended twice.
    meta = DatasetMeta(out)
    assert (meta.info.total_episodes, meta.info.total_frames) == (3, 12), result
    _validate_ok(out)


def test_a_journal_killed_while_written_is_cleared_on_open(tmp_path):
    from helpers import record

    from lerobot_assets.recording import DatasetWriter

    w, _ = record(tmp_path / "d", [3])
    w.finalize()
    stray = tmp_path / "d/.staging/.commit.json.deadbeef.tmp"
    stray.write_text('[["data/ch')  # the journal's temp, cut short by a kill
    DatasetWriter.open(tmp_path / "d").finalize()
    assert not stray.exists()


KILLED_BEFORE_FINAL_STATS = textwrap.dedent(
    """
    import os, signal
    from pathlib import Path
    from lerobot_assets.tools import merge

    merge._Output.write_final_stats = lambda self: os.kill(os.getpid(), signal.SIGKILL)
    merge.merge_datasets([("a", Path({a!r})), ("b", Path({b!r}))], Path({out!r}))
    """
)


def test_merge_rerun_after_a_kill_before_the_final_stats_writes_them(tmp_path):

    from lerobot_assets.format.stats_json import read_stats
    from lerobot_assets.tools.merge import merge_datasets

    out = _merge_a_then_kill_appending_b(tmp_path, KILLED_BEFORE_FINAL_STATS)
    assert merge_datasets([("a", tmp_path / "a"), ("b", tmp_path / "b")], out).mode == "unchanged"
    # Formerly "unchanged" kept a's stats: counts of 7 frames in a dataset of 12.
    reference = tmp_path / "reference"
    merge_datasets([("a", tmp_path / "a"), ("b", tmp_path / "b")], reference)
    got, want = read_stats(out), read_stats(reference)
    assert got.keys() == want.keys()
    for key in want:
        for stat in want[key]:
            assert (got[key][stat] == want[key][stat]).all(), (key, stat)


def test_merge_of_incompatible_features_names_them(tmp_path):
    from helpers import record

    from lerobot_assets.tools.merge import merge_datasets

    w, _ = record(tmp_path / "ours", [3])  # 48x64 front camera; the fixture's is 96x128
    w.finalize()
    # Formerly a TypeError (unhashable list) from comparing the features' shapes.
    with pytest.raises(ValueError, match=r"source 'tiny' \(.*\): feature 'observation.images.front' shape \[96, 128, 3\] differs from \[48, 64, 3\] in 'ours'"):
        merge_datasets([("ours", tmp_path / "ours"), ("tiny", FIXTURE)], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- item 5: info.json's path templates
def _relayout(root: Path, data_path: str | None = None, video_path: str | None = None) -> None:
    """Move a default-layout dataset's files to these templates and say so in info.json (what a
    dataset written by other tools may legally look like)."""
    import pyarrow.parquet as pq

    info = json.loads((root / "meta/info.json").read_text())
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    video_keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    moves = {}
    for r in rows:
        c, f = r["data/chunk_index"], r["data/file_index"]
        if data_path:
            moves[info["data_path"].format(chunk_index=c, file_index=f)] = data_path.format(chunk_index=c, file_index=f)
        for key in video_keys if video_path else []:
            c, f = r[f"videos/{key}/chunk_index"], r[f"videos/{key}/file_index"]
            moves[info["video_path"].format(video_key=key, chunk_index=c, file_index=f)] = video_path.format(
                video_key=key, chunk_index=c, file_index=f)
    for old, new in moves.items():
        (root / new).parent.mkdir(parents=True, exist_ok=True)
        os.replace(root / old, root / new)
    info["data_path"] = data_path or info["data_path"]
    info["video_path"] = video_path or info["video_path"]
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    _validate_ok(root)


PART_TEMPLATE = "data/chunk-{chunk_index:03d}/part-{file_index:03d}.parquet"


def test_a_data_path_the_writer_cannot_honour_is_refused_before_anything_is_written(tmp_path):
    from helpers import record

    from lerobot_assets.recording import DatasetWriter

    w, _ = record(tmp_path / "d", [4, 3])
    w.finalize()
    shutil.rmtree(tmp_path / "d/.staging")
    # Honoured for reading (format.templates), but meta/ is the writer's: a commit would mix
    # data files into the metadata it rewrites.
    _relayout(tmp_path / "d", data_path="meta/chunk-{chunk_index:03d}/data-{file_index:03d}.parquet")
    before = tree_digest(tmp_path / "d")
    with pytest.raises(ValueError, match=r"meta/info.json: data_path 'meta/chunk-\{chunk_index:03d\}/data-.* puts files under meta/"):
        DatasetWriter.open(tmp_path / "d")
    assert tree_digest(tmp_path / "d") == before  # not even the writer's lock file


def test_record_sim_appends_to_a_dataset_with_a_custom_data_path(tmp_path):
    import pyarrow.parquet as pq

    args = ["--max-steps", "5", "--no-top-camera"]
    first = run_cli(["record-sim", "--root", "p", "--episodes", "2", *args], cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    root = tmp_path / "p"
    _relayout(root, data_path=PART_TEMPLATE)
    # Formerly refused: stats globbed data/chunk-*/file-*.parquet, so appending would have
    # rewritten stats.json over none of these files.
    proc = run_cli(["record-sim", "--root", "p", "--episodes", "3", *args], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _validate_ok(root)
    info = json.loads((root / "meta/info.json").read_text())
    # Seeds 0..2: the two held episodes (found through the custom data_path) are not recorded again.
    assert info["data_path"] == PART_TEMPLATE and info["total_episodes"] == 3
    parts = sorted(root.glob("data/chunk-*/part-*.parquet"))
    assert parts and not list(root.glob("data/chunk-*/file-*.parquet"))
    frames = sum(pq.read_metadata(p).num_rows for p in parts)
    assert frames == info["total_frames"] > 0
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["action"]["count"] == [frames]  # every frame of every part file


@pytest.mark.parametrize(
    "data_path, video_path",
    [
        ("data/chunk-{chunk_index}/file-{file_index}.parquet", None),  # unpadded: same files, other names
        (PART_TEMPLATE, None),  # other file names: stats must not glob file-*.parquet
        (None, "videos/{video_key}/chunk-{chunk_index:03d}/clip-{file_index:03d}.mp4"),
        (None, "media/{video_key}-{chunk_index:02d}-{file_index:04d}.mp4"),
    ],
)
def test_the_writer_and_merge_follow_honoured_templates(tmp_path, data_path, video_path):
    from helpers import record

    from lerobot_assets.format import DatasetMeta
    from lerobot_assets.recording import DatasetWriter
    from lerobot_assets.tools.merge import merge_datasets
    from lerobot_assets.video.probe import video_frame_count

    root = tmp_path / "d"
    w, _ = record(root, [4, 3])
    w.finalize()
    _relayout(root, data_path=data_path, video_path=video_path)
    w = DatasetWriter.open(root)
    record(root, [5], seed=3, writer=w)
    w.finalize()
    _validate_ok(root)
    meta = DatasetMeta(root)
    info = meta.info
    assert (info.total_episodes, info.total_frames) == (3, 12)
    assert info.data_path == (data_path or "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet")
    for key in info.video_keys:
        assert video_frame_count(root / info.video_path.format(video_key=key, chunk_index=0, file_index=0)) == 12
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["action"]["count"] == [12]
    # Merge reads the sources through their templates; its output is in the default layout.
    out = tmp_path / "merged"
    assert merge_datasets([("d", root)], out).episodes == 3
    _validate_ok(out)


def test_pending_replacements_names_exactly_what_recover_replace_acts_on(tmp_path: Path) -> None:
    """A merge plan over thousands of sessions lists their parent once (format.atomic.pending_replacements)
    and recovers only the targets it names: every leftover kind must be named, nothing else."""
    from lerobot_assets.format.atomic import pending_replacements

    parent = tmp_path / "sessions"
    for name in ("a", "b", "c", "d", "plain"):
        (parent / name).mkdir(parents=True)
    (parent / ".a.swap.json").write_text("{}")  # a journaled swap, killed
    (parent / ".b.swap.json.1a2b3c4d.tmp").write_text("")  # its journal's write, killed
    (parent / ".old-c-123-456789").mkdir()  # the former, unjournaled swap, killed
    (parent / ".old-d-x").mkdir()  # not that pattern
    (parent / ".plain.swap.lock").write_text("")  # a lock file alone is nothing to recover
    assert pending_replacements(parent) == {"a", "b", "c"}
    assert pending_replacements(tmp_path / "absent") == set()
