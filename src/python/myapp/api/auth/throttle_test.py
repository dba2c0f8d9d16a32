"""Login throttling per account and per client address, in the database and in Redis."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask

from myapp.api.app import create_app
from myapp.api.conftest import BACKENDS, make_config, throwaway_database
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


def _throttled(database: TestDatabase, redis_url: str | None = None, window: int = 60) -> Flask:
    return create_app(
        make_config(
            database,
            redis_url=redis_url,
            redis_prefix=f"myapp-test-{uuid.uuid4().hex}:",
            login_max_failures_account=3,
            login_max_failures_ip=5,
            login_window_seconds=window,
        )
    )


def _login(
    app: Flask, email: str, password: str, ip: str = "192.0.2.1"
) -> tuple[int, dict[str, str], dict]:
    response = app.test_client().post(
        "/api/v1/auth/login",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )
    return response.status_code, dict(response.headers), response.get_json()


def test_account_throttle(throttled_app: Flask) -> None:
    for _ in range(3):
        assert _login(throttled_app, "admin@example.com", "wrong password!")[0] == 401
    status, headers, body = _login(throttled_app, "admin@example.com", "admin123456!")
    assert status == 429
    assert body["error"]["code"] == "too_many_requests"
    assert 0 < int(headers["Retry-After"]) <= 60
    # Another address does not unlock the account ...
    assert _login(throttled_app, "admin@example.com", "admin123456!", ip="192.0.2.99")[0] == 429
    # ... and other accounts from the first address still work.
    assert _login(throttled_app, "someone@example.com", "whatever password")[0] == 401


def test_address_throttle(throttled_app: Flask) -> None:
    for index in range(5):
        assert _login(throttled_app, f"user{index}@example.com", "wrong password!")[0] == 401
    status, headers, _ = _login(throttled_app, "admin@example.com", "admin123456!")
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert _login(throttled_app, "admin@example.com", "admin123456!", ip="198.51.100.7")[0] == 200


def test_success_resets_the_account_counter(throttled_app: Flask) -> None:
    for _ in range(2):
        assert (
            _login(throttled_app, "admin@example.com", "wrong password!", ip="203.0.113.1")[0]
            == 401
        )
    assert _login(throttled_app, "admin@example.com", "admin123456!", ip="203.0.113.2")[0] == 200
    for _ in range(2):
        assert (
            _login(throttled_app, "admin@example.com", "wrong password!", ip="203.0.113.3")[0]
            == 401
        )
    assert _login(throttled_app, "admin@example.com", "admin123456!", ip="203.0.113.4")[0] == 200


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
    for _ in range(3):
        status, _, body = _change_password(throttled_app, token, "a wrong guess!")
        assert status == 422 and "current_password" in body["error"]["details"]["fields"]
    status, headers, body = _change_password(throttled_app, token, "admin123456!")
    assert status == 429 and body["error"]["code"] == "too_many_requests"
    assert "password attempts" in body["error"]["message"]
    assert 0 < int(headers["Retry-After"]) <= 60
    # One budget per account: logging in is held back too, from any address.
    assert _login(throttled_app, "admin@example.com", "admin123456!", ip="198.51.100.9")[0] == 429
    with throttled_app.app_context():
        db = throttled_app.extensions["myapp"].db
        failed = db(db.audit_log.action == "auth.reauthentication_failed").count()
    assert failed == 3


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


def test_address_behind_a_trusted_proxy(tmp_path_factory: pytest.TempPathFactory) -> None:
    database = create_test_database("sqlite", tmp_path_factory.mktemp("proxied"))
    app = create_app(make_config(database, trusted_proxy_hops=1, login_max_failures_ip=2))
    try:
        client = app.test_client()

        def attempt(forwarded_for: str) -> int:
            response = client.post(
                "/api/v1/auth/login",
                json={"email": "nobody@example.com", "password": "wrong password!"},
                headers={"X-Forwarded-For": forwarded_for},
                environ_base={"REMOTE_ADDR": "10.0.0.2"},  # the WebUI proxy
            )
            return response.status_code

        # A spoofed entry before the proxy's own is ignored: the proxy-appended one counts.
        assert attempt("1.1.1.1, 198.51.100.1") == 401
        assert attempt("2.2.2.2, 198.51.100.1") == 401
        assert attempt("198.51.100.1") == 429
        assert attempt("198.51.100.2") == 401  # another browser behind the same proxy
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
            time.sleep(2.1)  # the window ends: the account may try again
            assert _login(second, "admin@example.com", "admin123456!")[0] == 200
            # The success cleared the account's counter; the address keeps its (expired) one.
            with first.app_context():
                db = first.extensions["myapp"].db
                keys = {row.throttle_key: row.failures for row in db(db.login_failure).select()}
            assert keys == {"ip:192.0.2.1": 3}
        finally:
            for app in (first, second):
                dispose(app.extensions["myapp"].db)


@pytest.mark.parametrize("kind", BACKENDS)
def test_parallel_failures_are_all_counted(kind: str) -> None:
    """Simultaneous failed logins on one account: no lost update, no 5xx (the upsert holds)."""
    with throwaway_database(kind) as database:
        app = _throttled(database)
        try:
            with ThreadPoolExecutor(8) as pool:
                statuses = list(
                    pool.map(
                        lambda i: _login(
                            app, "racer@example.com", "wrong password!", f"192.0.2.{i}"
                        )[0],
                        range(8),
                    )
                )
            assert set(statuses) <= {401, 429}, statuses
            with app.app_context():
                db = app.extensions["myapp"].db
                row = db(db.login_failure.throttle_key == "acct:racer@example.com").select().first()
            assert row is not None and row.failures == statuses.count(401)
        finally:
            dispose(app.extensions["myapp"].db)
