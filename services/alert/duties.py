"""Which alert worker process runs the background duties (issue 15 item 4): the outbox relay,
the progress consumer, outbox pruning, metric sampling and the ops port. Several intake
workers share one outbox (SQLite in WAL mode, one file); exactly one relay publishes it, the
worker holding an exclusive `flock` on `<data_dir>/alert-duties.lock`. The kernel drops the
lock when its holder dies (SIGKILL included), and another worker takes the duties over within
`retry_s`: a row committed by any worker is published by whichever holds the lock then.
Their commits to the shared outbox take turns by `WriteTurn`.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger(__name__)


class WriteTurn:
    """Writers of the outbox take turns by a blocking `flock` on `<outbox>.lock`, one open file
    per connection: with several worker processes on one file (issue 15), a writer waiting for
    another sleeps in the kernel and wakes when the lock is released, instead of SQLite's
    busy-wait, which polls with sleeps of 1 to 100 ms. Used from the outbox's own threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _try_lock(path: Path) -> int | None:
    """An fd holding the exclusive lock on `path`, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def held(path: Path) -> bool:
    """Whether some process (this one included) holds the duties lock now (for /readyz)."""
    fd = _try_lock(path)
    if fd is None:
        return True
    os.close(fd)  # nobody held it: released at once
    return False


class Duties:
    """Runs `start` once this process holds the lock, `stop` when cancelled (shutdown)."""

    def __init__(self, path: Path, start: Callable[[], Awaitable[None]],
                 stop: Callable[[], Awaitable[None]], retry_s: float = 1.0) -> None:
        self.path = path
        self.start = start
        self.stop = stop
        self.retry_s = retry_s
        self.holding = False

    async def run(self) -> None:
        """Until cancelled: wait for the lock, run the duties; if they cannot start (the ops
        port still taken by a dying predecessor...), stop, let go and try again."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = _try_lock(self.path)
            if fd is None:
                await asyncio.sleep(self.retry_s)
                continue
            try:
                self.holding = True
                log.info("alert worker %d holds the background duties", os.getpid())
                await self.start()
                await asyncio.Event().wait()  # until cancelled
            except Exception:
                log.exception("alert worker %d could not start the duties; retrying",
                              os.getpid())
            finally:
                try:
                    await self.stop()
                finally:
                    self.holding = False
                    os.close(fd)  # releases the lock: another worker takes over
            await asyncio.sleep(self.retry_s)
