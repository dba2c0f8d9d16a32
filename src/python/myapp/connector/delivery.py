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

Redirects are never followed (a 3xx could point anywhere, past the egress rules): a 3xx ends the
delivery to that webhook at once as ``redirected`` and so does a destination the egress rules
refuse (``blocked``, see egress.py). Trying again soon would meet the same answer, but both are
configuration to fix rather than events to drop: like an exhausted delivery they make the answer
503, so the sender keeps the event until the webhook is fixed (or its own retries end).
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from prometheus_client import CollectorRegistry, Counter

from myapp.connector.config import ConnectorConfig, Webhook, redact
from myapp.connector.egress import (
    AddressGuard,
    BlockedDestination,
    Resolver,
    guarded_session,
    system_resolver,
)
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
    REDIRECTED = "redirected"  # the webhook answered 3xx: its URL needs fixing
    BLOCKED = "blocked"  # the egress rules refuse the webhook's address


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
    webhook: Webhook
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
        resolver: Resolver | None = None,
    ) -> None:
        self._config = config
        self._stop = threading.Event()
        guard = AddressGuard(config.allowed_networks, resolver or system_resolver)
        self._session = guarded_session(guard)
        if config.ca_bundle is not None:
            self._session.verify = config.ca_bundle
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
            "HTTP attempts by result (status code, 'error' or 'blocked')",
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
        for webhook in self._config.webhooks:
            key = (event.delivery_id, webhook.name)
            with self._delivered_lock:
                if key in self._delivered:
                    continue  # a re-send: this webhook has it already
            result = self.deliver(event, webhook, deadline)
            self._deliveries.labels(result.outcome.value).inc()
            if result.outcome in (Outcome.DELIVERED, Outcome.REJECTED):
                with self._delivered_lock:
                    self._delivered[key] = None
                    while len(self._delivered) > REMEMBERED:
                        self._delivered.popitem(last=False)
            results.append(result)
        return results

    def deliver(self, event: Event, webhook: Webhook, deadline: float | None = None) -> Result:
        """Post `event` to `webhook` until it is accepted, refused, or attempts or time run out."""
        cfg = self._config
        status: int | None = None
        for attempt in range(1, cfg.max_attempts + 1):
            try:
                status, headers = self._post(event, webhook)
            except BlockedDestination as e:
                self._attempts.labels("blocked").inc()
                log.error(
                    "webhook %s: not delivering %s: %s", webhook.display, event.delivery_id, e
                )
                return Result(event, webhook, Outcome.BLOCKED, attempt, None)
            if status is not None and 200 <= status < 300:
                return Result(event, webhook, Outcome.DELIVERED, attempt, status)
            if status is not None and 300 <= status < 400:
                location = headers.get("Location")
                log.error(
                    "webhook %s answered %s (to %s) for %s: redirects are not followed",
                    webhook.display,
                    status,
                    redact(location) if location else "nowhere",
                    event.delivery_id,
                )
                return Result(event, webhook, Outcome.REDIRECTED, attempt, status)
            retryable = status is None or status in RETRYABLE_STATUS or status >= 500
            if not retryable:
                log.warning(
                    "webhook %s refused %s with %s", webhook.display, event.delivery_id, status
                )
                return Result(event, webhook, Outcome.REJECTED, attempt, status)
            if attempt == cfg.max_attempts:
                break
            delay = min(cfg.retry_base_seconds * 2 ** (attempt - 1), cfg.retry_max_seconds)
            retry_after = _retry_after_seconds(headers.get("Retry-After"))
            if retry_after is not None:
                delay = min(max(delay, retry_after), cfg.retry_max_seconds)
            if deadline is not None and time.monotonic() + delay > deadline:
                break  # out of time: the sender tries again later
            if self._stop.wait(delay):
                return Result(event, webhook, Outcome.ABORTED, attempt, status)
        log.warning(
            "webhook %s: gave up on %s after %d attempts",
            webhook.display,
            event.delivery_id,
            attempt,
        )
        return Result(event, webhook, Outcome.EXHAUSTED, attempt, status)

    def _post(self, event: Event, webhook: Webhook) -> tuple[int | None, Mapping[str, str]]:
        """One attempt: the status (None after a connection error) and the answer's headers."""
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: event.action,
            DELIVERY_HEADER: event.delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(webhook.secret, timestamp, event.body),
        }
        try:
            resp = self._session.post(
                webhook.url,
                data=event.body,
                headers=headers,
                timeout=self._config.timeout_seconds,
                allow_redirects=False,
            )
        except requests.RequestException as e:
            self._attempts.labels("error").inc()
            # The exception's text holds the URL's path and query: only its type is logged.
            log.info("webhook %s: %s (%s)", webhook.display, type(e).__name__, event.delivery_id)
            return None, {}
        self._attempts.labels(str(resp.status_code)).inc()
        return resp.status_code, resp.headers


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is ignored)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
