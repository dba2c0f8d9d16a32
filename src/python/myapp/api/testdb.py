"""Throw-away databases for tests: a unique database on PostgreSQL/MariaDB, or a SQLite file."""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306"


@dataclass
class TestDatabase:
    __test__ = False  # not a pytest test class

    kind: str
    url: str
    data_dir: Path
    name: str
    server_url: str

    def drop(self) -> None:
        """Drop the database (server backends); the SQLite file goes with `data_dir`."""
        from pydal.connection import ConnectionPool

        for pool in ConnectionPool.POOLS.values():  # pooled connections would block DROP
            while pool:
                with contextlib.suppress(Exception):  # already broken connections
                    pool.pop().close()
        if self.kind == "postgres":
            with _pg_admin(self.server_url) as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        elif self.kind == "mariadb":
            with _mysql_admin(self.server_url) as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")


class _Cursor:
    def __init__(self, conn: object) -> None:
        self._conn = conn

    def __enter__(self) -> Any:
        self._cur = self._conn.cursor()  # type: ignore[attr-defined]
        return self._cur

    def __exit__(self, *exc: object) -> None:
        self._cur.close()
        self._conn.close()  # type: ignore[attr-defined]


def _pg_admin(server_url: str) -> _Cursor:
    import psycopg2

    parts = urlsplit(server_url)
    try:
        conn = psycopg2.connect(
            host=parts.hostname,
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password,
            dbname="postgres",
            connect_timeout=5,
        )
    except psycopg2.OperationalError as exc:
        raise ConnectionError(f"{server_url}: {str(exc).strip()}") from None
    conn.autocommit = True
    return _Cursor(conn)


def _mysql_admin(server_url: str) -> _Cursor:
    import pymysql

    parts = urlsplit(server_url)
    try:
        conn = pymysql.connect(
            host=parts.hostname,
            port=parts.port or 3306,
            user=parts.username or "root",
            password=parts.password or "",
            connect_timeout=5,
            autocommit=True,
        )
    except pymysql.err.OperationalError as exc:
        raise ConnectionError(f"{server_url}: {exc}") from None
    return _Cursor(conn)


def create_test_database(kind: str, data_dir: Path, name: str | None = None) -> TestDatabase:
    """Create a uniquely named database; ConnectionError when the server cannot be reached."""
    name = name or f"myapp_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        return TestDatabase(kind, f"sqlite:///{data_dir / 'test.db'}", data_dir, name, "")
    if kind == "postgres":
        server = os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL
        with _pg_admin(server) as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    elif kind == "mariadb":
        server = os.environ.get("TEST_MYSQL_URL") or DEFAULT_MYSQL_URL
        with _mysql_admin(server) as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    else:
        raise ValueError(f"unknown backend {kind!r}")
    parts = urlsplit(server)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    return TestDatabase(kind, url, data_dir, name, server)
