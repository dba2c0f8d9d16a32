"""Login throttling per account and per client address, in the database and in Redis."""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from myapp.api.app import create_app
from myapp.api.conftest import BACKENDS, all_at_once, make_config, serving, throwaway_database
from myapp.api.db import dispose
from myapp.api.testdb import TestDatabase, create_test_database

REDIS_URL = os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def _redis_or_skip() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"Redis is required in CI: {REDIS_URL}: {exc}")
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture(params=[*BACKENDS, "redis"])
def throttled_app(request: pytest.FixtureRequest) -> Iterator[Flask]:
    """Counters in the database (each backend), or in Redis (on SQLite)."""
    redis_url = _redis_or_skip() if request.param == "redis" else None
    with throwaway_database("sqlite" if redis_url else request.param) as database:
        application = _throttled(database, redis_url)
        try:
            yield application
        finally:
            dispose(application.extensions["myapp"].db)
            if redis_url:
                import redis

                client = redis.Redis.from_url(redis_url)
                prefix = application.extensions["myapp"].config.redis_prefix
                for key in client.scan_iter(f"{prefix}*"):
                    client.delete(key)


MAX_PAIR, MAX_IP, ACCOUNT_FREE, MAX_DELAY = 3, 5, 3, 0.4


def _throttled(
    database: TestDatabase, redis_url: str | None = None, window: int = 60, **overrides: Any
) -> Flask:
    settings: dict[str, Any] = {
        "redis_url": redis_url,
        "redis_prefix": f"myapp-test-{uuid.uuid4().hex}:",
        "login_max_failures_pair": MAX_PAIR,
        "login_max_failures_ip": MAX_IP,
        "login_max_failures_account": ACCOUNT_FREE,
        "login_max_delay_seconds": MAX_DELAY,
        "login_window_seconds": window,
    }
    return create_app(make_config(database, **{**settings, **overrides}))


def _login(
    app: Flask, email: str, password: str, ip: str = "192.0.2.1"
) -> tuple[int, dict[str, str], dict]:
    response = app.test_client().post(
        "/api/v1/auth/login",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )
    return response.status_code, dict(response.headers), response.get_json()


def _count(app: Flask, key: str) -> int:
    """A throttle counter as stored (Redis or the login_failure table)."""
    st = app.extensions["myapp"]
    if st.config.redis_url:
        import redis

        value = redis.Redis.from_url(st.config.redis_url).get(
            f"{st.config.redis_prefix}login:{key}"
        )
        return int(value or 0)
    with app.app_context():
        row = st.db(st.db.login_failure.throttle_key == key).select().first()
        return row.failures if row else 0


def test_one_address_is_stopped_per_account(throttled_app: Flask) -> None:
    for _ in range(MAX_PAIR):
        assert _login(throttled_app, "admin@example.com", "wrong password!")[0] == 401
    status, headers, body = _login(throttled_app, "admin@example.com", "admin123456!")
    assert status == 429
    assert body["error"]["code"] == "too_many_requests"
    assert 0 < int(headers["Retry-After"]) <= 60
    # Other accounts from that address still get their answers (until the address budget) ...
    assert _login(throttled_app, "someone@example.com", "whatever password")[0] == 401


def test_a_flood_from_one_address_does_not_lock_the_owner_out(throttled_app: Flask) -> None:
    statuses = [
        _login(throttled_app, "admin@example.com", f"guess {index}!!", ip="203.0.113.66")[0]
        for index in range(30)
    ]
    assert statuses == [401] * MAX_PAIR + [429] * (30 - MAX_PAIR)
    assert _count(throttled_app, "acct:admin@example.com") == 30
    # The owner, elsewhere: slowed (the account is past its free attempts), not refused.
    started = time.perf_counter()
    assert _login(throttled_app, "admin@example.com", "admin123456!", ip="198.51.100.20")[0] == 200
    assert time.perf_counter() - started >= MAX_DELAY
    # Their success gave its attempt back; the attacker's address stays refused.
    assert _count(throttled_app, "acct:admin@example.com") == 30
    assert _login(throttled_app, "admin@example.com", "admin123456!", ip="203.0.113.66")[0] == 429


def test_guesses_from_many_addresses_are_slowed(throttled_app: Flask) -> None:
    """Past the account's free attempts each one waits, doubling up to the cap."""
    policy = throttled_app.extensions["myapp"].throttle.policy
    delays = [policy.delay(n) for n in range(1, 9)]
    assert delays == pytest.approx([0, 0, 0, 0.05, 0.1, 0.2, 0.4, 0.4])
    for index in range(ACCOUNT_FREE):
        assert _login(throttled_app, "slow@example.com", "wrong!", ip=f"192.0.2.{index}")[0] == 401
    started = time.perf_counter()
    for index in range(4):
        assert (
            _login(throttled_app, "slow@example.com", "wrong!", ip=f"192.0.2.{50 + index}")[0]
            == 401
        )
    assert time.perf_counter() - started >= 0.05 + 0.1 + 0.2 + 0.4


def test_address_throttle(throttled_app: Flask) -> None:
    for index in range(MAX_IP):
        assert _login(throttled_app, f"user{index}@example.com", "wrong password!")[0] == 401
    status, headers, _ = _login(throttled_app, "admin@example.com", "admin123456!")
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert _login(throttled_app, "admin@example.com", "admin123456!", ip="198.51.100.7")[0] == 200


def test_success_resets_the_pair(throttled_app: Flask) -> None:
    for _ in range(2):
        for _ in range(MAX_PAIR - 1):
            assert _login(throttled_app, "admin@example.com", "wrong password!")[0] == 401
        assert _login(throttled_app, "admin@example.com", "admin123456!")[0] == 200


def _change_password(
    app: Flask, access_token: str, current: str, ip: str = "192.0.2.1"
) -> tuple[int, dict[str, str], dict]:
    response = app.test_client().post(
        "/api/v1/auth/password",
        json={"current_password": current, "new_password": "a brand new passphrase"},
        headers={"Authorization": f"Bearer {access_token}"},
        environ_base={"REMOTE_ADDR": ip},
    )
    return response.status_code, dict(response.headers), response.get_json()


def test_wrong_current_passwords_spend_the_login_budget(throttled_app: Flask) -> None:
    """A stolen access token must not give unlimited guesses at its user's password."""
    status, _, session = _login(throttled_app, "admin@example.com", "admin123456!")
    assert status == 200
    token = session["access_token"]
    for _ in range(MAX_PAIR):
        status, _, body = _change_password(throttled_app, token, "a wrong guess!")
        assert status == 422 and "current_password" in body["error"]["details"]["fields"]
    status, headers, body = _change_password(throttled_app, token, "admin123456!")
    assert status == 429 and body["error"]["code"] == "too_many_requests"
    assert "password attempts" in body["error"]["message"]
    assert 0 < int(headers["Retry-After"]) <= 60
    # The same budget as logging in from that address; the owner elsewhere is not locked out.
    assert _login(throttled_app, "admin@example.com", "admin123456!")[0] == 429
    assert _login(throttled_app, "admin@example.com", "admin123456!", ip="198.51.100.9")[0] == 200
    with throttled_app.app_context():
        db = throttled_app.extensions["myapp"].db
        failed = db(db.audit_log.action == "auth.reauthentication_failed").count()
    assert failed == MAX_PAIR


def test_an_admin_edits_wrong_current_password_spends_the_same_budget(
    throttled_app: Flask,
) -> None:
    """PATCH /users/{id} on an admin's e-mail re-authenticates like /auth/password: a stolen
    admin token gets no more guesses there than at login (issue 13)."""
    status, _, session = _login(throttled_app, "admin@example.com", "admin123456!")
    assert status == 200
    client = throttled_app.test_client()

    def edit(current: str) -> tuple[int, dict]:
        response = client.patch(
            f"/api/v1/users/{session['user']['id']}",
            json={"email": "moved@example.com", "current_password": current},
            headers={"Authorization": f"Bearer {session['access_token']}"},
            environ_base={"REMOTE_ADDR": "192.0.2.1"},
        )
        return response.status_code, response.get_json()

    for _ in range(MAX_PAIR):
        status, body = edit("a wrong guess!")
        assert status == 422 and "current_password" in body["error"]["details"]["fields"]
    status, body = edit("admin123456!")
    assert status == 429 and body["error"]["code"] == "too_many_requests", body
    # Counted before checking (atomic), so the refused attempt is spent too.
    assert _count(throttled_app, "acct:admin@example.com") == MAX_PAIR + 1
    with throttled_app.app_context():
        db = throttled_app.extensions["myapp"].db
        failed = db(db.audit_log.action == "auth.reauthentication_failed").select()
        assert [row.details for row in failed] == [{"for": "user_update"}] * MAX_PAIR
        assert db(db.app_user.email == "moved@example.com").count() == 0


def test_a_password_change_resets_the_account_counter(throttled_app: Flask) -> None:
    status, _, session = _login(throttled_app, "admin@example.com", "admin123456!")
    token = session["access_token"]
    for _ in range(2):
        assert _change_password(throttled_app, token, "a wrong guess!")[0] == 422
    status, _, changed = _change_password(throttled_app, token, "admin123456!")
    assert status == 200
    for _ in range(2):
        status, _, body = _change_password(throttled_app, changed["access_token"], "wrong again!")
        assert status == 422, body


@pytest.mark.parametrize(
    ("hops", "chains"),
    [
        # One proxy (the WebUI): its entry, the last, is the browser; anything before is the
        # client's own say and ignored.
        (1, ["1.1.1.1, 198.51.100.1", "2.2.2.2, 198.51.100.1", "198.51.100.1"]),
        # An ingress and the WebUI: the second-to-last entry, appended by the ingress.
        (
            2,
            [
                "9.9.9.9, 198.51.100.1, 10.0.0.9",
                "198.51.100.1, 10.0.0.9",
                "8.8.8.8, 198.51.100.1, 10.0.0.7",
            ],
        ),
    ],
)
def test_address_behind_trusted_proxies(
    tmp_path_factory: pytest.TempPathFactory, hops: int, chains: list[str]
) -> None:
    database = create_test_database("sqlite", tmp_path_factory.mktemp("proxied"))
    app = _throttled(database, trusted_proxy_hops=hops, login_max_failures_ip=2)
    try:
        client = app.test_client()

        def attempt(forwarded_for: str) -> int:
            response = client.post(
                "/api/v1/auth/login",
                json={"email": "nobody@example.com", "password": "wrong password!"},
                headers={"X-Forwarded-For": forwarded_for},
                environ_base={"REMOTE_ADDR": "10.0.0.2"},  # the proxy next to us
            )
            return response.status_code

        # Spoofed entries in front do not give the browser a fresh budget.
        assert [attempt(chain) for chain in chains] == [401, 401, 429]
        assert attempt("198.51.100.2" + ", 10.0.0.9" * (hops - 1)) == 401  # another browser
        assert _count(app, "ip:198.51.100.1") == 3 and _count(app, "ip:10.0.0.2") == 0
        with app.app_context():
            db = app.extensions["myapp"].db
            ips = {row.ip for row in db(db.audit_log.action == "auth.login_failed").select()}
        assert ips == {"198.51.100.1", "198.51.100.2"}
    finally:
        dispose(app.extensions["myapp"].db)


@pytest.mark.parametrize("kind", BACKENDS)
def test_workers_without_redis_share_one_budget(kind: str) -> None:
    """Two app instances (two gunicorn workers, or two replicas) count in the same table."""
    with throwaway_database(kind) as database:
        first = _throttled(database, window=2)
        second = _throttled(database, window=2)
        try:
            for app in (first, second, first):
                assert _login(app, "admin@example.com", "wrong password!")[0] == 401
            status, headers, _ = _login(second, "admin@example.com", "admin123456!")
            assert status == 429 and 0 < int(headers["Retry-After"]) <= 2
            time.sleep(2.1)  # the window ends: the pair may try again
            assert _login(second, "admin@example.com", "admin123456!")[0] == 200
            # A fresh window, and the success gave its attempt back.
            assert _count(first, "acct:admin@example.com") == 0
        finally:
            for app in (first, second):
                dispose(app.extensions["myapp"].db)


def test_parallel_wrong_passwords_spend_exactly_their_number(throttled_app: Flask) -> None:
    """50 simultaneous wrong passwords over a real threaded server, from one address: each is
    counted (no lost update), and only the pair's budget of them is checked at all."""
    attempts = 50
    with serving(throttled_app) as url:
        statuses = [
            response.status_code
            for response in all_at_once(
                [
                    functools.partial(
                        requests.post,
                        f"{url}/api/v1/auth/login",
                        json={"email": "racer@example.com", "password": "wrong password!"},
                        timeout=60,
                    )
                ]
                * attempts
            )
        ]
    assert sorted(statuses) == [401] * MAX_PAIR + [429] * (attempts - MAX_PAIR), statuses
    assert _count(throttled_app, "acct:racer@example.com") == attempts
    assert _count(throttled_app, "ip:127.0.0.1") == attempts
