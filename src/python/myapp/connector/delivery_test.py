from __future__ import annotations

import json
import socket
import time

import pytest
from prometheus_client import CollectorRegistry

from myapp.connector import delivery
from myapp.connector.config import ConnectorConfig
from myapp.connector.conftest import Receiver
from myapp.connector.delivery import Deliverer, Event, Outcome
from myapp.connector.signing import verify

SECRET = "webhook-secret-0123456789"


def config(*urls: str, attempts: int = 4) -> ConnectorConfig:
    return ConnectorConfig(
        webhook_urls=urls,
        webhook_secret=SECRET,
        max_attempts=attempts,
        retry_base_seconds=0.01,
        timeout_seconds=2.0,
    )


def event(action: str = "rule.create") -> Event:
    return Event.from_payload({"action": action, "id": 7, "object_type": "rule"})


def test_delivers_signed_event(receiver: Receiver) -> None:
    deliverer = Deliverer(config(receiver.url), CollectorRegistry())
    ev = event()
    result = deliverer.deliver(ev, receiver.url)
    assert (result.outcome, result.attempts, result.status) == (Outcome.DELIVERED, 1, 200)
    got = receiver.next()
    assert json.loads(got.body) == {"action": "rule.create", "id": 7, "object_type": "rule"}
    assert got.headers["X-Myapp-Event"] == "rule.create"
    assert got.headers["X-Myapp-Delivery"] == ev.delivery_id
    ts = int(got.headers["X-Myapp-Timestamp"])
    assert verify(SECRET, ts, got.body, got.headers["X-Myapp-Signature"], now=int(time.time()))


def test_retries_server_errors_with_the_same_delivery_id(receiver: Receiver) -> None:
    receiver.script = [(500, {}), (503, {}), (429, {"Retry-After": "0"})]
    result = Deliverer(config(receiver.url), CollectorRegistry()).deliver(event(), receiver.url)
    assert (result.outcome, result.attempts) == (Outcome.DELIVERED, 4)
    ids = {receiver.next().headers["X-Myapp-Delivery"] for _ in range(4)}
    assert len(ids) == 1


def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    receiver.script = [(410, {})]
    result = Deliverer(config(receiver.url), CollectorRegistry()).deliver(event(), receiver.url)
    assert (result.outcome, result.attempts, result.status) == (Outcome.REJECTED, 1, 410)


def test_gives_up_after_max_attempts(receiver: Receiver) -> None:
    receiver.script = [(502, {})] * 10
    deliverer = Deliverer(config(receiver.url, attempts=3), CollectorRegistry())
    result = deliverer.deliver(event(), receiver.url)
    assert (result.outcome, result.attempts, result.status) == (Outcome.EXHAUSTED, 3, 502)


def test_connection_refused_is_retried_then_exhausted() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    result = Deliverer(config(url, attempts=2), CollectorRegistry()).deliver(event(), url)
    assert (result.outcome, result.attempts, result.status) == (Outcome.EXHAUSTED, 2, None)


def test_delivers_to_every_webhook_and_skips_those_that_have_it_on_a_resend(
    receiver: Receiver,
) -> None:
    registry = CollectorRegistry()
    first, second = receiver.url, receiver.url + "2"
    receiver.script = [(200, {}), (503, {})]  # the second webhook is down for this request
    deliverer = Deliverer(config(first, second, attempts=1), registry)
    results = deliverer.deliver_everywhere(event("user.create"))
    assert [(r.url, r.outcome) for r in results] == [
        (first, Outcome.DELIVERED),
        (second, Outcome.EXHAUSTED),
    ]
    # The sender sends the event again: only the webhook that missed it gets it now.
    results = deliverer.deliver_everywhere(event("user.create"))
    assert [(r.url, r.outcome) for r in results] == [(second, Outcome.DELIVERED)]
    paths = [receiver.next().path for _ in range(3)]
    assert sorted(paths) == ["/hook", "/hook2", "/hook2"]
    assert registry.get_sample_value("connector_deliveries_total", {"outcome": "delivered"}) == 2
    assert registry.get_sample_value("connector_deliveries_total", {"outcome": "exhausted"}) == 1


def test_the_same_entry_keeps_its_delivery_id() -> None:
    assert event().delivery_id == event().delivery_id  # receivers deduplicate on it
    assert event().delivery_id != Event.from_payload({"action": "rule.create", "id": 8}).delivery_id
    # The same id on another entry (a fresh database) is another delivery.
    reused = Event.from_payload({"action": "rule.delete", "id": 7, "object_type": "rule"})
    assert reused.delivery_id != event().delivery_id
    assert (
        Event.from_payload({"action": "x"}).delivery_id
        != Event.from_payload({"action": "x"}).delivery_id
    )


def test_retries_stop_at_the_request_budget(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "REQUEST_BUDGET_SECONDS", 0.3)
    receiver.script = [(503, {"Retry-After": "0.2"})] * 20
    cfg = ConnectorConfig(
        webhook_urls=(receiver.url,),
        webhook_secret=SECRET,
        max_attempts=20,
        retry_base_seconds=0.05,
        timeout_seconds=2,
    )
    started = time.monotonic()
    (result,) = Deliverer(cfg, CollectorRegistry()).deliver_everywhere(event())
    assert result.outcome is Outcome.EXHAUSTED and 1 < result.attempts < 20
    assert time.monotonic() - started < 2
