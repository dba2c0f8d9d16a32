"""The session cache: its own rules, and on a real PostgreSQL that a change made anywhere (another
connection, as another worker or replica or psql would) ends cached sessions at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import psycopg2
import pytest
from flask import Flask
from flask.testing import FlaskClient

from myapp.api.app import create_app
from myapp.api.auth import principal
from myapp.api.auth.session_cache import SessionCache, listen
from myapp.api.conftest import (
    TEST_PASSWORD,
    Session,
    login,
    make_config,
    running_app,
    throwaway_database,
)
from myapp.api.db import dispose
from myapp.api.security import TokenError, TokenService
from myapp.api.testdb import TestDatabase

# --- the cache's own rules -------------------------------------------------------------------


def test_put_and_get() -> None:
    cache = SessionCache(ttl=60)
    assert cache.get((1, "s")) is None
    assert cache.put(cache.generation, (1, "s"), {"id": 1})
    assert cache.get((1, "s")) == {"id": 1}
    assert cache.get((1, "other")) is None


def test_entries_expire() -> None:
    cache = SessionCache(ttl=0.05)
    cache.put(cache.generation, (1, "s"), {"id": 1})
    time.sleep(0.08)
    assert cache.get((1, "s")) is None
    assert len(cache) == 0


def test_a_check_raced_by_an_invalidation_is_not_stored() -> None:
    cache = SessionCache(ttl=60)
    before_read = cache.generation
    cache.invalidate_user(2)  # a change of any user arrives while the row was being read
    assert not cache.put(before_read, (1, "s"), {"id": 1})
    assert cache.get((1, "s")) is None
    assert cache.put(cache.generation, (1, "s"), {"id": 1})


def test_invalidate_user_drops_all_their_sessions_only() -> None:
    cache = SessionCache(ttl=60)
    for key in ((1, "a"), (1, "b"), (2, "a")):
        cache.put(cache.generation, key, {"id": key[0]})
    cache.invalidate_user(1)
    assert cache.get((1, "a")) is None and cache.get((1, "b")) is None
    assert cache.get((2, "a")) == {"id": 2}
    cache.clear()
    assert len(cache) == 0


def test_size_is_bounded() -> None:
    cache = SessionCache(ttl=60, max_entries=3)
    for user_id in range(5):
        cache.put(cache.generation, (user_id, "s"), {"id": user_id})
    assert len(cache) == 3
    assert cache.get((0, "s")) is None and cache.get((4, "s")) == {"id": 4}


def test_a_zero_lifetime_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        SessionCache(ttl=0)


# --- verified access tokens ------------------------------------------------------------------

SECRET = "a-test-secret-that-is-at-least-32-characters"


def _token(exp: datetime) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": "myapp-api",
        "aud": "myapp",
        "sub": "7",
        "iat": now - timedelta(minutes=20),
        "exp": exp,
        "jti": "j",
        "role": "viewer",
        "scopes": ["rules:read"],
        "ver": 1,
        "sid": "s",
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_a_remembered_token_still_expires() -> None:
    tokens = TokenService(SECRET, "myapp-api", "myapp", 900)
    # Valid for about one more second (PyJWT allows LEEWAY = 5 s past exp).
    token = _token(datetime.now(UTC) - timedelta(seconds=4))
    assert tokens.verify(token).user_id == 7
    assert tokens.verify(token).user_id == 7  # remembered
    time.sleep(1.2)
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token)


def test_remembered_tokens_are_bounded_and_exact() -> None:
    tokens = TokenService(SECRET, "myapp-api", "myapp", 900, remember=2)
    good = [_token(datetime.now(UTC) + timedelta(minutes=m)) for m in (1, 2, 3)]
    for token in good:
        tokens.verify(token)
    assert len(tokens._verified) == 2
    with pytest.raises(TokenError):
        tokens.verify(good[2][:-2] + ("AA" if not good[2].endswith("AA") else "BB"))


# --- on PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[TestDatabase]:
    with throwaway_database("postgres") as database:
        yield database


@pytest.fixture(scope="module")
def app(postgres: TestDatabase) -> Iterator[Flask]:
    # A lifetime far longer than the test: only notifications can end a cached session.
    with running_app(make_config(postgres, auth_cache_seconds=300)) as application:
        yield application


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def queries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts session queries that reach the database."""
    calls: list[int] = []
    real = principal._load_session

    def counted(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(principal, "_load_session", counted)
    return calls


def _new_user(client: FlaskClient, app: Flask) -> tuple[int, Session]:
    config = app.extensions["myapp"].config
    admin = login(client, config.admin_email, config.admin_password)
    email = f"cached-{time.monotonic_ns()}@example.com"
    created = client.post(
        "/api/v1/users",
        headers=admin.headers,
        json={"email": email, "password": TEST_PASSWORD, "full_name": "C", "role": "maintainer"},
    )
    assert created.status_code == 201, created.get_json()
    return created.get_json()["id"], login(client, email, TEST_PASSWORD)


def _me(client: FlaskClient, session: Session) -> int:
    return client.get("/api/v1/auth/me", headers=session.headers).status_code


def _outside(postgres: TestDatabase, sql: str, *args: object) -> None:
    """A change committed by another connection: another worker, replica or psql."""
    conn = psycopg2.connect(postgres.url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, args)
    finally:
        conn.close()


def _rejected_within(client: FlaskClient, session: Session, seconds: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if _me(client, session) == 401:
            return
        time.sleep(0.002)
    pytest.fail(f"a cached session was still accepted {seconds} s after the change")


def test_the_cache_is_on_for_postgres_only(app: Flask, postgres: TestDatabase) -> None:
    assert isinstance(app.extensions["myapp"].sessions, SessionCache)
    off = create_app(make_config(postgres, auth_cache_seconds=0))
    try:
        assert off.extensions["myapp"].sessions is None
    finally:
        dispose(off.extensions["myapp"].db)


def test_repeated_checks_do_not_query(client: FlaskClient, app: Flask, queries: list[int]) -> None:
    _, session = _new_user(client, app)
    queries.clear()
    for _ in range(5):
        assert _me(client, session) == 200
    assert len(queries) == 1
    cached = [values for _, values in app.extensions["myapp"].sessions._entries.values()]
    assert cached and all("password_hash" not in values for values in cached)


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE app_user SET active = 'F' WHERE id = %s",
        "UPDATE app_user SET token_version = token_version + 1 WHERE id = %s",
        "UPDATE app_user SET role = 'viewer' WHERE id = %s",
        "UPDATE refresh_token SET revoked = 'T' WHERE user_id = %s",
        "DELETE FROM refresh_token WHERE user_id = %s",
        "DELETE FROM app_user WHERE id = %s",
    ],
)
def test_a_change_from_elsewhere_ends_cached_sessions(
    client: FlaskClient, app: Flask, postgres: TestDatabase, change: str
) -> None:
    user_id, session = _new_user(client, app)
    assert _me(client, session) == 200
    assert _me(client, session) == 200  # now served from the cache
    _outside(postgres, change, user_id)
    _rejected_within(client, session, seconds=2.0)  # the cache lifetime is 300 s


def test_a_change_through_the_api_ends_the_session_at_once(client: FlaskClient, app: Flask) -> None:
    config = app.extensions["myapp"].config
    admin = login(client, config.admin_email, config.admin_password)
    user_id, session = _new_user(client, app)
    assert _me(client, session) == 200
    patched = client.patch(
        f"/api/v1/users/{user_id}", headers=admin.headers, json={"active": False}
    )
    assert patched.status_code == 200
    assert _me(client, session) == 401  # same process: no waiting for the notification


def test_other_users_stay_cached(
    client: FlaskClient, app: Flask, postgres: TestDatabase, queries: list[int]
) -> None:
    changed_id, changed = _new_user(client, app)
    _, bystander = _new_user(client, app)
    assert _me(client, changed) == 200 and _me(client, bystander) == 200
    _outside(postgres, "UPDATE app_user SET active = 'F' WHERE id = %s", changed_id)
    _rejected_within(client, changed, seconds=2.0)
    queries.clear()
    assert _me(client, bystander) == 200
    assert queries == []


def test_a_new_listening_connection_starts_the_cache_over(
    app: Flask, postgres: TestDatabase
) -> None:
    cache = app.extensions["myapp"].sessions
    cache.put(cache.generation, (1, "s"), {"id": 1})
    conn = psycopg2.connect(postgres.url)
    try:
        listen(conn)  # it missed every notification before this point
    finally:
        conn.close()
    assert cache.get((1, "s")) is None


def test_concurrent_changes_never_leave_a_stale_entry(app: Flask, postgres: TestDatabase) -> None:
    """Requests in many threads while another connection deactivates the user: afterwards
    (once the notification is in) every request is rejected."""
    user_id, session = _new_user(app.test_client(), app)
    stop = threading.Event()
    statuses: list[int] = []

    def hammer() -> None:
        client = app.test_client()
        while not stop.is_set():
            statuses.append(_me(client, session))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    _outside(postgres, "UPDATE app_user SET active = 'F' WHERE id = %s", user_id)
    deadline = time.monotonic() + 10  # the notification's arrival, on a busy machine too
    while 401 not in statuses and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # every thread makes requests after it
    stop.set()
    for thread in threads:
        thread.join()
    assert 200 in statuses and statuses[-1] == 401
    client = app.test_client()
    assert [_me(client, session) for _ in range(20)] == [401] * 20
