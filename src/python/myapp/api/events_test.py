"""Audit entries reach webhooks: the API posts committed entries to a real connector, which signs
and delivers them to a real HTTP receiver; rolled-back entries and a dead connector never hurt."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry
from werkzeug.serving import make_server  # pants: no-infer-dep (Flask brings werkzeug)

from myapp.api.app import create_app
from myapp.api.audit.service import record
from myapp.api.config import Config, ConfigError
from myapp.api.conftest import login, make_config
from myapp.api.db import dispose
from myapp.api.events import EVENTS
from myapp.api.state import begin, commit, rollback
from myapp.api.testdb import TestDatabase
from myapp.connector.app import create_app as create_connector
from myapp.connector.config import ConnectorConfig
from myapp.connector.conftest import Receiver, receiver  # noqa: F401 - fixture used below
from myapp.connector.delivery import Deliverer
from myapp.connector.signing import SIGNATURE_HEADER, sign

INGEST_TOKEN = "ingest-token-for-tests-0123"  # noqa: S105
WEBHOOK_SECRET = "webhook-secret-for-tests-0123"  # noqa: S105


@pytest.fixture()
def connector(receiver: Receiver) -> Iterator[str]:  # noqa: F811 - the imported fixture
    """A real connector on loopback delivering to `receiver`; yields its base URL."""
    config = ConnectorConfig(
        webhook_urls=(receiver.url,),
        webhook_secret=WEBHOOK_SECRET,
        ingest_token=INGEST_TOKEN,
        retry_base_seconds=0.05,
    )
    registry = CollectorRegistry()
    deliverer = Deliverer(config, registry)
    server = make_server(
        "127.0.0.1", 0, create_connector(config, deliverer, registry), threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    deliverer.start()
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        deliverer.stop()


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


def test_a_dead_connector_does_not_slow_requests(backend: TestDatabase) -> None:
    app = _app(backend, f"http://127.0.0.1:{_closed_port()}")
    failed = EVENTS.labels("failed")._value.get()
    try:
        client = app.test_client()
        headers = _admin(client, app)
        started = time.monotonic()
        created = client.post(
            "/api/v1/rules",
            headers=headers,
            json={"name": "unforwarded", "source_cidr": "198.51.100.0/24", "action": "drop"},
        )
        assert created.status_code == 201
        assert time.monotonic() - started < 1.0  # the retries run in the background
        deadline = time.monotonic() + 20
        while EVENTS.labels("failed")._value.get() < failed + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert EVENTS.labels("failed")._value.get() >= failed + 1
    finally:
        app.extensions["myapp"].events.stop(timeout=0.1)
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
        Config.from_env(env)


def test_without_connector_url_nothing_is_forwarded() -> None:
    assert Config.from_env({}).connector_url is None
