"""Authorization matrix: every route x {anonymous, viewer, maintainer, admin} -> expected status.

The cases are checked against the route table (`routing.ROUTES` plus the probes), so adding a
route without a row here fails `test_matrix_covers_every_route`.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from myapp.api.conftest import TEST_PASSWORD, Session
from myapp.api.probes import PROBE_PATHS
from myapp.api.routing import ROUTES

ROLES = ("anonymous", "viewer", "maintainer", "admin")
Request = tuple[str, dict[str, Any] | None, dict[str, str]]
Prepare = Callable[["Fixtures", str], Request]


def _statuses(anonymous: int, viewer: int, maintainer: int, admin: int) -> dict[str, int]:
    return dict(zip(ROLES, (anonymous, viewer, maintainer, admin), strict=True))


class Fixtures:
    """Creates the objects a case needs, as the admin, through the API itself."""

    def __init__(self, client: FlaskClient, login_as: Callable[[str], Session]) -> None:
        self.client = client
        self.login_as = login_as
        self.admin = login_as("admin")

    def user(self, role: str = "viewer") -> int:
        response = self.client.post(
            "/api/v1/users",
            headers=self.admin.headers,
            json={
                "email": f"matrix-{uuid.uuid4().hex[:10]}@example.com",
                "password": TEST_PASSWORD,
                "full_name": "Matrix target",
                "role": role,
            },
        )
        assert response.status_code == 201
        return int(response.get_json()["id"])

    def rule(self) -> tuple[int, int]:
        response = self.client.post("/api/v1/rules", headers=self.admin.headers, json=rule_body())
        assert response.status_code == 201, response.get_json()
        body = response.get_json()
        return int(body["id"]), int(body["revision"])

    def password(self, role: str) -> str:
        if role == "admin":
            return str(self.client.application.extensions["myapp"].config.admin_password)
        return TEST_PASSWORD

    def refresh_token(self, role: str) -> str:
        return str(self.login_as("admin" if role == "anonymous" else role).tokens["refresh_token"])


def rule_body() -> dict[str, Any]:
    octets = uuid.uuid4().bytes
    return {
        "name": "matrix rule",
        "source_cidr": f"10.{octets[0]}.{octets[1]}.{octets[2] & 0xF0}/28",
        "protocol": "tcp",
        "dst_port_min": 1 + (octets[3] << 8 | octets[4]) % 65000,
        "action": "drop",
    }


def user_body() -> dict[str, Any]:
    return {
        "email": f"new-{uuid.uuid4().hex[:10]}@example.com",
        "password": TEST_PASSWORD,
        "full_name": "New user",
        "role": "viewer",
    }


NO_BODY: dict[str, str] = {}

# (method, path) -> (request builder, expected status per role)
MATRIX: dict[tuple[str, str], tuple[Prepare, dict[str, int]]] = {
    ("POST", "/api/v1/auth/login"): (
        lambda f, r: (
            "/api/v1/auth/login",
            {"email": "admin@example.com", "password": "admin123456!"},
            NO_BODY,
        ),
        _statuses(200, 200, 200, 200),
    ),
    ("POST", "/api/v1/auth/refresh"): (
        lambda f, r: ("/api/v1/auth/refresh", {"refresh_token": f.refresh_token(r)}, NO_BODY),
        _statuses(200, 200, 200, 200),
    ),
    ("POST", "/api/v1/auth/logout"): (
        lambda f, r: ("/api/v1/auth/logout", None, NO_BODY),
        _statuses(401, 204, 204, 204),
    ),
    ("GET", "/api/v1/auth/me"): (
        lambda f, r: ("/api/v1/auth/me", None, NO_BODY),
        _statuses(401, 200, 200, 200),
    ),
    # A wrong current password: 422 proves the caller got past authentication.
    ("POST", "/api/v1/auth/password"): (
        lambda f, r: (
            "/api/v1/auth/password",
            {"current_password": "not the password", "new_password": "x" * 16},
            NO_BODY,
        ),
        _statuses(401, 422, 422, 422),
    ),
    ("GET", "/api/v1/auth/sessions"): (
        lambda f, r: ("/api/v1/auth/sessions", None, NO_BODY),
        _statuses(401, 200, 200, 200),
    ),
    # The right password and a session that is nobody's: 404 proves the caller got that far.
    ("POST", "/api/v1/auth/sessions/<session_id>/end"): (
        lambda f, r: (
            f"/api/v1/auth/sessions/{'0' * 32}/end",
            {"current_password": f.password(r)},
            NO_BODY,
        ),
        _statuses(401, 404, 404, 404),
    ),
    ("POST", "/api/v1/auth/sessions/end-others"): (
        lambda f, r: (
            "/api/v1/auth/sessions/end-others",
            {"current_password": f.password(r)},
            NO_BODY,
        ),
        _statuses(401, 200, 200, 200),
    ),
    ("GET", "/api/v1/users/<int:user_id>/sessions"): (
        lambda f, r: (f"/api/v1/users/{f.user()}/sessions", None, NO_BODY),
        _statuses(401, 403, 403, 200),
    ),
    ("POST", "/api/v1/users/<int:user_id>/sessions/end"): (
        lambda f, r: (f"/api/v1/users/{f.user()}/sessions/end", None, NO_BODY),
        _statuses(401, 403, 403, 200),
    ),
    ("GET", "/api/v1/users"): (
        lambda f, r: ("/api/v1/users", None, NO_BODY),
        _statuses(401, 403, 403, 200),
    ),
    ("POST", "/api/v1/users"): (
        lambda f, r: ("/api/v1/users", user_body(), NO_BODY),
        _statuses(401, 403, 403, 201),
    ),
    ("GET", "/api/v1/users/<int:user_id>"): (
        lambda f, r: (f"/api/v1/users/{f.user()}", None, NO_BODY),
        _statuses(401, 403, 403, 200),
    ),
    ("PUT", "/api/v1/users/<int:user_id>"): (
        lambda f, r: (
            f"/api/v1/users/{f.user()}",
            {**user_body(), "active": True, "password": None},
            NO_BODY,
        ),
        _statuses(401, 403, 403, 200),
    ),
    # Another admin's e-mail: the caller's own password is asked for (re-authentication).
    ("PATCH", "/api/v1/users/<int:user_id>"): (
        lambda f, r: (
            f"/api/v1/users/{f.user('admin')}",
            {
                "email": f"moved-{uuid.uuid4().hex[:10]}@example.com",
                "current_password": f.password(r),
            },
            NO_BODY,
        ),
        _statuses(401, 403, 403, 200),
    ),
    ("DELETE", "/api/v1/users/<int:user_id>"): (
        lambda f, r: (f"/api/v1/users/{f.user()}", None, NO_BODY),
        _statuses(401, 403, 403, 204),
    ),
    ("GET", "/api/v1/rules"): (
        lambda f, r: ("/api/v1/rules", None, NO_BODY),
        _statuses(401, 200, 200, 200),
    ),
    ("POST", "/api/v1/rules"): (
        lambda f, r: ("/api/v1/rules", rule_body(), NO_BODY),
        _statuses(401, 403, 201, 201),
    ),
    ("GET", "/api/v1/rules/<int:rule_id>"): (
        lambda f, r: (f"/api/v1/rules/{f.rule()[0]}", None, NO_BODY),
        _statuses(401, 200, 200, 200),
    ),
    ("PUT", "/api/v1/rules/<int:rule_id>"): (
        lambda f, r: _with_rule(f, lambda rid, rev: (rule_body(), {"If-Match": f'"{rev}"'})),
        _statuses(401, 403, 200, 200),
    ),
    ("PATCH", "/api/v1/rules/<int:rule_id>"): (
        lambda f, r: _with_rule(f, lambda rid, rev: ({"enabled": False, "revision": rev}, {})),
        _statuses(401, 403, 200, 200),
    ),
    ("DELETE", "/api/v1/rules/<int:rule_id>"): (
        lambda f, r: _with_rule(f, lambda rid, rev: (None, {})),
        _statuses(401, 403, 204, 204),
    ),
    ("GET", "/api/v1/audit"): (
        lambda f, r: ("/api/v1/audit", None, NO_BODY),
        _statuses(401, 403, 403, 200),
    ),
    ("GET", "/api/v1/fastpath/status"): (
        lambda f, r: ("/api/v1/fastpath/status", None, NO_BODY),
        _statuses(401, 200, 200, 200),
    ),
    ("GET", "/api/v1/fastpath/stats"): (
        lambda f, r: ("/api/v1/fastpath/stats", None, NO_BODY),
        _statuses(401, 200, 200, 200),
    ),
}
for _probe in PROBE_PATHS:
    MATRIX[("GET", _probe)] = (
        lambda f, r, p=_probe: (p, None, NO_BODY),  # type: ignore[misc]
        _statuses(200, 200, 200, 200),
    )


def _with_rule(
    f: Fixtures, build: Callable[[int, int], tuple[dict[str, Any] | None, dict[str, str]]]
) -> Request:
    rule_id, revision = f.rule()
    body, headers = build(rule_id, revision)
    return f"/api/v1/rules/{rule_id}", body, headers


def test_matrix_covers_every_route(app: Flask) -> None:
    declared = {(spec.method, spec.path) for spec in ROUTES}
    declared |= {("GET", path) for path in PROBE_PATHS}
    flask_routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS") and rule.endpoint != "static"
    }
    assert flask_routes == declared, "a Flask route is missing from the route table"
    assert set(MATRIX) == declared, (
        f"missing matrix rows: {sorted(declared - set(MATRIX))}; "
        f"rows without a route: {sorted(set(MATRIX) - declared)}"
    )


CASES = sorted(itertools.product(MATRIX, ROLES))


@pytest.mark.parametrize(("route", "role"), CASES, ids=[f"{m} {p} {r}" for (m, p), r in CASES])
def test_authorization(
    app: Flask,
    client: FlaskClient,
    login_as: Callable[[str], Session],
    route: tuple[str, str],
    role: str,
) -> None:
    prepare, expected = MATRIX[route]
    fixtures = Fixtures(client, login_as)
    path, body, headers = prepare(fixtures, role)
    if role != "anonymous":
        headers = {**headers, **login_as(role).headers}
    response = client.open(path, method=route[0], json=body, headers=headers)
    assert response.status_code == expected[role], (route, role, response.get_data(as_text=True))
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert error["code"] and error["message"]
        if response.status_code == 403:
            spec = next(s for s in ROUTES if (s.method, s.path) == route)
            assert spec.scope in error["message"]
