"""Audit entries reach webhooks: the API posts committed entries to a real connector, which signs
and delivers them to a real HTTP receiver. Rolled-back entries never leave; committed ones wait
for a dead connector and arrive once it is back, once per entry however many processes forward."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from myapp.api.app import create_app
from myapp.api.audit.service import record
from myapp.api.config import Config, ConfigError
from myapp.api.conftest import login, make_config, serving
from myapp.api.db import dispose, utcnow
from myapp.api.events import EVENTS, WAITING, EventForwarder
from myapp.api.state import begin, commit, rollback
from myapp.api.testdb import TestDatabase
from myapp.connector.app import create_app as create_connector
from myapp.connector.config import ConnectorConfig
from myapp.connector.conftest import LOOPBACK, Receiver, receiver  # noqa: F401 - fixture
from myapp.connector.delivery import Deliverer
from myapp.connector.signing import SIGNATURE_HEADER, sign

INGEST_TOKEN = "ingest-token-for-tests-0123"  # noqa: S105
WEBHOOK_SECRET = "webhook-secret-for-tests-0123"  # noqa: S105


@contextlib.contextmanager
def _running_connector(receiver: Receiver, port: int = 0) -> Iterator[str]:  # noqa: F811
    """A real connector on loopback delivering to `receiver`; yields its base URL."""
    config = ConnectorConfig(
        webhooks=(receiver.webhook(WEBHOOK_SECRET),),
        allowed_networks=LOOPBACK,
        ingest_token=INGEST_TOKEN,
        retry_base_seconds=0.05,
    )
    registry = CollectorRegistry()
    deliverer = Deliverer(config, registry)
    try:
        with serving(create_connector(config, deliverer, registry), port) as url:
            yield url
    finally:
        deliverer.stop()


@pytest.fixture()
def connector(receiver: Receiver) -> Iterator[str]:  # noqa: F811 - the imported fixture
    with _running_connector(receiver) as url:
        yield url


def _app(backend: TestDatabase, url: str) -> Flask:
    return create_app(make_config(backend, connector_url=url, connector_token=INGEST_TOKEN))


@pytest.fixture()
def app(backend: TestDatabase, connector: str) -> Iterator[Flask]:
    application = _app(backend, connector)
    try:
        yield application
    finally:
        application.extensions["myapp"].events.stop()
        dispose(application.extensions["myapp"].db)


def _admin(client: FlaskClient, app: Flask) -> dict[str, str]:
    config = app.extensions["myapp"].config
    return login(client, config.admin_email, config.admin_password).headers


def _next_webhook(receiver: Receiver, action: str) -> dict[str, Any]:  # noqa: F811
    """The next delivered event with this action (others, e.g. the login, are skipped)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        delivered = receiver.next(timeout=max(0.1, deadline - time.monotonic()))
        body: dict[str, Any] = json.loads(delivered.body)
        if body["action"] == action:
            timestamp = int(delivered.headers["X-Myapp-Timestamp"])
            assert delivered.headers[SIGNATURE_HEADER] == sign(
                WEBHOOK_SECRET, timestamp, delivered.body
            )
            return body
    pytest.fail(f"no {action} webhook within 15 s")


def test_a_committed_change_arrives_as_a_signed_webhook(
    app: Flask, receiver: Receiver  # noqa: F811
) -> None:
    client = app.test_client()
    headers = _admin(client, app)
    created = client.post(
        "/api/v1/rules",
        headers=headers,
        json={"name": "forwarded", "source_cidr": "192.0.2.0/24", "action": "drop"},
    )
    assert created.status_code == 201, created.get_json()
    event = _next_webhook(receiver, "rule.create")
    assert event["object_type"] == "rule" and event["object_id"] == str(created.get_json()["id"])
    assert event["details"]["source_cidr"] == "192.0.2.0/24"
    # The same entry as the audit log lists it.
    audit = client.get("/api/v1/audit?action=rule.create", headers=headers).get_json()
    assert event == audit["items"][0]


def test_a_failed_logins_webhook_carries_no_typed_secret(
    app: Flask, receiver: Receiver  # noqa: F811
) -> None:
    """The webhook is the stored entry: an unknown "e-mail" (maybe a password typed into the
    wrong field) arrives only as its keyed hash, and the password not at all."""
    client = app.test_client()
    typed = {"email": "Hunter2-Passphrase", "password": "the real one, misplaced"}
    assert client.post("/api/v1/auth/login", json=typed).status_code == 401
    event = _next_webhook(receiver, "auth.login_failed")
    assert set(event["details"]) == {"email_hmac", "reason"} and event.get("actor_email") is None
    text = json.dumps(event).lower()
    assert typed["email"].lower() not in text and typed["password"] not in text


def test_a_rolled_back_entry_is_never_forwarded(
    app: Flask, receiver: Receiver  # noqa: F811 - the imported fixture
) -> None:
    with app.test_request_context("/"):
        begin()
        record("test.rolled_back", "rule", 1)
        rollback()
    with app.test_request_context("/"):
        begin()
        record("test.marker", "rule", 2)
        commit()
    delivered = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        body = json.loads(receiver.next(timeout=15).body)
        delivered.append(body["action"])
        if body["action"] == "test.marker":
            break
    assert "test.marker" in delivered and "test.rolled_back" not in delivered


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _swap_forwarder(app: Flask, **options: Any) -> EventForwarder:
    """Replace the app's forwarder with one tuned for a test (fast backoff, short lease...)."""
    st = app.extensions["myapp"]
    st.events.stop()
    st.events = EventForwarder(st.config, **options)
    return st.events


def _record_committed(app: Flask, action: str, count: int = 1) -> None:
    with app.test_request_context("/"):
        begin()
        for index in range(count):
            record(action, "rule", index)
        commit()


def _outbox_size(app: Flask) -> int:
    with app.app_context():
        d = app.extensions["myapp"].db
        return int(d(d.event_outbox).count())


def _wait_for(predicate: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_entries_wait_for_a_dead_connector_and_arrive_when_it_is_back(
    backend: TestDatabase, receiver: Receiver  # noqa: F811
) -> None:
    port = _closed_port()
    app = _app(backend, f"http://127.0.0.1:{port}")
    _swap_forwarder(app, backoff=0.05, max_backoff=0.2)
    failed = EVENTS.labels("failed")._value.get()
    try:
        client = app.test_client()
        headers = _admin(client, app)
        started = time.monotonic()
        created = client.post(
            "/api/v1/rules",
            headers=headers,
            json={"name": "held back", "source_cidr": "198.51.100.0/24", "action": "drop"},
        )
        assert created.status_code == 201
        assert time.monotonic() - started < 1.0  # the attempts run in the background
        assert _wait_for(lambda: EVENTS.labels("failed")._value.get() >= failed + 3)
        assert _outbox_size(app) >= 1  # kept, not dropped, however many attempts failed
        assert _wait_for(lambda: WAITING._value.get() >= 1)  # and operators can see it wait
        with _running_connector(receiver, port):
            event = _next_webhook(receiver, "rule.create")
            assert event["object_id"] == str(created.get_json()["id"])
            assert _wait_for(lambda: _outbox_size(app) == 0)
            assert _wait_for(lambda: WAITING._value.get() == 0)
    finally:
        app.extensions["myapp"].events.stop(timeout=1)
        dispose(app.extensions["myapp"].db)


def test_a_webhook_down_longer_than_the_connectors_retries_still_gets_the_entry(
    app: Flask, receiver: Receiver  # noqa: F811
) -> None:
    # The connector tries 6 times per request, then answers 503: the API keeps the entry.
    receiver.script.extend([(503, {})] * 8)
    failed = EVENTS.labels("failed")._value.get()
    _record_committed(app, "test.patient")
    assert _wait_for(lambda: _outbox_size(app) == 0, timeout=30)
    assert EVENTS.labels("failed")._value.get() >= failed + 1  # one round came back 503
    assert _wait_for(lambda: receiver.requests.qsize() >= 9)  # it records after answering
    attempts = []
    while not receiver.requests.empty():
        body = json.loads(receiver.requests.get().body)
        if body["action"] == "test.patient":
            attempts.append(body)
    # 6 refused in the first round, 2 more in the second, then taken: 9 posts of one entry.
    assert len(attempts) == 9 and all(a == attempts[0] for a in attempts)


def test_two_processes_forward_each_entry_once(
    backend: TestDatabase, connector: str, receiver: Receiver  # noqa: F811
) -> None:
    first, second = _app(backend, connector), _app(backend, connector)
    try:
        _record_committed(first, "test.shared", 40)
        # Both forwarders look at once; the leases let only one of them take each row.
        first.extensions["myapp"].events.wake()
        second.extensions["myapp"].events.wake()
        assert _wait_for(lambda: _outbox_size(first) == 0)
        seen: list[str] = []
        while True:
            try:
                body = json.loads(receiver.next(timeout=2).body)
            except queue.Empty:
                break
            if body["action"] == "test.shared":
                seen.append(body["object_id"])
        assert sorted(seen, key=int) == [str(i) for i in range(40)]
    finally:
        for application in (first, second):
            application.extensions["myapp"].events.stop()
            dispose(application.extensions["myapp"].db)


def test_a_dead_claimers_entries_are_sent_when_its_lease_runs_out(
    app: Flask, receiver: Receiver  # noqa: F811
) -> None:
    forwarder = _swap_forwarder(app, poll_seconds=0.2)  # it finds the lease over by polling
    d = app.extensions["myapp"].db
    with app.test_request_context("/"):
        begin()
        record("test.orphaned", "rule", 1)
        entry = d(d.audit_log.action == "test.orphaned").select(d.audit_log.id).last()
        # As if another process had claimed the row and died before sending it.
        d(d.event_outbox.audit_id == entry.id).update(claimed_until=utcnow() + timedelta(seconds=4))
        commit()
    forwarder.wake()
    time.sleep(0.5)
    assert _outbox_size(app) == 1  # still leased: not sent twice while its claimer may live
    event = _next_webhook(receiver, "test.orphaned")
    assert event["object_type"] == "rule"
    assert _wait_for(lambda: _outbox_size(app) == 0)


def test_an_invalid_entry_is_refused_and_dropped_and_a_failing_one_given_up_on(
    backend: TestDatabase, connector: str, receiver: Receiver  # noqa: F811
) -> None:
    app = _app(backend, connector)
    refused = EVENTS.labels("refused")._value.get()
    try:
        # The real connector rejects this action name (422): sending it again cannot help.
        _record_committed(app, "Not A Valid Action")
        assert _wait_for(lambda: EVENTS.labels("refused")._value.get() == refused + 1)
        assert _wait_for(lambda: _outbox_size(app) == 0)
    finally:
        app.extensions["myapp"].events.stop()
        dispose(app.extensions["myapp"].db)
    # A connector that fails on one entry with a 500 every time (the receiver stands in for
    # it): the entry is given up on after max_attempts, and the next one goes through.
    receiver.script.extend([(500, {})] * 3)
    app = create_app(make_config(backend, connector_url=receiver.url, connector_token=INGEST_TOKEN))
    dropped = EVENTS.labels("dropped")._value.get()
    try:
        _swap_forwarder(app, backoff=0.01, max_backoff=0.05, max_attempts=3)
        _record_committed(app, "test.poison")
        _record_committed(app, "test.after_poison")
        assert _wait_for(lambda: _outbox_size(app) == 0)
        assert EVENTS.labels("dropped")._value.get() == dropped + 1
        actions = []
        while not receiver.requests.empty():
            actions.append(json.loads(receiver.requests.get().body)["action"])
        actions = [action for action in actions if action.startswith("test.")]
        assert actions == ["test.poison"] * 3 + ["test.after_poison"]
    finally:
        app.extensions["myapp"].events.stop()
        dispose(app.extensions["myapp"].db)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CONNECTOR_URL": "ftp://connector"}, "CONNECTOR_URL must be an http"),
        ({"CONNECTOR_URL": "http://c:5050", "CONNECTOR_INGEST_TOKEN": "short"}, "16 characters"),
        (
            {
                "APP_ENV": "production",
                "JWT_SECRET": "x" * 40,
                "ADMIN_PASSWORD": "a-production-password",
                "CONNECTOR_URL": "http://connector:5050",
            },
            "CONNECTOR_INGEST_TOKEN is required",
        ),
    ],
)
def test_connector_settings_are_validated(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_env({"APP_ENV": "development", **env})


def test_without_connector_url_nothing_is_forwarded() -> None:
    assert Config.from_env({"APP_ENV": "development"}).connector_url is None
