"""Per-application objects (config, database, token service, throttle), kept on the Flask app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app, g
from pydal import DAL

from myapp.api import db as dblayer
from myapp.api.auth.session_cache import SessionCache, drain
from myapp.api.config import Config
from myapp.api.events import EventForwarder
from myapp.api.security import TokenService
from myapp.api.throttle import LoginThrottle

if TYPE_CHECKING:  # sync.py needs state() at run time: import the type only
    from myapp.api.fastpath.sync import Reconciler


@dataclass
class AppState:
    config: Config
    db: DAL
    tokens: TokenService
    throttle: LoginThrottle
    dummy_hash: str
    # Pushes rule changes to the fast-path agent; None when FASTPATH_ADDR is unset.
    fastpath: Reconciler | None = None
    # Valid session checks (PostgreSQL only, AUTH_CACHE_SECONDS > 0); see auth/session_cache.py.
    sessions: SessionCache | None = None
    # Forwards committed audit entries (the outbox) to the connector; None without CONNECTOR_URL.
    events: EventForwarder | None = None


def state() -> AppState:
    """The current application's state (inside a request or app context)."""
    return current_app.extensions["myapp"]


def db() -> DAL:
    return state().db


def begin() -> None:
    """Open this request's transaction (the route decorator does it for every write method)."""
    if not g.get("tx_open"):
        dblayer.begin(db())
        g.tx_open = True


def commit() -> None:
    """Commit this request's transaction; later statements run in autocommit again."""
    if g.get("tx_open"):
        g.tx_open = False
        st = state()
        dblayer.commit(st.db)
        if st.sessions is not None:
            # PostgreSQL hands a session its own notifications with the COMMIT: apply them now,
            # so this process never serves a session this transaction just ended.
            drain(st.db._adapter.connection)


def rollback() -> None:
    """Roll back this request's transaction, if one is open."""
    if g.get("tx_open"):
        g.tx_open = False
        dblayer.rollback(db())
