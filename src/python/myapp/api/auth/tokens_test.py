"""Token attacks: every forged, stale or replayed credential is rejected with 401."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from myapp.api.conftest import (
    TEST_PASSWORD,
    Session,
    all_at_once,
    login,
    make_config,
    running_app,
)
from myapp.api.security import SCOPES_BY_ROLE
from myapp.api.testdb import TestDatabase


def _claims(app: Flask, session: Session, **changes: Any) -> dict[str, Any]:
    config = app.extensions["myapp"].config
    real = jwt.decode(
        session.tokens["access_token"],
        config.jwt_secret,
        algorithms=["HS256"],
        audience=config.jwt_audience,
    )
    now = datetime.now(UTC)
    real.update(iat=now, nbf=now, exp=now + timedelta(minutes=5))
    real.update(changes)
    return real


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, default=lambda v: int(v.timestamp())).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _me(client: FlaskClient, token: str) -> tuple[int, str]:
    response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    return (
        response.status_code,
        response.get_json()["error"]["code"] if response.status_code >= 400 else "",
    )


def test_forged_access_tokens_are_rejected(
    app: Flask, client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    viewer = login_as("viewer")
    secret = app.extensions["myapp"].config.jwt_secret
    assert _me(client, viewer.tokens["access_token"]) == (200, "")

    claims = _claims(app, viewer)
    alg_none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    wrong_key = jwt.encode(claims, "another-secret-that-is-long-enough-123", algorithm="HS256")
    wrong_aud = jwt.encode(_claims(app, viewer, aud="someone-else"), secret, algorithm="HS256")
    wrong_iss = jwt.encode(_claims(app, viewer, iss="evil-issuer"), secret, algorithm="HS256")
    past = datetime.now(UTC) - timedelta(hours=1)
    expired = jwt.encode(
        _claims(app, viewer, iat=past - timedelta(minutes=15), nbf=past, exp=past),
        secret,
        algorithm="HS256",
    )
    hs512 = jwt.encode(claims, secret, algorithm="HS512")
    header, payload, signature = viewer.tokens["access_token"].split(".")
    escalated = {**claims, "role": "admin", "scopes": list(SCOPES_BY_ROLE["admin"])}
    tampered = f"{header}.{_b64(escalated)}.{signature}"
    # Correctly signed (as if the key leaked) but claiming scopes beyond the role.
    over_scoped = jwt.encode({**claims, "scopes": list(SCOPES_BY_ROLE["admin"])}, secret, "HS256")
    # Correctly signed, but claims a role the user does not have.
    wrong_role = jwt.encode(escalated, secret, algorithm="HS256")
    missing_jti = jwt.encode({k: v for k, v in claims.items() if k != "jti"}, secret, "HS256")

    for name, token in {
        "alg none": alg_none,
        "wrong key": wrong_key,
        "wrong audience": wrong_aud,
        "wrong issuer": wrong_iss,
        "expired": expired,
        "HS512": hs512,
        "tampered payload": tampered,
        "scopes beyond role": over_scoped,
        "role not the user's": wrong_role,
        "no jti": missing_jti,
        "garbage": "not-a-jwt",
    }.items():
        assert _me(client, token) == (401, "invalid_token"), name
    users = client.get("/api/v1/users", headers={"Authorization": f"Bearer {wrong_role}"})
    assert users.status_code == 401
    assert client.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_refresh_rotation_and_reuse_revokes_family(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    session = login_as("maintainer")
    first = session.tokens["refresh_token"]
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200
    second = rotated.get_json()
    assert second["refresh_token"] != first
    assert _me(client, second["access_token"]) == (200, "")

    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert reuse.status_code == 401 and reuse.get_json()["error"]["code"] == "invalid_token"
    # The whole family is gone: the child token and the access tokens of the session.
    child = client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert child.status_code == 401
    assert _me(client, second["access_token"])[0] == 401
    assert _me(client, session.tokens["access_token"])[0] == 401
    # Other sessions of the same user are untouched.
    assert _me(client, login_as("maintainer").tokens["access_token"]) == (200, "")
    unknown = client.post("/api/v1/auth/refresh", json={"refresh_token": "x" * 43})
    assert unknown.status_code == 401


def test_parallel_refreshes_of_one_token_one_wins(
    base_url: str, login_as: Callable[[str], Session]
) -> None:
    """A refresh token presented several times at once: one rotation, the rest is reuse, which
    revokes the whole session (the winner's new tokens included). Never two winners, never 5xx."""
    session = login_as("viewer")
    body = {"refresh_token": session.tokens["refresh_token"]}
    responses = all_at_once(
        [lambda: requests.post(f"{base_url}/api/v1/auth/refresh", json=body, timeout=60)] * 8
    )
    assert Counter(r.status_code for r in responses) == {200: 1, 401: 7}, [
        r.text for r in responses
    ]
    winner = next(r.json() for r in responses if r.status_code == 200)
    again = requests.post(
        f"{base_url}/api/v1/auth/refresh",
        json={"refresh_token": winner["refresh_token"]},
        timeout=30,
    )
    assert again.status_code == 401  # the family was revoked by the reuse


def test_logout_ends_the_session(client: FlaskClient, login_as: Callable[[str], Session]) -> None:
    session = login_as("viewer")
    assert client.post("/api/v1/auth/logout", headers=session.headers).status_code == 204
    assert _me(client, session.tokens["access_token"])[0] == 401
    refresh = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": session.tokens["refresh_token"]}
    )
    assert refresh.status_code == 401


def test_password_change_ends_other_sessions(
    app: Flask, client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    admin = login_as("admin")
    email = "rotating@example.com"
    created = client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={"email": email, "password": TEST_PASSWORD, "full_name": "R", "role": "viewer"},
    )
    assert created.status_code == 201
    other = login(client, email, TEST_PASSWORD)
    mine = login(client, email, TEST_PASSWORD)
    changed = client.post(
        "/api/v1/auth/password",
        headers=mine.headers,
        json={"current_password": TEST_PASSWORD, "new_password": "a brand new passphrase"},
    )
    assert changed.status_code == 200
    fresh = changed.get_json()
    assert _me(client, fresh["access_token"]) == (200, "")
    for token in (other.tokens["access_token"], mine.tokens["access_token"]):
        assert _me(client, token)[0] == 401
    stale = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": other.tokens["refresh_token"]}
    )
    assert stale.status_code == 401
    old = client.post("/api/v1/auth/login", json={"email": email, "password": TEST_PASSWORD})
    assert old.status_code == 401
    login(client, email, "a brand new passphrase")


@pytest.mark.parametrize("change", ["deactivate", "delete", "demote"])
def test_tokens_of_changed_users_are_rejected(
    client: FlaskClient, login_as: Callable[[str], Session], change: str
) -> None:
    admin = login_as("admin")
    email = f"victim-{change}-{time.monotonic_ns()}@example.com"
    created = client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={"email": email, "password": TEST_PASSWORD, "full_name": "V", "role": "maintainer"},
    )
    user_id = created.get_json()["id"]
    victim = login(client, email, TEST_PASSWORD)
    assert _me(client, victim.tokens["access_token"]) == (200, "")
    path = f"/api/v1/users/{user_id}"
    if change == "deactivate":
        response = client.patch(path, headers=admin.headers, json={"active": False})
    elif change == "delete":
        response = client.delete(path, headers=admin.headers)
    else:
        response = client.patch(path, headers=admin.headers, json={"role": "viewer"})
    assert response.status_code in (200, 204)
    assert _me(client, victim.tokens["access_token"]) == (401, "invalid_token")
    refresh = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": victim.tokens["refresh_token"]}
    )
    assert refresh.status_code == 401
    if change == "deactivate":
        denied = client.post("/api/v1/auth/login", json={"email": email, "password": TEST_PASSWORD})
        assert denied.status_code == 401


def _refresh(client: FlaskClient, token: str) -> Any:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_a_session_ends_at_its_maximum_lifetime_however_much_it_is_used(
    backend: TestDatabase,
) -> None:
    """ASVS 3.3.2: refreshing keeps a session alive only up to SESSION_MAX_SECONDS after login."""
    with running_app(make_config(backend, session_max_seconds=2)) as app:
        client = app.test_client()
        config = app.extensions["myapp"].config
        started = time.monotonic()
        tokens = login(client, config.admin_email, config.admin_password).tokens
        assert 0 < tokens["refresh_expires_in"] <= 2  # not REFRESH_TOKEN_TTL (14 days)
        assert tokens["expires_in"] <= 2  # nor ACCESS_TOKEN_TTL (15 min)
        rotated = _refresh(client, tokens["refresh_token"])
        assert rotated.status_code == 200 and rotated.get_json()["refresh_expires_in"] <= 2
        time.sleep(max(0.0, started + 2.5 - time.monotonic()))
        ended = _refresh(client, rotated.get_json()["refresh_token"])
        assert ended.status_code == 401 and ended.get_json()["error"]["code"] == "invalid_token"
        assert "maximum lifetime" in ended.get_json()["error"]["message"]
        # Logging in again starts a new session.
        again = login(client, config.admin_email, config.admin_password).tokens
        assert _refresh(client, again["refresh_token"]).status_code == 200


def test_a_session_from_before_the_limit_starts_it_at_its_next_refresh(
    app: Flask, client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    session = login_as("viewer")
    family = jwt.decode(session.tokens["access_token"], options={"verify_signature": False})["sid"]
    d = app.extensions["myapp"].db
    in_family = d.refresh_token.family_id == family
    with app.app_context():
        # As a row written before session_expires_at existed.
        d(in_family).update(session_expires_at=None)
        d.commit()
    rotated = _refresh(client, session.tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.get_json()
    limit = app.extensions["myapp"].config.session_max_seconds
    assert limit - 5 <= rotated.get_json()["refresh_expires_in"] <= limit
    with app.app_context():
        child = d(in_family & (d.refresh_token.used_at == None)).select().first()  # noqa: E711
    assert child is not None and child.session_expires_at is not None
