"""Fixtures shared by the API tests: one database per test module on each backend.

`backend` is parametrized over sqlite, postgres and mariadb. PostgreSQL and MariaDB come from
TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432) and TEST_MYSQL_URL (default
mysql://root@127.0.0.1:3306); each module gets a uniquely named database that is dropped after.
Unreachable servers skip with the reason, or fail when CI=true.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server  # pants: no-infer-dep (installed with flask)

from myapp.api.app import create_app
from myapp.api.config import Config
from myapp.api.db import dispose
from myapp.api.testdb import TestDatabase, create_test_database

BACKENDS = ("sqlite", "postgres", "mariadb")
TEST_PASSWORD = "correct horse battery"  # noqa: S105


@contextlib.contextmanager
def throwaway_database(kind: str) -> Iterator[TestDatabase]:
    """A fresh database of `kind`, dropped afterwards; an unreachable server skips the test with
    the reason, or fails it when CI=true."""
    tmp = Path(tempfile.mkdtemp(prefix="myapp-api-test-"))
    try:
        database = create_test_database(kind, tmp)
    except ConnectionError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{kind} is required in CI: {exc}")
        pytest.skip(f"{kind} unreachable: {exc}")
    try:
        yield database
    finally:
        database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[TestDatabase]:
    with throwaway_database(request.param) as database:
        yield database


def make_config(database: TestDatabase, **overrides: Any) -> Config:
    base = Config(
        app_env="development",
        database_url=database.url,
        data_dir=database.data_dir,
        bcrypt_rounds=4,
        testing=True,
        redis_prefix=f"myapp-test-{uuid.uuid4().hex}:",
    )
    return base.with_overrides(**overrides)


@contextlib.contextmanager
def running_app(config: Config) -> Iterator[Flask]:
    """The API app for `config`; its database connections are closed afterwards."""
    application = create_app(config)
    try:
        yield application
    finally:
        dispose(application.extensions["myapp"].db)


@pytest.fixture(scope="module")
def app(backend: TestDatabase) -> Iterator[Flask]:
    with running_app(make_config(backend)) as application:
        yield application


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Session:
    """A logged-in test user: `headers` carries the bearer token."""

    def __init__(self, user: dict[str, Any], tokens: dict[str, Any]) -> None:
        self.user = user
        self.tokens = tokens
        self.headers = {"Authorization": f"Bearer {tokens['access_token']}"}


def login(client: FlaskClient, email: str, password: str) -> Session:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    if response.status_code != 200:
        pytest.fail(f"login as {email} failed: {response.get_json()}")
    body = response.get_json()
    return Session(body["user"], body)


@pytest.fixture(scope="module")
def login_as(app: Flask) -> Callable[[str], Session]:
    """login_as("viewer") -> a fresh session of a user with that role (created once per module)."""
    client = app.test_client()
    created: dict[str, str] = {}

    def _login(role: str) -> Session:
        if role not in created:
            if role == "admin":
                created[role] = app.extensions["myapp"].config.admin_email
                password = app.extensions["myapp"].config.admin_password
            else:
                admin = _login("admin")
                email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
                response = client.post(
                    "/api/v1/users",
                    headers=admin.headers,
                    json={
                        "email": email,
                        "password": TEST_PASSWORD,
                        "full_name": f"Test {role}",
                        "role": role,
                    },
                )
                if response.status_code != 201:
                    pytest.fail(f"creating a {role} failed: {response.get_json()}")
                created[role] = email
        password = (
            app.extensions["myapp"].config.admin_password if role == "admin" else TEST_PASSWORD
        )
        return login(client, created[role], password)

    return _login


@contextlib.contextmanager
def serving(wsgi_app: Any, port: int = 0) -> Iterator[str]:
    """`wsgi_app` behind a real threaded HTTP server on loopback; yields its base URL."""
    server = make_server("127.0.0.1", port, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def base_url(app: Flask) -> Iterator[str]:
    """The module's app behind a real threaded HTTP server (for requests that must overlap)."""
    with serving(app) as url:
        yield url


def all_at_once(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Make the calls from as many threads, released together; their answers in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], requests.Response]) -> requests.Response:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))
