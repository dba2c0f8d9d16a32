"""Probes and failure modes: readiness with the database gone, metrics, no stack traces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from myapp.api.app import create_app, prepare_database
from myapp.api.conftest import make_config
from myapp.api.db import dispose
from myapp.api.testdb import create_test_database


def test_readiness_and_errors_when_the_database_disappears(tmp_path: Path) -> None:
    try:
        database = create_test_database("postgres", tmp_path)
    except ConnectionError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"postgres is required in CI: {exc}")
        pytest.skip(f"postgres unreachable: {exc}")
    app = create_app(make_config(database))
    client = app.test_client()
    try:
        token = client.post(
            "/api/v1/auth/login", json={"email": "admin@example.com", "password": "admin123456!"}
        ).get_json()["access_token"]
        assert client.get("/readyz").status_code == 200
        database.drop()  # terminates the pooled connections too
        ready = client.get("/readyz")
        assert ready.status_code == 503
        body = ready.get_json()
        assert body["status"] == "unavailable" and "database" in body["reason"]
        me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 503
        assert me.get_json()["error"]["code"] == "database_error"
        assert "Traceback" not in me.get_data(as_text=True)
        assert client.get("/healthz").status_code == 200  # liveness does not depend on the DB
        metrics = client.get("/metrics").get_data(as_text=True)
        assert "myapp_api_db_errors_total" in metrics
        # The database comes back: the broken pooled connections were discarded, not reused.
        restored = create_test_database("postgres", tmp_path, name=database.name)
        prepare_database(make_config(restored))
        assert client.get("/readyz").status_code == 200
        login = client.post(
            "/api/v1/auth/login", json={"email": "admin@example.com", "password": "admin123456!"}
        )
        assert login.status_code == 200
    finally:
        dispose(app.extensions["myapp"].db)
        database.drop()


def test_metrics_count_requests_and_logins(client: FlaskClient) -> None:
    client.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x" * 12})
    client.get("/api/v1/rules/12345")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'myapp_api_logins_total{outcome="failure"}' in text
    assert 'route="/api/v1/rules/<int:rule_id>",status="401"' in text
    assert "myapp_api_request_duration_seconds_bucket" in text
