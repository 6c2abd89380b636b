"""Runs a lerobot-assets command (`--cli ARGS...`) or Python code (`--py CODE`) and kills itself with
SIGKILL at the Nth durable filesystem step: the Nth call of os.replace / os.rename / os.unlink /
os.rmdir / os.mkdir / os.fsync / os.ftruncate, in any thread (LEROBOT_FAULT_AT=N).

Those calls are where the state on disk changes, so killing just before each of them walks a crash
through every point that can leave a half-done write. Writes made inside a C library (DuckDB) make no
such call: LEROBOT_FAULT_FUNCTIONS=Qual.name,... adds the entries of those Python functions (e.g. the
catalog's per-model build) as kill points too. LEROBOT_FAULT_COUNT_FILE=path makes an
uninterrupted run write how many such calls it made, so a test can choose points within that range.
Not a test module: tests/faults/test_faults.py starts it in a subprocess.
"""

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

WATCHED = {os.replace, os.rename, os.unlink, os.rmdir, os.mkdir, os.fsync, os.ftruncate}
_target = int(os.environ.get("LEROBOT_FAULT_AT", "0"))
_functions = {f for f in os.environ.get("LEROBOT_FAULT_FUNCTIONS", "").split(",") if f}
_count = 0
_lock = threading.Lock()


def _profile(frame: FrameType, event: str, arg: Any) -> None:
    global _count
    if event == "c_call":
        if arg not in WATCHED:
            return
    elif event != "call" or frame.f_code.co_qualname not in _functions:
        return
    with _lock:
        _count += 1
        hit = _count == _target
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)


def _report() -> None:
    path = os.environ.get("LEROBOT_FAULT_COUNT_FILE")
    if path:
        with open(path, "w") as f:
            f.write(str(_count))


def main() -> None:
    mode, rest = sys.argv[1], sys.argv[2:]
    threading.setprofile(_profile)
    sys.setprofile(_profile)
    try:
        if mode == "--cli":
            from lerobot_assets.cli.main import main as cli_main

            cli_main(rest)
        elif mode == "--py":
            exec(compile(rest[0], "<fault-py>", "exec"), {"__name__": "__fault__"})
        else:
            raise SystemExit(f"usage: fault_runner.py --cli ARGS... | --py CODE (got {mode!r})")
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
        _report()


if __name__ == "__main__":
    main()
