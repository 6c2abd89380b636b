"""Ctrl-C during a long DuckDB call.

DuckDB does not look for Ctrl-C while it fetches a result (`fetchall`, `to_arrow_table` ran to their end
however long), and where it does (rendering a table) it turns it into a RuntimeError, so the CLI exited 1
with "Query interrupted" instead of 130. `interruptible(con, call)` runs the call in a worker thread;
the main thread waits where Python raises KeyboardInterrupt, interrupts the connection until the call
has stopped, and lets the KeyboardInterrupt go on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

import duckdb

T = TypeVar("T")

# How often the connection is interrupted again while the call has not stopped: between two statements
# there is nothing to interrupt, and the next one must be stopped too.
_REINTERRUPT_S = 0.1


def interruptible(con: duckdb.DuckDBPyConnection, call: Callable[[], T]) -> T:
    """`call()` (DuckDB work on `con`), stopped by Ctrl-C: KeyboardInterrupt once it has stopped."""
    if threading.current_thread() is not threading.main_thread():
        return call()  # only the main thread receives signals: nothing to wait for
    pool = ThreadPoolExecutor(1, thread_name_prefix="lerobot-sql")
    try:
        future = pool.submit(call)
        try:
            return future.result()
        except KeyboardInterrupt:
            while not future.done():
                con.interrupt()
                wait([future], timeout=_REINTERRUPT_S)
            raise
    finally:
        pool.shutdown(wait=True)
