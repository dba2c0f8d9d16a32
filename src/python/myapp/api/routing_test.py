"""Request bodies: only JSON (415 otherwise), and no deeper than MAX_JSON_DEPTH (400 before any
parser recursion). The checks sit in the one parsing layer, so one app (SQLite) covers them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from myapp.api.conftest import make_config, running_app, throwaway_database
from myapp.api.routing import MAX_JSON_DEPTH, ROUTES, json_too_deep

LOGIN = "/api/v1/auth/login"


@pytest.fixture(scope="module")
def app() -> Iterator[Flask]:
    with throwaway_database("sqlite") as database, running_app(make_config(database)) as built:
        yield built


@pytest.fixture(scope="module")
def admin_headers(app: Flask) -> dict[str, str]:
    config = app.extensions["myapp"].config
    response = app.test_client().post(
        LOGIN, json={"email": config.admin_email, "password": config.admin_password}
    )
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _nested(depth: int) -> bytes:
    """A login body whose `password` value nests `depth` - 1 arrays (depth levels in all)."""
    return (
        b'{"email": "a@example.com", "password": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    )


def test_depth_is_counted_outside_strings() -> None:
    assert not json_too_deep(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert json_too_deep(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    assert not json_too_deep(b'{"a": "' + b"[{" * 100 + b'\\"[{"}')
    assert json_too_deep(b'{"a": "\\\\"' + b", [" * 40)  # an escaped backslash ends the string


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="50000-objects"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="100000-arrays"),
        pytest.param(_nested(MAX_JSON_DEPTH + 1), id="one-level-too-deep"),
    ],
)
def test_deep_bodies_are_a_400_naming_the_limit(client: FlaskClient, body: bytes) -> None:
    response = client.post(LOGIN, data=body, content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"] == {
        "code": "bad_request",
        "message": f"JSON body nests deeper than {MAX_JSON_DEPTH} levels",
    }


def test_the_deepest_allowed_body_reaches_validation(client: FlaskClient) -> None:
    response = client.post(LOGIN, data=_nested(MAX_JSON_DEPTH), content_type="application/json")
    assert response.status_code == 422
    assert "password" in response.get_json()["error"]["details"]["fields"]


def _concrete(path: str) -> str:
    return re.sub(r"<(?:int:)?(\w+)>", lambda m: "1" if "int:" in m.group(0) else "x", path)


BODY_ROUTES = [spec for spec in ROUTES if spec.body is not None]


@pytest.mark.parametrize("spec", BODY_ROUTES, ids=[f"{s.method} {s.path}" for s in BODY_ROUTES])
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_every_json_endpoint_refuses_other_media_types(
    client: FlaskClient,
    admin_headers: dict[str, str],
    spec: Any,
    content_type: str | None,
) -> None:
    headers = dict(admin_headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.open(
        _concrete(spec.path), method=spec.method, data=b'{"a": 1}', headers=headers
    )
    assert response.status_code == 415, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "application/json" in error["message"]
    assert (content_type or "no Content-Type") in error["message"]


def test_login_without_content_type_is_refused_even_with_the_right_password(
    app: Flask, client: FlaskClient
) -> None:
    config = app.extensions["myapp"].config
    body = f'{{"email": "{config.admin_email}", "password": "{config.admin_password}"}}'
    assert client.post(LOGIN, data=body).status_code == 415
    for accepted in ("application/json", "application/json; charset=utf-8", "application/x+json"):
        assert client.post(LOGIN, data=body, content_type=accepted).status_code == 200, accepted
    assert client.post(LOGIN, data=body, content_type="text/x+json").status_code == 415
