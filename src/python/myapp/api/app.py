"""Flask application factory for the API service.

`create_app()` reads the configuration (unless given one), prepares the database (schema and
first admin) unless told the caller did it already (the gunicorn master does, before forking),
and wires blueprints, error handlers, request ids, access logs and metrics.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from flask import Flask, Response, g, has_request_context, request
from werkzeug.middleware.proxy_fix import ProxyFix  # pants: no-infer-dep (installed with flask)

from myapp.api import docs, probes
from myapp.api.audit.views import bp as audit_bp
from myapp.api.auth.session_cache import SessionCache, listen
from myapp.api.auth.views import bp as auth_bp
from myapp.api.cli import register_cli
from myapp.api.config import DEV_ADMIN_PASSWORD, Config, ConfigError
from myapp.api.db import (
    dispose,
    integrity_errors,
    is_transaction_conflict,
    migrate_schema,
    open_db,
    utcnow,
)
from myapp.api.errors import error_response, register_error_handlers
from myapp.api.events import EventForwarder
from myapp.api.fastpath.sync import start_reconciler
from myapp.api.fastpath.views import bp as fastpath_bp
from myapp.api.metrics import DB_ERRORS, request_metrics
from myapp.api.rules.views import bp as rules_bp
from myapp.api.security import TokenService, hash_password
from myapp.api.state import AppState
from myapp.api.throttle import ThrottlePolicy, build_throttle
from myapp.api.users.views import bp as users_bp
from myapp.common.logs import configure_logging, new_request_id, set_request_id_provider

log = logging.getLogger(__name__)
access_log = logging.getLogger("myapp.api.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_API_CSP = "default-src 'none'; frame-ancestors 'none'"


def prepare_database(config: Config) -> None:
    """Create/alter the schema and make sure an admin exists (safe to run in many processes)."""
    migrate_schema(config)
    db = open_db(config, pool_size=0, autocommit=False)
    try:
        table = db.app_user
        if not db(table.role == "admin").isempty():
            return
        if config.admin_password is None:
            raise ConfigError(
                "ADMIN_PASSWORD is required when APP_ENV=production and no admin exists yet"
            )
        now = utcnow()
        try:
            table.insert(
                email=config.admin_email,
                full_name="Administrator",
                role="admin",
                active=True,
                password_hash=hash_password(config.admin_password, config.bcrypt_rounds),
                token_version=1,
                created_at=now,
                updated_at=now,
            )
            db.commit()
        except integrity_errors(db):  # another process seeded it first
            db.rollback()
            return
        if config.admin_password == DEV_ADMIN_PASSWORD:
            log.warning(
                "development admin created: %s / %s (documented dev default)",
                config.admin_email,
                DEV_ADMIN_PASSWORD,
            )
        else:
            log.info("first admin created: %s", config.admin_email)
    finally:
        dispose(db)


def create_app(config: Config | None = None, *, prepare: bool = True) -> Flask:
    """Build the API application; nothing is read or connected at import time."""
    config = config or Config.from_env()
    if not config.testing:
        configure_logging(json_lines=config.log_format == "json", level=config.log_level)
    set_request_id_provider(lambda: g.get("request_id") if has_request_context() else None)
    if prepare:
        prepare_database(config)

    app = Flask(__name__)
    app.config["TESTING"] = config.testing
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.json.sort_keys = False  # type: ignore[attr-defined]
    sessions = _session_cache(config)
    db = open_db(config, on_connect=listen if sessions is not None else None)
    app.extensions["myapp"] = AppState(
        config=config,
        db=db,
        tokens=_token_service(config),
        throttle=build_throttle(
            db,
            config.redis_url,
            config.redis_prefix,
            ThrottlePolicy(
                max_pair=config.login_max_failures_pair,
                max_ip=config.login_max_failures_ip,
                account_free=config.login_max_failures_account,
                max_delay=config.login_max_delay_seconds,
                window=config.login_window_seconds,
            ),
        ),
        dummy_hash=hash_password(uuid.uuid4().hex, config.bcrypt_rounds),
        fastpath=start_reconciler(config) if config.fastpath_addr else None,
        sessions=sessions,
        events=EventForwarder(config) if config.connector_url else None,
    )

    register_error_handlers(app)
    db_error = db._adapter.driver.Error

    @app.errorhandler(db_error)
    def _database_error(exc: Exception) -> Response:
        if is_transaction_conflict(exc):
            # Not an outage: the database gave way to a simultaneous change (the connection is
            # fine; teardown rolls back). Nothing was written, and the client may retry.
            log.warning("transaction conflict: %s: %s", type(exc).__name__, exc)
            return error_response(
                409,
                "conflict",
                "The change collided with a simultaneous one and was not made; retry it",
            )
        DB_ERRORS.inc()
        g.db_broken = True
        log.error("database error: %s: %s", type(exc).__name__, exc)
        return error_response(503, "database_error", "The database is unavailable; retry later")

    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else new_request_id()
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        # Runs on every request: the context-local proxies are resolved once (each access to
        # `request` or `g` is a lookup through a ContextVar).
        req = request._get_current_object()  # type: ignore[attr-defined]
        ctx = g._get_current_object()
        request_id = getattr(ctx, "request_id", "-")
        headers = response.headers
        headers["X-Request-ID"] = request_id
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # JSON is never a page: nothing may run in, load into or frame it (docs.py sets its own).
        headers.setdefault("Content-Security-Policy", _API_CSP)
        path = req.path
        if path.startswith("/api/v1/"):
            headers.setdefault("Cache-Control", "no-store")
        method = req.method
        route = req.url_rule.rule if req.url_rule else "<unmatched>"
        status = response.status_code
        elapsed = time.perf_counter() - getattr(ctx, "started", time.perf_counter())
        request_metrics(method, route, status).observe(elapsed)
        access_log.info(
            "%s %s %s %.1fms",
            method,
            path,
            status,
            elapsed * 1000,
            extra={
                "request_id": request_id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "remote_addr": req.remote_addr,
            },
        )
        return response

    @app.teardown_request
    def _release(_exc: BaseException | None) -> None:
        # Handlers commit what they mean to keep; an open transaction is rolled back, and the
        # connection goes back to this process's pool.
        # (the connection is in autocommit mode: only an explicit ROLLBACK ends a transaction)
        action: Callable[[object], None] | None = None
        if g.pop("tx_open", False):
            action = _explicit_rollback  # with its audit entries and their outbox rows
        if g.pop("db_broken", False):
            action = _discard  # never hand a possibly dead connection back to the pool
        try:
            db._adapter.close(action)
        except Exception:  # closing a broken connection can fail too; it is gone either way
            DB_ERRORS.inc()
            log.exception("releasing the database connection failed")
        if g.pop("wake_forwarder", False):  # audit entries were written (and maybe committed)
            forwarder = app.extensions["myapp"].events
            if forwarder is not None:
                forwarder.wake()

    for blueprint in (auth_bp, users_bp, rules_bp, audit_bp, fastpath_bp, probes.bp, docs.bp):
        app.register_blueprint(blueprint)
    register_cli(app)
    if config.trusted_proxy_hops:
        # Only the last N X-Forwarded-* entries are believed: those our own proxies appended.
        hops = config.trusted_proxy_hops
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )
    return app


def _discard(_adapter: object) -> None:
    # PyDAL closes (instead of pooling) a connection whose release action failed.
    raise ConnectionAbortedError("discarding the connection after a database error")


def _explicit_rollback(adapter: object) -> None:
    adapter.execute("ROLLBACK")  # type: ignore[attr-defined]


def _session_cache(config: Config) -> SessionCache | None:
    """Only PostgreSQL tells us when a session changes (LISTEN/NOTIFY): cache only there."""
    if config.db_kind != "postgres" or config.auth_cache_seconds <= 0:
        return None
    return SessionCache(ttl=config.auth_cache_seconds)


def _token_service(config: Config) -> TokenService:
    return TokenService(
        config.jwt_secret, config.jwt_issuer, config.jwt_audience, config.access_token_ttl
    )
