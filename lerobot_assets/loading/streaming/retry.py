"""Retries with exponential backoff for reads from object storage, and a counted ranged fetcher.

Transient errors (connection resets, timeouts, throttling: `OSError` and its kin from fsspec)
are retried up to `attempts` times with delays base, 2 x base, 4 x base... (plus up to 50%
jitter); errors that no retry fixes (missing file, permission) are raised at once. After the
last attempt the error names the file and the number of attempts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from fsspec import AbstractFileSystem

from lerobot_assets.byteindex.fetch import RangeFetcher

T = TypeVar("T")

PERMANENT: tuple[type[BaseException], ...] = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
TRANSIENT: tuple[type[BaseException], ...] = (OSError, TimeoutError, ConnectionError)


class ReadFailedError(OSError):
    """A read from storage still failed after every retry (names the file and the attempts)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_s: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"retry attempts must be >= 1; got {self.attempts}")


def with_retry(
    call: Callable[[], T],
    what: str,
    policy: RetryPolicy,
    *,
    on_retry: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, retried on transient errors; OSError naming `what` after the last attempt."""
    last: BaseException | None = None
    for attempt in range(policy.attempts):
        try:
            return call()
        except PERMANENT:
            raise
        except TRANSIENT as e:
            last = e
            if attempt + 1 < policy.attempts:
                if on_retry is not None:
                    on_retry(e)
                sleep(policy.backoff_s * (2**attempt) * (1 + 0.5 * random.random()))
    detail = f"{type(last).__name__}: {last}" if str(last) else type(last).__name__
    raise ReadFailedError(f"{what}: read failed after {policy.attempts} attempts: {detail}") from last


class RetryingFetcher(RangeFetcher):
    """The byte index's ranged fetcher with retries (each attempt is counted in bytes_requested)."""

    def __init__(
        self, fs: AbstractFileSystem, base: str, policy: RetryPolicy, on_retry: Callable[[BaseException], None] | None
    ):
        super().__init__(fs, base)
        self.policy = policy
        self.on_retry = on_retry

    def fetch(self, rel: str, start: int, end: int) -> bytes:
        return with_retry(
            lambda: RangeFetcher.fetch(self, rel, start, end),
            f"{self.base}/{rel} bytes [{start}, {end})",
            self.policy,
            on_retry=self.on_retry,
        )
