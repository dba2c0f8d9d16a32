from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from myapp.connector.app import create_app
from myapp.connector.config import ConnectorConfig
from myapp.connector.conftest import LOOPBACK, Receiver
from myapp.connector.delivery import Deliverer

TOKEN = "ingest-token-0123456789"


def body(resp: Any) -> dict[str, Any]:
    data = resp.get_json()
    assert isinstance(data, dict), resp.data
    return data


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(receiver: Receiver) -> Iterator[FlaskClient]:
    cfg = ConnectorConfig(
        webhooks=(receiver.webhook("webhook-secret-0123456789"),),
        allowed_networks=LOOPBACK,
        ingest_token=TOKEN,
        max_attempts=2,
        retry_base_seconds=0.01,
    )
    registry = CollectorRegistry()
    deliverer = Deliverer(cfg, registry)
    yield create_app(cfg, deliverer, registry).test_client()
    deliverer.stop()


def test_healthz_and_metrics(client: FlaskClient) -> None:
    assert body(client.get("/healthz")) == {"status": "ok"}
    assert b"connector_deliveries_total" in client.get("/metrics").data


def test_the_answer_comes_once_the_webhook_has_the_event(
    client: FlaskClient, receiver: Receiver
) -> None:
    resp = client.post("/api/v1/events", json={"action": "auth.login", "id": 1}, headers=AUTH)
    assert resp.status_code == 200, resp.data
    assert body(resp)["status"] == "delivered" and body(resp)["delivered"] == 1
    got = receiver.requests.get_nowait()  # already there when the answer came
    assert got.headers["X-Myapp-Event"] == "auth.login"
    assert got.headers["X-Myapp-Delivery"] == body(resp)["delivery_id"]


def test_a_webhook_that_cannot_take_it_makes_the_sender_keep_it(
    client: FlaskClient, receiver: Receiver
) -> None:
    receiver.script = [(502, {}), (502, {})]  # both attempts of this request fail
    resp = client.post("/api/v1/events", json={"action": "rule.create", "id": 2}, headers=AUTH)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "30"
    assert body(resp)["error"]["code"] == "delivery_failed"
    resp = client.post("/api/v1/events", json={"action": "rule.create", "id": 2}, headers=AUTH)
    assert resp.status_code == 200  # sent again, it arrives


def test_a_redirecting_webhook_makes_the_sender_keep_it(
    client: FlaskClient, receiver: Receiver
) -> None:
    receiver.script = [(307, {"Location": "http://127.0.0.1:9/elsewhere"})]
    resp = client.post("/api/v1/events", json={"action": "rule.update", "id": 4}, headers=AUTH)
    assert resp.status_code == 503 and body(resp)["error"]["code"] == "delivery_failed"
    assert body(resp)["error"]["details"]["failed"] == {"receiver": "redirected"}


def test_a_refusing_webhook_is_final(client: FlaskClient, receiver: Receiver) -> None:
    receiver.script = [(410, {})]
    resp = client.post("/api/v1/events", json={"action": "rule.delete", "id": 3}, headers=AUTH)
    assert resp.status_code == 200 and body(resp)["rejected"] == 1


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
