"""Shared helpers of the hostile-input and fault suites (tests/hostile/): run the real CLI in a
subprocess, and prove that nothing was written where it must not be."""

import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "lerobot-assets"


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256 or 'dir' / 'link -> target'} of everything under `root` (no following
    links), so a test can assert that an input tree is byte-for-byte unchanged."""
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames):
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = f"link -> {os.readlink(p)}" if p.is_symlink() else "dir"
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = f"link -> {os.readlink(p)}"
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


def run_cli(args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`lerobot-assets ARGS` as a user runs it (the installed console script), in `cwd`."""
    full_env = os.environ | {"SDL_VIDEODRIVER": "dummy", "SVT_LOG": "1"} | (env or {})
    full_env.pop("LEROBOT_ASSETS_DEBUG", None)
    return subprocess.run([str(CLI), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    """Exit `code`, no traceback, and an `error:` line on stderr that contains `fragment`."""
    detail = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == code, detail
    assert "Traceback" not in proc.stderr + proc.stdout, detail
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], detail
