"""Database layer: the PyDAL table definitions and a start-up migration safe for many processes.

One code path for SQLite, PostgreSQL (psycopg2) and MySQL/MariaDB (pymysql). Schema changes run
in `migrate_schema()` under a database-level lock (PostgreSQL advisory lock, MySQL GET_LOCK,
an fcntl lock file next to the SQLite file), so replicas and gunicorn masters starting together
cannot race; request-serving processes open the DAL with ``migrate=False``.

PyDAL keeps its migration metadata (``*.table`` files) under ``$DATA_DIR/pydal/``. When those files
are missing for a table that already exists (a new replica, a fresh container) the table is
adopted with ``fake_migrate`` instead of being created again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydal import DAL, Field

from myapp.api.auth.session_cache import AUTH_CHANNEL
from myapp.api.config import Config

log = logging.getLogger(__name__)

ROLES = ("admin", "maintainer", "viewer")
MIGRATION_LOCK_KEY = 0x6D79617070  # "myapp": the advisory-lock key for schema changes


def utcnow() -> datetime:
    """Naive UTC, whole seconds: every backend stores the same value (MySQL DATETIME has no us)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def define_tables(db: DAL, table_options: dict[str, dict[str, Any]] | None = None) -> None:
    """Define every table on `db`; `table_options[name]` adds migrate/fake_migrate flags."""
    opts = table_options or {}
    db.define_table(
        "app_user",
        Field("email", "string", length=255, notnull=True, unique=True),
        Field("full_name", "string", length=200, notnull=True, default=""),
        Field("role", "string", length=16, notnull=True),
        Field("active", "boolean", notnull=True, default=True),
        Field("password_hash", "string", length=128, notnull=True),
        # Bumped on password change, deactivation or role change: access tokens carry it.
        Field("token_version", "integer", notnull=True, default=1),
        Field("created_at", "datetime", notnull=True),
        Field("updated_at", "datetime", notnull=True),
        **opts.get("app_user", {}),
    )
    db.define_table(
        "refresh_token",
        Field("user_id", "reference app_user", ondelete="CASCADE", notnull=True),
        Field("token_hash", "string", length=64, notnull=True, unique=True),
        Field("family_id", "string", length=32, notnull=True),
        Field("parent_id", "integer"),
        Field("token_version", "integer", notnull=True),
        Field("used_at", "datetime"),
        Field("revoked", "boolean", notnull=True, default=False),
        Field("expires_at", "datetime", notnull=True),
        Field("created_at", "datetime", notnull=True),
        # When the session (the family) ends however it is used: login + SESSION_MAX_SECONDS,
        # copied from token to token. Null in rows older than the column: see auth.service.
        Field("session_expires_at", "datetime"),
        **opts.get("refresh_token", {}),
    )
    db.define_table(
        "fw_rule",
        Field("name", "string", length=100, notnull=True),
        Field("source_cidr", "string", length=64, notnull=True),
        Field("protocol", "string", length=8, notnull=True),
        Field("dst_port_min", "integer"),
        Field("dst_port_max", "integer"),
        Field("action", "string", length=16, notnull=True),
        Field("rate_limit_pps", "integer"),
        Field("sample_rate", "integer"),
        Field("enabled", "boolean", notnull=True, default=True),
        Field("priority", "integer", notnull=True, default=100),
        Field("revision", "integer", notnull=True, default=1),
        # source_cidr|protocol|port range: the unique key that reports overlapping duplicates.
        Field("match_key", "string", length=128, notnull=True, unique=True),
        Field("created_by", "string", length=255, notnull=True),
        Field("updated_by", "string", length=255, notnull=True),
        Field("created_at", "datetime", notnull=True),
        Field("updated_at", "datetime", notnull=True),
        Field("sync_state", "string", length=16, notnull=True, default="disabled"),
        Field("sync_error", "text"),
        **opts.get("fw_rule", {}),
    )
    db.define_table(
        "audit_log",
        Field("created_at", "datetime", notnull=True),
        Field("actor_id", "integer"),
        Field("actor_email", "string", length=255),
        Field("action", "string", length=64, notnull=True),
        Field("object_type", "string", length=32),
        Field("object_id", "string", length=64),
        Field("details", "json"),
        Field("request_id", "string", length=64),
        Field("ip", "string", length=64),
        **opts.get("audit_log", {}),
    )
    db.define_table(
        "login_failure",
        # Failed logins per throttle key ("acct:<email>", "ip:<address>") in the current window,
        # when Redis is not configured (throttle.py).
        Field("throttle_key", "string", length=300, notnull=True, unique=True),
        Field("failures", "integer", notnull=True, default=0),
        Field("window_end", "datetime", notnull=True),
        **opts.get("login_failure", {}),
    )
    db.define_table(
        "event_outbox",
        # An audit entry not yet taken by the connector (only with CONNECTOR_URL): written in
        # the entry's transaction, deleted once sent. See events.py for the lease protocol.
        Field("audit_id", "reference audit_log", ondelete="CASCADE", notnull=True, unique=True),
        Field("claimed_until", "datetime"),  # a forwarder's lease; NULL: free to claim
        Field("attempts", "integer", notnull=True, default=0),  # 5xx answers to this entry
        Field("last_error", "string", length=255),
        **opts.get("event_outbox", {}),
    )


TABLES = ("app_user", "refresh_token", "fw_rule", "audit_log", "event_outbox", "login_failure")


def _metadata_dir(config: Config) -> Path:
    digest = hashlib.sha256(config.db_uri.encode()).hexdigest()[:16]
    path = config.data_dir.resolve() / "pydal" / digest
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sqlite_path(config: Config) -> Path:
    return Path(config.db_uri.split("://", 1)[1])


def open_db(
    config: Config,
    *,
    pool_size: int | None = None,
    autocommit: bool = True,
    on_connect: Callable[[Any], None] | None = None,
) -> DAL:
    """A DAL for serving requests (no schema changes); connections are per thread, pooled.

    Serving connections run in autocommit mode: a read is one round trip, with no BEGIN and
    ROLLBACK around it. Requests that write open an explicit transaction (`begin`/`commit`).
    Pooled connections are not pinged on checkout (a dead one fails one request with 503 and
    is dropped). `on_connect` gets each new driver connection (after the settings above).
    """
    db = _dal(
        config,
        pool_size=config.db_pool_size if pool_size is None else pool_size,
        autocommit=autocommit,
        on_connect=on_connect,
    )
    db._adapter.check_active_connection = False
    define_tables(db, {name: {"migrate": False} for name in TABLES})
    return db


# SQLite's BEGIN IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout
# instead of failing with SQLITE_BUSY when a read snapshot would have to be upgraded.
_BEGIN = {"sqlite": "BEGIN IMMEDIATE", "postgres": "BEGIN", "mysql": "START TRANSACTION"}


def begin(db: DAL) -> None:
    db._adapter.execute(_BEGIN[db._adapter.dbengine])


def commit(db: DAL) -> None:
    db._adapter.execute("COMMIT")


def rollback(db: DAL) -> None:
    db._adapter.execute("ROLLBACK")


def _dal(
    config: Config,
    *,
    pool_size: int,
    folder: Path | None = None,
    autocommit: bool = False,
    on_connect: Callable[[Any], None] | None = None,
) -> DAL:
    kind = config.db_kind
    driver_args: dict[str, Any] = {}
    if kind == "sqlite":
        _sqlite_path(config).parent.mkdir(parents=True, exist_ok=True)
        driver_args["timeout"] = 30  # seconds to wait for a writer's lock
        pool_size = 0
    elif kind == "mysql":
        driver_args["connect_timeout"] = 10
    return DAL(
        config.db_uri,
        folder=str(folder or _metadata_dir(config)),
        pool_size=pool_size,
        migrate=False,
        driver_args=driver_args,
        attempts=1,
        after_connection=lambda adapter: _after_connection(adapter, autocommit, on_connect),
    )


def _after_connection(
    adapter: Any, autocommit: bool, on_connect: Callable[[Any], None] | None
) -> None:
    connection = adapter.connection
    if autocommit:
        if adapter.dbengine == "sqlite":
            connection.isolation_level = None
        elif adapter.dbengine == "postgres":
            connection.autocommit = True
        else:
            connection.autocommit(True)
    if adapter.dbengine == "sqlite":
        adapter.execute("PRAGMA foreign_keys=ON;")
        adapter.execute("PRAGMA journal_mode=WAL;")
        adapter.execute("PRAGMA busy_timeout=30000;")
    elif adapter.dbengine == "mysql":
        adapter.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;")
        adapter.execute("SET time_zone = '+00:00';")
    if on_connect is not None:
        on_connect(connection)


@contextlib.contextmanager
def schema_lock(db: DAL, config: Config) -> Iterator[None]:
    """Hold a database-wide lock (all processes, all hosts sharing the database)."""
    kind = config.db_kind
    if kind == "postgres":
        db.executesql("SELECT pg_advisory_lock(%s)" % MIGRATION_LOCK_KEY)
        try:
            yield
        except BaseException:
            db.rollback()  # the unlock below must not run in an aborted transaction
            raise
        finally:
            db.executesql("SELECT pg_advisory_unlock(%s)" % MIGRATION_LOCK_KEY)
    elif kind == "mysql":
        # GET_LOCK names are server-wide: scope it to this database (PostgreSQL's advisory
        # locks already are per database).
        got = db.executesql("SELECT GET_LOCK(CONCAT('myapp_schema:', DATABASE()), 120)")[0][0]
        if got != 1:
            raise RuntimeError("could not take the schema lock (GET_LOCK) within 120 s")
        try:
            yield
        except BaseException:
            db.rollback()
            raise
        finally:
            db.executesql("SELECT RELEASE_LOCK(CONCAT('myapp_schema:', DATABASE()))")
    else:
        lock_path = _sqlite_path(config).with_suffix(".schema.lock")
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _existing_tables(db: DAL, config: Config) -> set[str]:
    kind = config.db_kind
    if kind == "sqlite":
        rows = db.executesql("SELECT name FROM sqlite_master WHERE type='table'")
    elif kind == "postgres":
        rows = db.executesql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    else:
        rows = db.executesql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
        )
    return {str(row[0]).lower() for row in rows}


# Secondary indexes for the hot lookups (unique constraints come with their fields):
# the per-request session check and the revocations go by family and by user.
INDEXES = (
    ("refresh_token", ("family_id",)),
    ("refresh_token", ("user_id",)),
    ("audit_log", ("object_type", "object_id")),
    ("login_failure", ("window_end",)),
)


def _ensure_index(db: DAL, config: Config, table: str, columns: tuple[str, ...]) -> None:
    """CREATE INDEX unless it exists (MySQL has no CREATE INDEX IF NOT EXISTS)."""
    name = f"ix_{table}_{'_'.join(columns)}"
    if config.db_kind == "mysql":
        exists = db.executesql(
            "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE()"
            " AND table_name = %s AND index_name = %s",
            placeholders=(table, name),
        )[0][0]
        if not exists:
            db.executesql(f"CREATE INDEX {name} ON {table} ({', '.join(columns)})")
    else:
        db.executesql(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(columns)})")


# PostgreSQL tells every listening API process which user's sessions may have changed, whoever
# changed them (see auth/session_cache.py). Any UPDATE or DELETE counts: inserts cannot turn a
# valid session into an invalid one.
_AUTH_TRIGGER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION myapp_auth_changed() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'app_user' THEN
        PERFORM pg_notify('{AUTH_CHANNEL}', OLD.id::text);
    ELSE
        PERFORM pg_notify('{AUTH_CHANNEL}', OLD.user_id::text);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql
"""


def _ensure_auth_triggers(db: DAL) -> None:
    db.executesql(_AUTH_TRIGGER_FUNCTION)
    for table in ("app_user", "refresh_token"):
        trigger = f"{table}_auth_changed"
        exists = db.executesql(
            "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass",
            placeholders=(trigger, table),
        )
        if exists:  # no DDL (and no table lock) when a replica starts against a ready schema
            continue
        db.executesql(
            f"CREATE TRIGGER {trigger} AFTER UPDATE OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION myapp_auth_changed()"
        )


def table_metadata_path(db: DAL, config: Config, folder: Path, table: str) -> Path:
    """Where PyDAL keeps what it last migrated `table` to: beside the file for SQLite (PyDAL's
    own rule for sqlite:/// URIs, whatever `folder` says), in `folder` for the others."""
    base = _sqlite_path(config).parent if config.db_kind == "sqlite" else folder
    return base / f"{db._uri_hash}_{table}.table"


def migrate_schema(config: Config) -> None:
    """Create or alter the tables (idempotent; serialised across processes by `schema_lock`)."""
    folder = _metadata_dir(config)
    db = _dal(config, pool_size=0, folder=folder)
    try:
        with schema_lock(db, config):
            existing = _existing_tables(db, config)
            options: dict[str, dict[str, Any]] = {}
            for name in TABLES:
                metadata = table_metadata_path(db, config, folder, name)
                if name not in existing and metadata.exists():
                    metadata.unlink()  # stale: the database was recreated empty; create again
                adopt = name in existing and not metadata.exists()
                options[name] = {"migrate": True, "fake_migrate": adopt}
            define_tables(db, options)
            for table, columns in INDEXES:
                _ensure_index(db, config, table, columns)
            if config.db_kind == "postgres":
                _ensure_auth_triggers(db)
            db.commit()
    finally:
        db.close()
    log.debug("schema migrated in %s", folder)


def dispose(db: DAL) -> None:
    """Close this thread's connection and every pooled one (before fork, at shutdown)."""
    with contextlib.suppress(Exception):
        db.close()
    from pydal.connection import ConnectionPool

    for pool in ConnectionPool.POOLS.values():
        while pool:
            conn = pool.pop()
            with contextlib.suppress(Exception):
                conn.close()


def integrity_errors(db: DAL) -> tuple[type[BaseException], ...]:
    """The driver's IntegrityError (unique-constraint violation) class."""
    return (db._adapter.driver.IntegrityError,)


# A transaction the database aborted so that a simultaneous one could finish: PostgreSQL's
# deadlock_detected and serialization_failure, MySQL's ER_LOCK_DEADLOCK and lock wait timeout.
_PG_CONFLICTS = frozenset({"40P01", "40001"})
_MYSQL_CONFLICTS = frozenset({1213, 1205})


def is_transaction_conflict(exc: BaseException) -> bool:
    """True when `exc` aborted the transaction only because of a concurrent one (retryable)."""
    if getattr(exc, "pgcode", None) in _PG_CONFLICTS:
        return True
    code = exc.args[0] if exc.args else None  # PyMySQL: (errno, message)
    return isinstance(code, int) and code in _MYSQL_CONFLICTS


def forked() -> None:
    """Drop pooled connections inherited from a parent process (never share a socket)."""
    from pydal.connection import ConnectionPool

    ConnectionPool.POOLS.clear()


__all__ = [
    "DAL",
    "ROLES",
    "TABLES",
    "define_tables",
    "dispose",
    "forked",
    "integrity_errors",
    "migrate_schema",
    "is_transaction_conflict",
    "open_db",
    "utcnow",
]
