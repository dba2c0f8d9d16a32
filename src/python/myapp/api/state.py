"""Per-application objects (config, database, token service, throttle), kept on the Flask app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from pydal import DAL

from myapp.api.config import Config
from myapp.api.security import TokenService
from myapp.api.throttle import LoginThrottle


@dataclass
class AppState:
    config: Config
    db: DAL
    tokens: TokenService
    throttle: LoginThrottle
    dummy_hash: str


def state() -> AppState:
    """The current application's state (inside a request or app context)."""
    return current_app.extensions["myapp"]


def db() -> DAL:
    return state().db
