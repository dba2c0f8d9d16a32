"""Deliver events to webhooks while the sender waits: the answer says whether they arrived.

The connector keeps nothing: `POST /api/v1/events` posts the event to every webhook before it
answers, and answers 503 when one could not take it. The sender (the API's outbox) keeps the event
and sends it again later, so nothing is lost to a restart of this service or to a receiver that is
down for longer than the retries below. Webhooks that already took an event are not posted it
again when it comes back (remembered per process, for the last `REMEMBERED` events).

Per webhook, a delivery is retried on connection errors, timeouts, 408/425/429 and 5xx answers,
waiting ``retry_base * 2**(attempt-1)`` seconds (capped; a longer ``Retry-After`` is honoured), up
to ``max_attempts`` tries, within `REQUEST_BUDGET_SECONDS` for the whole request. Any other 4xx is
the receiver refusing the event: not retried, and not a reason to send it again.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from prometheus_client import CollectorRegistry, Counter

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
REQUEST_BUDGET_SECONDS = 25.0  # retries stop here; the sender's own timeout is longer (API: 120 s)
REMEMBERED = 10_000  # (delivery id, webhook) pairs known delivered, to skip on a re-send
_DELIVERY_NAMESPACE = uuid.UUID("9d1d1c55-6a2e-4a43-8f3c-1f3c5a1c0e51")


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    REJECTED = "rejected"  # the receiver answered a non-retryable 4xx
    EXHAUSTED = "exhausted"  # every attempt (or the time for them) ran out
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
        # The same audit entry sent again keeps its delivery id (receivers deduplicate on it):
        # derived from the whole entry, so another entry with a reused id (a database started
        # afresh) is a new delivery. An event without an id is always new.
        delivery_id = (
            str(uuid.uuid5(_DELIVERY_NAMESPACE, body.decode()))
            if payload.get("id") is not None
            else str(uuid.uuid4())
        )
        return cls(delivery_id=delivery_id, action=str(payload["action"]), body=body)


@dataclass(frozen=True)
class Result:
    event: Event
    url: str
    outcome: Outcome
    attempts: int
    status: int | None  # last HTTP status, None after a connection error


class Deliverer:
    """Posts each event to every configured webhook, with retries, in the caller's thread."""

    def __init__(
        self,
        config: ConnectorConfig,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._stop = threading.Event()
        self._session = requests.Session()
        self._clock = clock
        self._delivered: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._delivered_lock = threading.Lock()
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
        self._received = Counter(
            "connector_events_received", "Valid events received from the API", registry=registry
        )

    def stop(self) -> None:
        """Cut retry waits short (those deliveries end ABORTED: their senders will retry)."""
        self._stop.set()
        self._session.close()

    def deliver_everywhere(self, event: Event) -> list[Result]:
        """Deliver `event` to every webhook that has not taken it yet (all within the budget)."""
        self._received.inc()
        deadline = time.monotonic() + REQUEST_BUDGET_SECONDS
        results = []
        for url in self._config.webhook_urls:
            key = (event.delivery_id, url)
            with self._delivered_lock:
                if key in self._delivered:
                    continue  # a re-send: this webhook has it already
            result = self.deliver(event, url, deadline)
            self._deliveries.labels(result.outcome.value).inc()
            if result.outcome in (Outcome.DELIVERED, Outcome.REJECTED):
                with self._delivered_lock:
                    self._delivered[key] = None
                    while len(self._delivered) > REMEMBERED:
                        self._delivered.popitem(last=False)
            results.append(result)
        return results

    def deliver(self, event: Event, url: str, deadline: float | None = None) -> Result:
        """Post `event` to `url` until it is accepted, refused, or the attempts or time run out."""
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
            if deadline is not None and time.monotonic() + delay > deadline:
                break  # out of time: the sender tries again later
            if self._stop.wait(delay):
                return Result(event, url, Outcome.ABORTED, attempt, status)
        log.warning("webhook %s: gave up on %s after %d attempts", url, event.delivery_id, attempt)
        return Result(event, url, Outcome.EXHAUSTED, attempt, status)

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
