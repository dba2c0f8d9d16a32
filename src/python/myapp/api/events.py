"""Audit entries forwarded to the connector (``CONNECTOR_URL``), which turns them into webhooks.

An entry is sent only once its transaction has committed (`state.commit` hands the request's
entries over; a rollback drops them), from one background thread per process, so a slow or
absent connector never slows a request down. The body is the entry as ``GET /api/v1/audit``
lists it. Failures are retried a few times with backoff (connection errors, 429 and 5xx); when
the queue is full or the retries run out the entry is dropped and counted: the audit log in the
database stays the record, the forward is best effort.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from prometheus_client import Counter

log = logging.getLogger(__name__)

EVENTS = Counter(
    "myapp_api_events_forwarded_total",
    "Audit entries forwarded to the connector, by outcome (sent, refused, failed, dropped)",
    ["outcome"],
)


class EventForwarder:
    """POSTs JSON events to ``<url>/api/v1/events`` with a bearer token, in order, from a thread."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        queue_size: int = 1000,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 5.0,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/api/v1/events"
        self._token = token
        self._attempts = attempts
        self._backoff = backoff
        self._timeout = timeout
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="event-forwarder", daemon=True)
        self._thread.start()

    def submit(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                EVENTS.labels("dropped").inc()
                log.warning("connector queue full: dropped audit event %s", event.get("id"))

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (within `timeout`), then stop the thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            EVENTS.labels(self._send(event)).inc()

    def _send(self, event: dict[str, Any]) -> str:
        body = json.dumps(event).encode()
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        for attempt in range(1, self._attempts + 1):
            request = urllib.request.Request(self.endpoint, body, headers, method="POST")
            try:
                # The URL comes from our own configuration (CONNECTOR_URL), http(s) only.
                with urllib.request.urlopen(request, timeout=self._timeout):  # noqa: S310
                    return "sent"
            except urllib.error.HTTPError as err:
                if err.code != 429 and err.code < 500:  # the connector refuses this event
                    log.error(
                        "connector refused audit event %s: HTTP %s", event.get("id"), err.code
                    )
                    return "refused"
                problem = f"HTTP {err.code}"
            except (OSError, ValueError) as err:  # connection refused, timeout, DNS
                problem = str(err)
            if attempt < self._attempts:
                time.sleep(self._backoff * 2 ** (attempt - 1))
        log.warning(
            "connector unreachable, audit event %s not forwarded: %s", event.get("id"), problem
        )
        return "failed"
