"""Wakes the outbox relay in whichever intake worker runs it when another worker commits
(issue 15: intake on every core; a report waits for nothing it need not).

Several alert workers share one outbox and one relay (services.alert.duties). The relay's own
worker wakes it at once after each commit (Outbox.new_rows); a row another worker committed
used to wait for the relay's next look (`alert_relay_poll_s`, 20 ms): on average 10 ms more
for about half the reports on a two-core machine, measured as the time from the operator's 202
to the report's record on Kafka (flow benchmark, 2026-12-01: median 5-6 ms when the requests
were spread over both workers, under 1 ms when one worker took them all).

Now every worker that is not running the relay sends one datagram after each commit to a
Unix datagram socket the relay's worker listens on; the listener sets the relay's event. The
socket is in Linux's abstract namespace (no file to leave behind or to outgrow the 108-byte
path limit), named after the outbox's data directory, so stacks with other data directories
never wake each other (the namespace is the network namespace's: two containers sharing the
host's network and the same data directory path would share the name, and the second relay
would poll as before). Best effort by design: nobody listening (the duties are changing
hands), a full socket queue, anything else: the datagram is dropped, and the relay's poll
finds the row as before. Nothing is carried but the wake: a datagram from any other process
only makes the relay look at the outbox once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
from pathlib import Path

__all__ = ["RelayWake"]

log = logging.getLogger(__name__)
MAX_READS = 64


class RelayWake:
    """One per worker process. `ring` after a commit (from the event loop); `listen` in the
    worker that runs the relay, setting `woken` (the outbox's new_rows) on each datagram."""

    def __init__(self, data_dir: Path, woken: asyncio.Event) -> None:
        digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:32]
        self.address = b"\0homeward-alert-relay-" + digest.encode()
        self.woken = woken
        self._out: socket.socket | None = None
        self._in: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def listening(self) -> bool:
        return self._in is not None

    def ring(self) -> None:
        """Tell the relay rows were committed (nothing when this process runs it: its event
        is set directly). Never raises, never blocks."""
        if self._in is not None:
            return
        # Best effort by design (module docstring): with no relay listening (duties changing
        # hands) or its queue full, the datagram is dropped and the relay's poll finds the rows.
        with contextlib.suppress(OSError):
            if self._out is None:
                self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._out.setblocking(False)
            self._out.sendto(b"\x01", self.address)

    def listen(self) -> None:
        """Start taking the other workers' wakes (the worker holding the duties). When the
        address is taken (another process still has it), the relay polls as before."""
        if self._in is not None:
            return
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(self.address)
            loop.add_reader(sock.fileno(), self._readable)
        except OSError as exc:
            sock.close()
            log.warning("relay wake unavailable (%r); the relay polls for other workers' rows",
                        exc)
            return
        self._in, self._loop = sock, loop

    def _readable(self) -> None:
        assert self._in is not None
        # The wakes queued so far are this one look (at most MAX_READS a call: a flood from
        # another local process cannot hold the event loop here); the queue empty ends it.
        with contextlib.suppress(OSError):
            for _ in range(MAX_READS):
                self._in.recv(64)
        self.woken.set()

    def stop_listening(self) -> None:
        if self._in is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._in.fileno())
            self._in.close()
            self._in, self._loop = None, None

    def close(self) -> None:
        self.stop_listening()
        if self._out is not None:
            self._out.close()
            self._out = None
