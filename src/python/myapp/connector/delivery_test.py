from __future__ import annotations

import json
import logging
import socket
import ssl
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from myapp.common import pki
from myapp.connector import delivery
from myapp.connector.config import ConnectorConfig, Webhook
from myapp.connector.conftest import LOOPBACK, Receiver, receiving
from myapp.connector.delivery import Deliverer, Event, Outcome
from myapp.connector.signing import verify

SECRET = "webhook-secret-0123456789"


def config(*webhooks: Webhook, attempts: int = 4, allowed: bool = True) -> ConnectorConfig:
    return ConnectorConfig(
        webhooks=webhooks,
        allowed_networks=LOOPBACK if allowed else (),
        max_attempts=attempts,
        retry_base_seconds=0.01,
        timeout_seconds=2.0,
    )


def deliver(receiver: Receiver, attempts: int = 4) -> delivery.Result:
    hook = receiver.webhook(SECRET)
    return Deliverer(config(hook, attempts=attempts), CollectorRegistry()).deliver(event(), hook)


def event(action: str = "rule.create") -> Event:
    return Event.from_payload({"action": action, "id": 7, "object_type": "rule"})


def test_delivers_signed_event(receiver: Receiver) -> None:
    hook = receiver.webhook(SECRET)
    ev = event()
    result = Deliverer(config(hook), CollectorRegistry()).deliver(ev, hook)
    assert (result.outcome, result.attempts, result.status) == (Outcome.DELIVERED, 1, 200)
    got = receiver.next()
    assert json.loads(got.body) == {"action": "rule.create", "id": 7, "object_type": "rule"}
    assert got.headers["X-Myapp-Event"] == "rule.create"
    assert got.headers["X-Myapp-Delivery"] == ev.delivery_id
    ts = int(got.headers["X-Myapp-Timestamp"])
    assert verify(SECRET, ts, got.body, got.headers["X-Myapp-Signature"], now=int(time.time()))


def test_retries_server_errors_with_the_same_delivery_id(receiver: Receiver) -> None:
    receiver.script = [(500, {}), (503, {}), (429, {"Retry-After": "0"})]
    result = deliver(receiver)
    assert (result.outcome, result.attempts) == (Outcome.DELIVERED, 4)
    ids = {receiver.next().headers["X-Myapp-Delivery"] for _ in range(4)}
    assert len(ids) == 1


def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    receiver.script = [(410, {})]
    result = deliver(receiver)
    assert (result.outcome, result.attempts, result.status) == (Outcome.REJECTED, 1, 410)


def test_gives_up_after_max_attempts(receiver: Receiver) -> None:
    receiver.script = [(502, {})] * 10
    result = deliver(receiver, attempts=3)
    assert (result.outcome, result.attempts, result.status) == (Outcome.EXHAUSTED, 3, 502)


def test_connection_refused_is_retried_then_exhausted() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        hook = Webhook("down", f"http://127.0.0.1:{s.getsockname()[1]}/hook", SECRET)
    result = Deliverer(config(hook, attempts=2), CollectorRegistry()).deliver(event(), hook)
    assert (result.outcome, result.attempts, result.status) == (Outcome.EXHAUSTED, 2, None)


def test_delivers_to_every_webhook_and_skips_those_that_have_it_on_a_resend(
    receiver: Receiver,
) -> None:
    registry = CollectorRegistry()
    first = receiver.webhook(SECRET, "first")
    second = receiver.webhook(SECRET + "-2", "second", "/hook2")
    receiver.script = [(200, {}), (503, {})]  # the second webhook is down for this request
    deliverer = Deliverer(config(first, second, attempts=1), registry)
    results = deliverer.deliver_everywhere(event("user.create"))
    assert [(r.webhook, r.outcome) for r in results] == [
        (first, Outcome.DELIVERED),
        (second, Outcome.EXHAUSTED),
    ]
    # The sender sends the event again: only the webhook that missed it gets it now.
    results = deliverer.deliver_everywhere(event("user.create"))
    assert [(r.webhook, r.outcome) for r in results] == [(second, Outcome.DELIVERED)]
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
        webhooks=(receiver.webhook(SECRET),),
        allowed_networks=LOOPBACK,
        max_attempts=20,
        retry_base_seconds=0.05,
        timeout_seconds=2,
    )
    started = time.monotonic()
    (result,) = Deliverer(cfg, CollectorRegistry()).deliver_everywhere(event())
    assert result.outcome is Outcome.EXHAUSTED and 1 < result.attempts < 20
    assert time.monotonic() - started < 2


def test_each_webhook_has_its_own_signing_secret(receiver: Receiver) -> None:
    hooks = {
        "/hook": receiver.webhook("first-secret-0123456789", "first"),
        "/hook2": receiver.webhook("second-secret-0123456789", "second", "/hook2"),
    }
    deliverer = Deliverer(config(*hooks.values()), CollectorRegistry())
    assert [r.outcome for r in deliverer.deliver_everywhere(event())] == [Outcome.DELIVERED] * 2
    for _ in hooks:
        got = receiver.next()
        ts, signature = int(got.headers["X-Myapp-Timestamp"]), got.headers["X-Myapp-Signature"]
        for path, hook in hooks.items():
            # What one receiver knows does not sign for the other.
            valid = verify(hook.secret, ts, got.body, signature, now=int(time.time()))
            assert valid is (path == got.path)


def test_a_redirect_is_not_followed(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    with receiving() as elsewhere:
        receiver.script = [(302, {"Location": elsewhere.url + "?token=from-the-receiver"})]
        registry = CollectorRegistry()
        hook = receiver.webhook(SECRET)
        (result,) = Deliverer(config(hook), registry).deliver_everywhere(event())
        assert (result.outcome, result.attempts, result.status) == (Outcome.REDIRECTED, 1, 302)
        receiver.next()
        time.sleep(0.2)  # a follow-up would have been sent by now
        assert elsewhere.requests.empty()
    assert registry.get_sample_value("connector_deliveries_total", {"outcome": "redirected"}) == 1
    assert "redirects are not followed" in caplog.text
    assert "from-the-receiver" not in caplog.text


def test_a_loopback_webhook_is_blocked_unless_allowed(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    hook = receiver.webhook(SECRET)
    result = Deliverer(config(hook, allowed=False), CollectorRegistry()).deliver(event(), hook)
    assert (result.outcome, result.attempts, result.status) == (Outcome.BLOCKED, 1, None)
    assert "127.0.0.1 (loopback)" in caplog.text
    assert receiver.requests.empty()
    result = Deliverer(config(hook, allowed=True), CollectorRegistry()).deliver(event(), hook)
    assert result.outcome is Outcome.DELIVERED and receiver.next().path == "/hook"


def test_a_name_that_resolves_to_a_private_address_is_blocked(receiver: Receiver) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    hook = Webhook("named", f"http://hooks.internal.example:{port}/hook", SECRET)
    deliverer = Deliverer(
        config(hook, allowed=False), CollectorRegistry(), resolver=lambda host, port: ["10.1.2.3"]
    )
    assert deliverer.deliver(event(), hook).outcome is Outcome.BLOCKED


def test_logs_show_webhook_urls_without_credentials_or_query(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=delivery.__name__)
    user_url = receiver.url.replace("://", "://alice:hunter2-password@") + "?token=tok-in-query"
    hook = Webhook("with-credentials", user_url, SECRET)
    receiver.script = [(503, {}), (410, {})]
    result = Deliverer(config(hook, attempts=2), CollectorRegistry()).deliver(event(), hook)
    assert result.outcome is Outcome.REJECTED
    assert receiver.next().path == "/hook?token=tok-in-query"  # the receiver does get them
    port = receiver.url.split(":")[2].split("/")[0]
    assert f"with-credentials (http://***@127.0.0.1:{port}/hook?***) refused" in caplog.text
    assert "hunter2" not in caplog.text and "tok-in-query" not in caplog.text


def _hooks_test_is_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"] if host == "hooks.test" else []


def test_https_goes_to_the_vetted_address_with_the_hostname_for_sni_and_the_certificate(
    tmp_path: Path,
) -> None:
    ca = pki.make_ca("webhook test CA")
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(ca.cert_pem())
    outcomes = {}
    for certified in ("hooks.test", "someone-else.test"):
        leaf = pki.issue(ca, certified, dns_names=[certified], server=True)
        (tmp_path / "tls.crt").write_bytes(leaf.cert_pem())
        (tmp_path / "tls.key").write_bytes(leaf.key_pem())
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
        with receiving(tls) as receiver:
            hook = Webhook("tls", receiver.url.replace("127.0.0.1", "hooks.test"), SECRET)
            cfg = ConnectorConfig(
                webhooks=(hook,), allowed_networks=LOOPBACK, ca_bundle=str(bundle), max_attempts=1
            )
            deliverer = Deliverer(cfg, CollectorRegistry(), resolver=_hooks_test_is_loopback)
            outcomes[certified] = deliverer.deliver(event(), hook).outcome
            assert receiver.server_names == ["hooks.test"]
            if certified == "hooks.test":
                assert receiver.next().headers["Host"] == hook.url.split("/")[2]
    # The certificate is checked against the hostname, not the address connected to.
    assert outcomes == {"hooks.test": Outcome.DELIVERED, "someone-else.test": Outcome.EXHAUSTED}
