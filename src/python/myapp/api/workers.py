"""The gunicorn worker class the API runs: gthread workers that share connections evenly.

gunicorn's threaded worker accepts every connection its event loop sees. With several workers on
one listening socket, whichever wakes first takes a burst of new connections, and keep-alive
clients (a proxy's upstream pool, a load generator) stay where they landed: measured here, 32
connections split 23/9, 29/3 and even 32/0, the crowded worker's queue set the tail latency
(p99 1.5x) and at 32/0 half the CPU idled. So the workers share a small table of their open
connection counts (anonymous shared memory, slots handed out by the master), and a worker that
is woken for a new connection while a sibling holds fewer leaves it in the kernel's backlog for
that sibling (least-connections balancing). The worker holding the fewest always accepts, so
the backlog drains at full speed, and an idle server wakes no one.

Both worker classes also answer the errors gunicorn produces itself, before the app sees the
request (a malformed request line, a request line or header too long, too many headers), in the
API's JSON error shape instead of gunicorn's HTML page (`write_json_error`).
"""

from __future__ import annotations

import json
import mmap
import time
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

_FREE = 2**31 - 1  # a free slot never holds the fewest connections


class ConnectionTable:
    """Open connections per worker slot, in memory shared by the master and its workers."""

    def __init__(self, slots: int) -> None:
        self._memory = mmap.mmap(-1, 4 * slots)  # anonymous MAP_SHARED: survives fork, shared
        self.counts = memoryview(self._memory).cast("i")
        for slot in range(slots):
            self.counts[slot] = _FREE

    def claim(self) -> int:
        """A free slot for a worker about to be forked (master only)."""
        for slot, count in enumerate(self.counts):
            if count == _FREE:
                self.counts[slot] = 0
                return slot
        raise RuntimeError(f"more than {len(self.counts)} workers")

    def release(self, slot: int) -> None:
        """The slot of a worker that exited (master only)."""
        self.counts[slot] = _FREE

    def publish(self, slot: int, connections: int) -> None:
        self.counts[slot] = connections

    def holds_fewest(self, slot: int, connections: int) -> bool:
        """Publish this worker's count; whether no other worker holds fewer."""
        self.publish(slot, connections)
        return connections <= min(self.counts)


# gunicorn's statuses for requests it cannot parse, as the API's error codes (errors.py).
_ERROR_CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
}


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's `util.write_error` (same arguments, same closing answer), writing
    ``{"error": {"code", "message"}}`` as application/json instead of an HTML page."""
    body = json.dumps(
        {
            "error": {
                "code": _ERROR_CODES.get(status_int, "http_error"),
                "message": f"{reason}: {mesg}" if mesg else reason,
            }
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


class JsonErrorsWorker:
    """Mixin: the worker's own error answers are JSON. gunicorn has no setting or hook for its
    error page; its `handle_error` picks the status and message and then calls
    `util.write_error`, so that one function is replaced, in the worker process only (each
    worker runs this before serving), and gunicorn keeps deciding what each error is."""

    def init_process(self) -> None:
        util.write_error = write_json_error
        super().init_process()  # type: ignore[misc]


class JsonSyncWorker(JsonErrorsWorker, SyncWorker):
    """The sync worker (GUNICORN_THREADS=1) with JSON error answers."""


class BalancedThreadWorker(JsonErrorsWorker, ThreadWorker):
    """gthread, leaving a new connection to a sibling worker that holds fewer connections (and
    answering its own errors in JSON)."""

    table: ConnectionTable | None = None  # set by the server before forking
    slot = -1  # set per worker by the master's pre_fork hook
    # How long a worker that passed on a connection stops polling the (level-triggered)
    # listening socket, instead of waking up for it again and again until a sibling accepts.
    pause_seconds = 0.01
    _paused_until = 0.0

    def accept(self, listener: Any) -> None:
        table = self.table
        if table is None or self.slot < 0:
            super().accept(listener)
        elif table.holds_fewest(self.slot, self.nr_conns):
            super().accept(listener)
            table.publish(self.slot, self.nr_conns)  # at once: a sibling may be deciding now
        else:
            self._paused_until = time.monotonic() + self.pause_seconds
            super().set_accept_enabled(False)

    def set_accept_enabled(self, enabled: bool) -> None:
        # The event loop asks to accept again on every turn; not before the pause is over.
        if enabled and time.monotonic() < self._paused_until:
            return
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if self.table is not None and self.slot >= 0:
            self.table.publish(self.slot, self.nr_conns)
        paused_for = self._paused_until - time.monotonic()
        if paused_for > 0:
            timeout = min(timeout, paused_for)
        super().wait_for_and_dispatch_events(timeout)


def claim_slot(_server: Any, worker: Any) -> None:
    """gunicorn pre_fork hook (runs in the master)."""
    if BalancedThreadWorker.table is not None:
        worker.slot = BalancedThreadWorker.table.claim()


def release_slot(worker: Any) -> None:
    """Called from the master's child_exit hook."""
    slot = getattr(worker, "slot", -1)
    if BalancedThreadWorker.table is not None and slot >= 0:
        BalancedThreadWorker.table.release(slot)
