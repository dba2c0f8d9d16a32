from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from myapp.connector.app import create_app
from myapp.connector.config import ConnectorConfig
from myapp.connector.conftest import Receiver
from myapp.connector.delivery import Deliverer, Outcome, Result

TOKEN = "ingest-token-0123456789"


def body(resp: Any) -> dict[str, Any]:
    data = resp.get_json()
    assert isinstance(data, dict), resp.data
    return data


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def results() -> queue.Queue[Result]:
    return queue.Queue()


@pytest.fixture
def client(receiver: Receiver, results: queue.Queue[Result]) -> Iterator[FlaskClient]:
    cfg = ConnectorConfig(
        webhook_urls=(receiver.url,),
        webhook_secret="webhook-secret-0123456789",
        ingest_token=TOKEN,
        retry_base_seconds=0.01,
    )
    registry = CollectorRegistry()
    deliverer = Deliverer(cfg, registry, on_result=results.put)
    deliverer.start()
    yield create_app(cfg, deliverer, registry).test_client()
    deliverer.stop()


def test_healthz_and_metrics(client: FlaskClient) -> None:
    assert body(client.get("/healthz")) == {"status": "ok"}
    assert b"connector_queue_depth" in client.get("/metrics").data


def test_event_is_accepted_and_delivered(
    client: FlaskClient, receiver: Receiver, results: queue.Queue[Result]
) -> None:
    resp = client.post("/api/v1/events", json={"action": "auth.login", "id": 1}, headers=AUTH)
    assert resp.status_code == 202 and body(resp)["status"] == "queued"
    result = results.get(timeout=10)
    assert result.outcome is Outcome.DELIVERED
    assert result.event.delivery_id == body(resp)["delivery_id"]
    assert receiver.next().headers["X-Myapp-Event"] == "auth.login"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
def test_ingest_requires_the_token(client: FlaskClient, headers: dict[str, str]) -> None:
    resp = client.post("/api/v1/events", json={"action": "auth.login"}, headers=headers)
    assert resp.status_code == 401
    assert body(resp)["error"]["code"] == "unauthenticated"


def test_malformed_body_is_400(client: FlaskClient) -> None:
    resp = client.post(
        "/api/v1/events", data="not json", headers=AUTH, content_type="application/json"
    )
    assert resp.status_code == 400
    assert body(resp)["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    "event", [{}, {"action": ""}, {"action": "Not An Action"}, {"action": "x", "id": "seven"}]
)
def test_invalid_event_is_422_naming_the_field(client: FlaskClient, event: dict) -> None:
    resp = client.post("/api/v1/events", json=event, headers=AUTH)
    assert resp.status_code == 422
    assert body(resp)["error"]["code"] == "validation_error"
    assert set(body(resp)["error"]["details"]["fields"]) & {"action", "id"}
