"""A user's own sessions: listed, and ended one by one or all but this one (every backend)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from myapp.api.conftest import TEST_PASSWORD, Session, all_at_once, login


def _user(client: FlaskClient, login_as: Callable[[str], Session]) -> str:
    email = f"sessions-{uuid.uuid4().hex[:8]}@example.com"
    created = client.post(
        "/api/v1/users",
        headers=login_as("admin").headers,
        json={"email": email, "password": TEST_PASSWORD, "full_name": "S", "role": "viewer"},
    )
    assert created.status_code == 201, created.get_json()
    return email


def _sid(session: Session) -> str:
    claims = jwt.decode(session.tokens["access_token"], options={"verify_signature": False})
    return str(claims["sid"])


def _sessions(client: FlaskClient, session: Session) -> list[dict[str, Any]]:
    response = client.get("/api/v1/auth/sessions", headers=session.headers)
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def _end(client: FlaskClient, session: Session, sid: str, password: str = TEST_PASSWORD) -> Any:
    return client.post(
        f"/api/v1/auth/sessions/{sid}/end",
        headers=session.headers,
        json={"current_password": password},
    )


def _alive(client: FlaskClient, session: Session) -> bool:
    """Its access token is accepted (which needs a live refresh token in its session)."""
    return client.get("/api/v1/auth/me", headers=session.headers).status_code == 200


def _refreshable(client: FlaskClient, session: Session) -> bool:
    body = {"refresh_token": session.tokens["refresh_token"]}
    return client.post("/api/v1/auth/refresh", json=body).status_code == 200


def test_the_list_shows_each_live_session_once(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    email = _user(client, login_as)
    laptop = login(client, email, TEST_PASSWORD)
    phone = login(client, email, TEST_PASSWORD)
    listed = _sessions(client, phone)
    assert [item["id"] for item in listed] == [_sid(phone), _sid(laptop)]  # newest first
    assert [item["current"] for item in listed] == [True, False]
    for item in listed:
        assert item["started_at"] <= item["last_active_at"] < item["expires_at"]
    # A refresh moves the session's last activity, not its start, and lists no second entry.
    rotated = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": laptop.tokens["refresh_token"]}
    )
    assert rotated.status_code == 200
    after = {item["id"]: item for item in _sessions(client, phone)}
    assert set(after) == {_sid(phone), _sid(laptop)}
    before = {item["id"]: item for item in listed}
    assert after[_sid(laptop)]["started_at"] == before[_sid(laptop)]["started_at"]
    assert after[_sid(laptop)]["last_active_at"] >= before[_sid(laptop)]["last_active_at"]
    # A logged-out session is gone from the list.
    assert client.post("/api/v1/auth/logout", headers=phone.headers).status_code == 204
    tablet = login(client, email, TEST_PASSWORD)
    assert [item["id"] for item in _sessions(client, tablet)] == [_sid(tablet), _sid(laptop)]


def test_ending_another_session_needs_the_password(
    app: Flask, client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    email = _user(client, login_as)
    stolen = login(client, email, TEST_PASSWORD)
    mine = login(client, email, TEST_PASSWORD)
    wrong = _end(client, mine, _sid(stolen), "not my password")
    assert wrong.status_code == 422
    assert "current_password" in wrong.get_json()["error"]["details"]["fields"]
    assert _alive(client, stolen)
    assert _end(client, mine, _sid(stolen)).status_code == 204
    assert not _alive(client, stolen) and not _refreshable(client, stolen)  # both, at once
    assert _alive(client, mine)
    assert _sid(stolen) not in {item["id"] for item in _sessions(client, mine)}
    # Already ended, or never there: 404.
    again = _end(client, mine, _sid(stolen))
    assert again.status_code == 404 and again.get_json()["error"]["code"] == "not_found"
    assert _end(client, mine, "0" * 32).status_code == 404
    with app.app_context():
        d = app.extensions["myapp"].db
        actions = [row.action for row in d(d.audit_log.object_id == _sid(stolen)).select()]
    assert actions == ["auth.session_end"]


def test_nobody_ends_someone_elses_session(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    victim = login(client, _user(client, login_as), TEST_PASSWORD)
    attacker = login(client, _user(client, login_as), TEST_PASSWORD)
    assert _end(client, attacker, _sid(victim)).status_code == 404  # not theirs: not found
    admin = login_as("admin")
    config = client.application.extensions["myapp"].config
    assert _end(client, admin, _sid(victim), config.admin_password).status_code == 404
    assert _alive(client, victim)
    assert _sid(victim) not in {item["id"] for item in _sessions(client, attacker)}


def test_ending_all_other_sessions(client: FlaskClient, login_as: Callable[[str], Session]) -> None:
    email = _user(client, login_as)
    others = [login(client, email, TEST_PASSWORD) for _ in range(3)]
    mine = login(client, email, TEST_PASSWORD)
    response = client.post(
        "/api/v1/auth/sessions/end-others",
        headers=mine.headers,
        json={"current_password": TEST_PASSWORD},
    )
    assert response.status_code == 200 and response.get_json() == {"ended": 3}
    assert not any(_alive(client, other) or _refreshable(client, other) for other in others)
    assert [item["id"] for item in _sessions(client, mine)] == [_sid(mine)]
    assert _alive(client, mine)


def test_ending_the_current_session_is_a_logout(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    mine = login(client, _user(client, login_as), TEST_PASSWORD)
    assert _end(client, mine, _sid(mine)).status_code == 204
    assert client.get("/api/v1/auth/me", headers=mine.headers).status_code == 401


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/auth/sessions/end-others", {}),
        ("/api/v1/auth/sessions/end-others", {"current_password": ""}),
        ("/api/v1/auth/sessions/x/end", {"password": TEST_PASSWORD}),
    ],
)
def test_bad_bodies_are_422(
    client: FlaskClient, login_as: Callable[[str], Session], path: str, body: dict[str, Any]
) -> None:
    response = client.post(path, headers=login_as("viewer").headers, json=body)
    assert (
        response.status_code == 422 and response.get_json()["error"]["code"] == "validation_error"
    )


def test_a_session_ended_while_it_refreshes_stays_ended(
    base_url: str, client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    """The refresh may win or lose, but no token it hands out may outlive the end: ending a
    session locks the session's tokens first, so a child being written is waited for and ended
    too (without that lock, PostgreSQL's UPDATE would not see the child and leave it alive)."""
    email = _user(client, login_as)
    mine = login(client, email, TEST_PASSWORD)
    alive_after_end = []
    for attempt in range(20):
        target = login(client, email, TEST_PASSWORD)
        refresh_body = {"refresh_token": target.tokens["refresh_token"]}
        end_url = f"{base_url}/api/v1/auth/sessions/{_sid(target)}/end"
        refreshed, ended = all_at_once(
            [
                lambda body=refresh_body: requests.post(  # type: ignore[misc]
                    f"{base_url}/api/v1/auth/refresh", json=body, timeout=30
                ),
                lambda url=end_url: requests.post(  # type: ignore[misc]
                    url, headers=mine.headers, json={"current_password": TEST_PASSWORD}, timeout=30
                ),
            ]
        )
        assert ended.status_code == 204, ended.text
        assert refreshed.status_code in (200, 401), refreshed.text
        if refreshed.status_code == 200:
            token = refreshed.json()["access_token"]
            me = requests.get(
                f"{base_url}/api/v1/auth/me",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            if me.status_code == 200:
                alive_after_end.append(attempt)
    assert alive_after_end == []
