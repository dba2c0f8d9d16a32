"""The OpenAPI document, and schema-driven fuzzing of every operation with schemathesis.

Schemathesis generates valid and invalid requests from /api/v1/openapi.json (the same pydantic
models that validate requests) and checks: no 5xx, the status code is documented, the body
matches the documented schema and content type.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from myapp.api.conftest import make_config, running_app, serving
from myapp.api.openapi import build_openapi
from myapp.api.routing import ROUTES
from myapp.api.testdb import create_test_database


@pytest.fixture(scope="module")
def fuzz_app() -> Iterator[Flask]:
    tmp = Path(tempfile.mkdtemp(prefix="myapp-fuzz-"))
    # Throttling would turn the fuzzer's failed logins into 429s; it has its own tests.
    config = make_config(
        create_test_database("sqlite", tmp),
        login_max_failures_account=1_000_000,
        login_max_failures_ip=1_000_000,
        login_max_failures_pair=1_000_000,
    )
    try:
        with running_app(config) as application:
            yield application
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def admin_headers(fuzz_app: Flask) -> dict[str, str]:
    response = fuzz_app.test_client().post(
        "/api/v1/auth/login", json={"email": "admin@example.com", "password": "admin123456!"}
    )
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


@pytest.fixture(scope="module")
def base_url(fuzz_app: Flask) -> Iterator[str]:
    with serving(fuzz_app) as url:
        yield url


# The document depends only on the route table (importing `app` registers every route), so the
# schema is built without a database; the requests go to a real server (`base_url`).
schema = schemathesis.openapi.from_dict(build_openapi())


def test_document_lists_every_route(fuzz_app: Flask) -> None:
    document = fuzz_app.test_client().get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert operations == {(spec.method, spec.openapi_path) for spec in ROUTES}
    users = document["paths"]["/api/v1/users"]["get"]
    assert users["x-required-scope"] == "users:read"
    assert {p["name"] for p in users["parameters"]} >= {"page", "per_page", "q", "sort"}
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert login["security"] == []
    assert "UserOut" in document["components"]["schemas"]
    docs = fuzz_app.test_client().get("/api/docs")
    assert docs.status_code == 200 and b'href="/api/v1/openapi.json"' in docs.data


@schema.parametrize()
@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_fuzz_operations(case: Any, base_url: str, admin_headers: dict[str, str]) -> None:
    if case.path in ("/api/v1/auth/logout", "/api/v1/auth/password"):
        pytest.skip("would end the fuzzer's own session; covered in auth/tokens_test.py")
    if case.path == "/api/v1/users/{user_id}/sessions/end":
        # User 1 is the fuzzer's admin: every later case would be a 401.
        pytest.skip("would end the fuzzer's own session; covered in users/users_test.py")
    case.call_and_validate(
        base_url=base_url,
        headers=admin_headers,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
