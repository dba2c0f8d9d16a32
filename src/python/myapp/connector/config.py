"""Every setting of the connector, read from the environment in this one place.

Variables:

- ``APP_ENV``: ``production`` (default) or ``development``; production requires the two secrets.
- ``CONNECTOR_WEBHOOK_URLS``: comma-separated ``http(s)://`` URLs every event is delivered to
  (empty: events are accepted and dropped, counted as ``no_target``).
- ``CONNECTOR_WEBHOOK_SECRET``: HMAC-SHA256 key for the ``X-Myapp-Signature`` header (>= 16
  characters; required in production).
- ``CONNECTOR_INGEST_TOKEN``: bearer token the API presents on ``POST /api/v1/events`` (>= 16
  characters; required in production).
- ``CONNECTOR_MAX_ATTEMPTS``: tries per event and webhook within one request, 1..20 (default 6;
  the sender retries the event later when they run out).
- ``CONNECTOR_RETRY_BASE_SECONDS``: first retry delay; doubles each try, capped at 300 s
  (default 1.0).
- ``CONNECTOR_TIMEOUT_SECONDS``: per-request timeout, 1..60 (default 5).
- ``CONNECTOR_PORT``: listening port (default 5050); ``CONNECTOR_HOST`` (default 0.0.0.0).
- ``LOG_LEVEL`` (default INFO).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from myapp.common.env import ConfigError, env_int, env_str

__all__ = ["ConfigError", "ConnectorConfig"]

MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class ConnectorConfig:
    """Resolved settings; build with `ConnectorConfig.from_env()` or directly in tests."""

    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = None
    ingest_token: str | None = None
    max_attempts: int = 6
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    timeout_seconds: float = 5.0
    host: str = "0.0.0.0"  # noqa: S104 - a container's service port
    port: int = 5050
    log_level: str = "INFO"
    production: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConnectorConfig:
        """Read and validate every variable; raises ConfigError naming the offending one."""
        env = os.environ if env is None else env
        app_env = (env_str(env, "APP_ENV", "production") or "production").lower()
        if app_env not in ("development", "production"):
            raise ConfigError(f"APP_ENV must be 'development' or 'production', got {app_env!r}")
        production = app_env == "production"
        urls = tuple(
            u.strip() for u in (env_str(env, "CONNECTOR_WEBHOOK_URLS", "") or "").split(",")
        )
        urls = tuple(u for u in urls if u)
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"CONNECTOR_WEBHOOK_URLS: {url!r} is not an http(s) URL with a host"
                )
        secrets = {}
        for name in ("CONNECTOR_WEBHOOK_SECRET", "CONNECTOR_INGEST_TOKEN"):
            value = env_str(env, name)
            if value is None and production:
                raise ConfigError(f"{name} is required when APP_ENV=production")
            if value is not None and len(value) < MIN_SECRET_LENGTH:
                raise ConfigError(f"{name} must be at least {MIN_SECRET_LENGTH} characters long")
            secrets[name] = value
        if urls and secrets["CONNECTOR_WEBHOOK_SECRET"] is None:
            raise ConfigError("CONNECTOR_WEBHOOK_SECRET is required to sign webhook deliveries")
        return cls(
            webhook_urls=urls,
            webhook_secret=secrets["CONNECTOR_WEBHOOK_SECRET"],
            ingest_token=secrets["CONNECTOR_INGEST_TOKEN"],
            max_attempts=env_int(env, "CONNECTOR_MAX_ATTEMPTS", 6, minimum=1, maximum=20),
            retry_base_seconds=_env_float(env, "CONNECTOR_RETRY_BASE_SECONDS", 1.0, 0.001, 300.0),
            timeout_seconds=_env_float(env, "CONNECTOR_TIMEOUT_SECONDS", 5.0, 0.1, 60.0),
            host=env_str(env, "CONNECTOR_HOST", "0.0.0.0") or "0.0.0.0",  # noqa: S104
            port=env_int(env, "CONNECTOR_PORT", 5050, minimum=1, maximum=65535),
            log_level=(env_str(env, "LOG_LEVEL", "INFO") or "INFO").upper(),
            production=production,
        )


def _env_float(
    env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float
) -> float:
    raw = env_str(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value
