from __future__ import annotations

import json
import queue
import socket
import time

from prometheus_client import CollectorRegistry

from myapp.connector.config import ConnectorConfig
from myapp.connector.conftest import Receiver
from myapp.connector.delivery import Deliverer, Event, Outcome, Result
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


def test_worker_delivers_queued_events_to_every_webhook(receiver: Receiver) -> None:
    results: queue.Queue[Result] = queue.Queue()
    registry = CollectorRegistry()
    deliverer = Deliverer(config(receiver.url, receiver.url + "2"), registry, on_result=results.put)
    deliverer.start()
    try:
        assert deliverer.submit(event("user.create"))
        got = [results.get(timeout=10) for _ in range(2)]
    finally:
        deliverer.stop()
    assert {r.url for r in got} == {receiver.url, receiver.url + "2"}
    assert all(r.outcome is Outcome.DELIVERED for r in got)
    assert registry.get_sample_value("connector_deliveries_total", {"outcome": "delivered"}) == 2


def test_full_queue_refuses(receiver: Receiver) -> None:
    cfg = ConnectorConfig(webhook_urls=(receiver.url,), webhook_secret=SECRET, queue_size=1)
    deliverer = Deliverer(cfg, CollectorRegistry())  # not started: nothing drains the queue
    assert deliverer.submit(event())
    assert not deliverer.submit(event())
