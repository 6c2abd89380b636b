"""The README's command examples, run verbatim, so they cannot go stale.

What runs: every line of every ```bash fenced block of README.md, in README order, each with
`bash -c` as its own shell (a `cd` or `export` does not carry to the next line: state carries only
through files, so earlier blocks set up later ones). Lines ending in `\\` are joined with the next
one, as bash joins them; a trailing `# comment` (a `#` at the start of a word, outside quotes) is
dropped; blank and comment-only lines are skipped. Other fences (```python, plain ```) are not run.

What does not run:
- `make demo`, `make test`, `make test-fast`, `make ui`: `make test*` are this test's own callers and
  `make demo` / `make ui` are the long-running entry points (the demo has its own end-to-end test).
  Other `make` targets do run.
- a block whose fence line comes directly after the line `<!-- readme-test: skip -->`, for what a
  test cannot run (a server that never exits, a command needing credentials). `skip` is the only
  marker; an unknown one, or one not directly above a ```bash fence, fails the fast test below, so
  a typo cannot quietly run (or quietly skip) a block.

Where it runs: a fresh temporary directory that looks like the repo root to a reader's commands:
every top-level entry git does not ignore (`tests`, `definitions.py`, `workspace.yaml`,
`pyproject.toml`, `dbt_style_sql`, `docs`, `benchmarks`, ...) is symlinked into it, and so is `.venv`,
so `tests/fixtures/...`, `dagster ... -m definitions` and `.venv/bin/python benchmarks/...` work as
typed, while whatever a command creates at the top level (`.demo_home`, `out/`) lands in the
temporary directory, never in the checkout. (A command that writes *inside* a linked folder would
write into the checkout: README examples should not.) Ignored state (`.demo_home`, `.git`, caches)
is not linked, so the README cannot lean on a developer's earlier runs.

Environment: the caller's, with `PATH` starting with the repo's `.venv/bin`, `SDL_VIDEODRIVER=dummy`,
`HOME` a temporary directory, and `LEROBOT_ASSETS_HOME` and `DAGSTER_HOME` unset (commands see the
defaults a new user sees). stdin is closed. Each command must exit 0 within 600 s; every command
runs even after one fails, so one run lists everything stale (a failure may follow from an earlier
one: read the list top down).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
VENV = REPO / ".venv"

SKIP_MARKER = "skip"
NOT_RUN_MAKE_TARGETS = frozenset({"demo", "test", "test-fast", "ui"})
COMMAND_TIMEOUT_S = 600
TAIL_LINES = 40

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([^\s`]*)")
_MARKER = re.compile(r"^\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Command:
    """One command of the README: its text as bash will run it, and the README line it starts on."""

    line: int
    text: str


def strip_comment(line: str) -> str:
    """`line` without a trailing bash comment: a `#` starting a word outside quotes (so `"a # b"`,
    `a#b` and `${#x}` are kept)."""
    quote: str | None = None
    prev = " "
    i = 0
    while i < len(line):
        ch = line[i]
        if quote == "'":
            if ch == "'":
                quote = None
        elif ch == "\\":
            # An escaped character (outside single quotes) is never a quote or a comment.
            i += 2
            prev = "x"
            continue
        elif quote == '"':
            if ch == '"':
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and prev.isspace():
            return line[:i].rstrip()
        prev = ch
        i += 1
    return line.rstrip()


def is_not_run_make(command: str) -> bool:
    words = command.split()
    return bool(words) and words[0] == "make" and any(w in NOT_RUN_MAKE_TARGETS for w in words[1:])


def extract_commands(markdown: str, name: str = "README.md") -> list[Command]:
    """The commands of every ```bash block of `markdown`, in order (see the module docstring for
    what is joined, stripped and left out). Raises ValueError naming `name:line` for an unclosed
    fence, a dangling `\\` continuation, an unknown marker or a marker not directly above a ```bash
    fence."""
    lines = markdown.splitlines()
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        skip = False
        if marker:
            if marker.group(1) != SKIP_MARKER:
                raise ValueError(f"{name}:{i + 1}: unknown marker {marker.group(1)!r}: only 'readme-test: skip' exists")
            following = _FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
            if not following or following.group(2) != "bash":
                raise ValueError(f"{name}:{i + 1}: 'readme-test: skip' must be the line directly above a ```bash fence")
            skip = True
            i += 1
            line = lines[i]
        fence = _FENCE.match(line)
        if not fence:
            i += 1
            continue
        # A fence closes on a line of the same character, at least as long, with nothing after it.
        close = re.compile(rf"^\s*{re.escape(fence.group(1)[0])}{{{len(fence.group(1))},}}\s*$")
        opened_at = i + 1
        body: list[tuple[int, str]] = []
        i += 1
        while i < len(lines) and not close.match(lines[i]):
            body.append((i + 1, lines[i]))
            i += 1
        if i == len(lines):
            raise ValueError(f"{name}:{opened_at}: fence {fence.group(1)} is never closed")
        i += 1
        if fence.group(2) == "bash" and not skip:
            commands.extend(_block_commands(body, name))
    return commands


def _block_commands(body: list[tuple[int, str]], name: str) -> list[Command]:
    commands: list[Command] = []
    parts: list[str] = []
    start = 0
    for number, raw in body:
        if not parts:
            start = number
        if raw.endswith("\\"):
            # bash drops the backslash-newline pair and nothing else.
            parts.append(raw[:-1])
            continue
        parts.append(raw)
        text = strip_comment("".join(parts)).strip()
        parts = []
        if text and not is_not_run_make(text):
            commands.append(Command(start, text))
    if parts:
        raise ValueError(f"{name}:{start}: the block ends inside a `\\` continuation")
    return commands


# ---------------------------------------------------------------------------------------------
# Running


def readme_workdir(root: Path) -> tuple[Path, dict[str, str]]:
    """A working directory that looks like the repo root (see the module docstring) and the
    environment the commands run with."""
    cwd = root / "work"
    home = root / "home"
    cwd.mkdir()
    home.mkdir()
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    tops = {p.split("/")[0] for p in listed.split("\0") if p}
    for top in sorted(tops | {VENV.name}):
        if (REPO / top).exists():
            (cwd / top).symlink_to(REPO / top)
    env = {k: v for k, v in os.environ.items() if k not in {"LEROBOT_ASSETS_HOME", "DAGSTER_HOME"}}
    env |= {
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "SDL_VIDEODRIVER": "dummy",
        "HOME": str(home),
    }
    return cwd, env


def run_command(command: str, cwd: Path, env: Mapping[str, str], timeout_s: float) -> tuple[int | None, str]:
    """Exit code (None on timeout) and combined stdout + stderr of `bash -c command`."""
    # Own process group: on timeout the whole tree (dagster's subprocesses included) is killed, so
    # no orphan keeps the output pipe open and hangs the test.
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out + f"\n[killed after {timeout_s:g} s]"


def describe_failure(command: Command, code: int | None, output: str) -> str:
    tail = "\n".join(output.splitlines()[-TAIL_LINES:])
    status = "timed out" if code is None else f"exited {code}"
    return f"README.md:{command.line}: {command.text}\n{status}; last {TAIL_LINES} lines of output:\n" + textwrap.indent(tail, "    ")


@pytest.mark.slow
def test_readme_commands_run(tmp_path: Path) -> None:
    commands = extract_commands(README.read_text())
    cwd, env = readme_workdir(tmp_path)
    failures = []
    for command in commands:
        code, output = run_command(command.text, cwd, env, COMMAND_TIMEOUT_S)
        if code != 0:
            failures.append(describe_failure(command, code, output))
    assert not failures, f"{len(failures)} of {len(commands)} README command(s) failed:\n\n" + "\n\n".join(failures)


# ---------------------------------------------------------------------------------------------
# Fast: the extractor, the working directory, the README's markers and fences


SAMPLE = """\
# Title

```bash
make demo   # the main job
make test
make test-fast
make ui
make clean-demo
# a whole-line comment

lerobot-assets sql "SELECT 1 # not a comment" --home .h   # a comment
lerobot-assets record-sim --root out \\
    --episodes 2 \\
    --seed 3   # joined with the two lines above
echo a#b '#x' \\# ${#PATH}
```

```python
print("not bash")
```

<!-- readme-test: skip -->
```bash
lerobot-assets ui
```

```
lerobot-assets validate ROOT
```

````bash
echo four backticks ```
````
"""


def test_extractor_on_a_sample() -> None:
    assert extract_commands(SAMPLE) == [
        Command(8, "make clean-demo"),
        Command(11, 'lerobot-assets sql "SELECT 1 # not a comment" --home .h'),
        Command(12, "lerobot-assets record-sim --root out     --episodes 2     --seed 3"),
        Command(15, "echo a#b '#x' \\# ${#PATH}"),
        Command(32, "echo four backticks ```"),
    ]


@pytest.mark.parametrize(
    ("markdown", "error"),
    [
        ("```bash\necho x\n", "README.md:1: fence ``` is never closed"),
        ("```bash\necho x \\\n```\n", "README.md:2: the block ends inside a `\\` continuation"),
        ("<!-- readme-test: setup -->\n```bash\necho\n```\n", "README.md:1: unknown marker 'setup'"),
        ("<!-- readme-test: skip -->\n\n```bash\necho\n```\n", "README.md:1: 'readme-test: skip' must be the line"),
        ("<!-- readme-test: skip -->\n```python\nx\n```\n", "README.md:1: 'readme-test: skip' must be the line"),
    ],
)
def test_extractor_rejects_malformed_markdown(markdown: str, error: str) -> None:
    with pytest.raises(ValueError) as raised:
        extract_commands(markdown)
    assert str(raised.value).startswith(error)


def test_the_readme_parses() -> None:
    """Runs in `make test-fast`: a misplaced marker or an unclosed fence shows up without the slow
    test."""
    extract_commands(README.read_text())


def test_commands_see_the_documented_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "leaked"))
    cwd, env = readme_workdir(tmp_path)
    probe = (
        'echo "$PATH" | cut -d: -f1; echo "home=$HOME"; echo "lah=${LEROBOT_ASSETS_HOME-unset}";'
        ' echo "dh=${DAGSTER_HOME-unset}"; echo "sdl=$SDL_VIDEODRIVER"; command -v lerobot-assets;'
        " for f in tests/fixtures/lerobot-v3-tiny/meta/info.json definitions.py workspace.yaml dbt_style_sql/README.md;"
        ' do test -e "$f" && echo "$f"; done;'
        " test ! -e .demo_home && test ! -e .git && echo clean; touch made-here"
    )
    code, output = run_command(probe, cwd, env, 60)
    assert code == 0, output
    assert output.splitlines() == [
        str(VENV / "bin"),
        f"home={tmp_path / 'home'}",
        "lah=unset",  # conftest sets it for every test; the README's commands must not see it
        "dh=unset",
        "sdl=dummy",
        str(VENV / "bin" / "lerobot-assets"),
        "tests/fixtures/lerobot-v3-tiny/meta/info.json",
        "definitions.py",
        "workspace.yaml",
        "dbt_style_sql/README.md",
        "clean",
    ]
    assert (cwd / "made-here").is_file() and not (REPO / "made-here").exists()


def test_a_failure_names_the_command_code_and_output_tail(tmp_path: Path) -> None:
    cwd, env = readme_workdir(tmp_path)
    code, output = run_command("seq 1 100; exit 3", cwd, env, 60)
    message = describe_failure(Command(7, "seq 1 100; exit 3"), code, output)
    lines = message.splitlines()
    assert lines[:2] == ["README.md:7: seq 1 100; exit 3", "exited 3; last 40 lines of output:"]
    assert lines[2:] == [f"    {n}" for n in range(61, 101)]
    code, output = run_command("sleep 30", cwd, env, 0.5)
    assert code is None and "[killed after 0.5 s]" in output
