"""Deliver events to webhooks: one worker thread, bounded in-memory queue, retries with backoff.

A delivery is retried on connection errors, timeouts, 408/425/429 and 5xx answers, waiting
``retry_base * 2**(attempt-1)`` seconds (capped; a ``Retry-After`` header is honoured when longer),
up to ``max_attempts`` tries. Any other 4xx is the receiver refusing the event: not retried.
Events wait in memory only: the API's outbox lets go of an entry once this service answered 202,
so a restart here loses what was accepted but not yet delivered (the database's audit log keeps
every entry).
"""

from __future__ import annotations

import enum
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge

from myapp.connector.config import ConnectorConfig
from myapp.connector.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429})


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    REJECTED = "rejected"  # the receiver answered a non-retryable 4xx
    EXHAUSTED = "exhausted"  # every attempt failed
    ABORTED = "aborted"  # the connector stopped while waiting to retry


@dataclass(frozen=True)
class Event:
    """One audit event as it will be posted: the body is fixed, so retries carry the same bytes."""

    delivery_id: str
    action: str
    body: bytes

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Event:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return cls(delivery_id=str(uuid.uuid4()), action=str(payload["action"]), body=body)


@dataclass(frozen=True)
class Result:
    event: Event
    url: str
    outcome: Outcome
    attempts: int
    status: int | None  # last HTTP status, None after a connection error


class Deliverer:
    """Queue events and post each to every configured webhook from a background thread."""

    def __init__(
        self,
        config: ConnectorConfig,
        registry: CollectorRegistry,
        *,
        on_result: Callable[[Result], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._queue: queue.Queue[Event] = queue.Queue(maxsize=config.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self._on_result = on_result
        self._clock = clock
        self._deliveries = Counter(
            "connector_deliveries",
            "Webhook deliveries by final outcome",
            ["outcome"],
            registry=registry,
        )
        self._attempts = Counter(
            "connector_delivery_attempts",
            "HTTP attempts by result (status code or 'error')",
            ["result"],
            registry=registry,
        )
        self._accepted = Counter(
            "connector_events_accepted", "Events accepted for delivery", registry=registry
        )
        self._dropped = Counter(
            "connector_events_dropped",
            "Events refused because the queue was full",
            registry=registry,
        )
        Gauge(
            "connector_queue_depth", "Events waiting for delivery", registry=registry
        ).set_function(self._queue.qsize)

    def submit(self, event: Event) -> bool:
        """Queue `event`; False when the queue is full (the caller should answer 503)."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._dropped.inc()
            return False
        self._accepted.inc()
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-delivery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the event in flight (no further retries) and stop the worker."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        left = self._queue.qsize()
        if left:
            log.warning("stopping with %d undelivered event(s) in the queue", left)
        self._session.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            for url in self._config.webhook_urls:
                result = self.deliver(event, url)
                self._deliveries.labels(result.outcome.value).inc()
                if self._on_result is not None:
                    self._on_result(result)
            self._queue.task_done()

    def deliver(self, event: Event, url: str) -> Result:
        """Post `event` to `url` until it is accepted, refused, or the attempts run out."""
        cfg = self._config
        status: int | None = None
        for attempt in range(1, cfg.max_attempts + 1):
            status, retry_after = self._post(event, url)
            if status is not None and 200 <= status < 300:
                return Result(event, url, Outcome.DELIVERED, attempt, status)
            retryable = status is None or status in RETRYABLE_STATUS or status >= 500
            if not retryable:
                log.warning("webhook %s refused %s with %s", url, event.delivery_id, status)
                return Result(event, url, Outcome.REJECTED, attempt, status)
            if attempt == cfg.max_attempts:
                break
            delay = min(cfg.retry_base_seconds * 2 ** (attempt - 1), cfg.retry_max_seconds)
            if retry_after is not None:
                delay = min(max(delay, retry_after), cfg.retry_max_seconds)
            if self._stop.wait(delay):
                return Result(event, url, Outcome.ABORTED, attempt, status)
        log.error("webhook %s: gave up on %s after %d attempts", url, event.delivery_id, attempt)
        return Result(event, url, Outcome.EXHAUSTED, cfg.max_attempts, status)

    def _post(self, event: Event, url: str) -> tuple[int | None, float | None]:
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: event.action,
            DELIVERY_HEADER: event.delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if self._config.webhook_secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._config.webhook_secret, timestamp, event.body)
        try:
            resp = self._session.post(
                url, data=event.body, headers=headers, timeout=self._config.timeout_seconds
            )
        except requests.RequestException as e:
            self._attempts.labels("error").inc()
            log.info("webhook %s: %s (%s)", url, type(e).__name__, event.delivery_id)
            return None, None
        self._attempts.labels(str(resp.status_code)).inc()
        return resp.status_code, _retry_after_seconds(resp.headers.get("Retry-After"))


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is ignored)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
