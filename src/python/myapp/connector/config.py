"""Every setting of the connector, read from the environment in this one place.

Variables:

- ``APP_ENV``: ``production`` (default) or ``development``; production requires
  ``CONNECTOR_INGEST_TOKEN``, ``https://`` webhooks and webhook secrets of >= 32 characters.
- ``CONNECTOR_WEBHOOKS``: the webhooks every event is delivered to, as a JSON list of
  ``{"name": ..., "url": ..., "secret": ...}``; each has its own HMAC-SHA256 signing secret, so
  one receiver cannot sign events for another. It holds secrets (and URLs may carry tokens): in
  Kubernetes it comes from a Secret. Empty or unset: events are accepted and dropped, counted as
  ``no_target``. (It replaces ``CONNECTOR_WEBHOOK_URLS`` and ``CONNECTOR_WEBHOOK_SECRET``, which
  are refused so that an old deployment does not silently deliver nothing.)
- ``CONNECTOR_ALLOWED_NETWORKS``: comma-separated CIDRs that webhooks may reach although they
  are loopback, private, link-local, CGNAT or metadata addresses (default: none; see egress.py).
- ``CONNECTOR_CA_BUNDLE``: PEM file of the CAs that webhook certificates are checked against
  (default: the bundle shipped with requests; environment variables of requests are ignored).
- ``CONNECTOR_INGEST_TOKEN``: bearer token the API presents on ``POST /api/v1/events`` (>= 16
  characters; required in production).
- ``CONNECTOR_MAX_ATTEMPTS``: tries per event and webhook within one request, 1..20 (default 6;
  the sender retries the event later when they run out).
- ``CONNECTOR_RETRY_BASE_SECONDS``: first retry delay; doubles each try, capped at 300 s
  (default 1.0).
- ``CONNECTOR_TIMEOUT_SECONDS``: per-request timeout, 1..60 (default 5).
- ``CONNECTOR_PORT``: listening port (default 5050); ``CONNECTOR_HOST`` (default 0.0.0.0).
- ``CONNECTOR_THREADS``: requests served at once, 1..64 (default 8; each may wait on webhooks
  for up to 25 s).
- ``LOG_LEVEL`` (default INFO).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from myapp.common.env import ConfigError, env_int, env_str
from myapp.common.prefixes import Network, parse_prefixes
from myapp.connector.egress import refusal

__all__ = ["ConfigError", "ConnectorConfig", "Webhook", "redact"]

MIN_TOKEN_LENGTH = 16
MIN_SECRET_LENGTH = {True: 32, False: 16}  # production: webhook secrets as long as our tokens
WEBHOOKS = "CONNECTOR_WEBHOOKS"
REPLACED = ("CONNECTOR_WEBHOOK_URLS", "CONNECTOR_WEBHOOK_SECRET")


@dataclass(frozen=True)
class Webhook:
    """One receiver: where events go and the key they are signed with for it alone."""

    name: str
    url: str
    secret: str = field(repr=False)

    @property
    def display(self) -> str:
        """The webhook as logs show it: name and URL without credentials or query."""
        return f"{self.name} ({redact(self.url)})"


def redact(url: str) -> str:
    """`url` without what may be a credential: userinfo, query and fragment are masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<not a URL>"
    host = parts.netloc.rpartition("@")[2]
    origin = f"{parts.scheme}://{'***@' if '@' in parts.netloc else ''}{host}" if host else ""
    query = "?***" if parts.query else ""
    fragment = "#***" if parts.fragment else ""
    return f"{origin}{parts.path}{query}{fragment}"


class _WebhookSpec(BaseModel):
    """One item of CONNECTOR_WEBHOOKS; unknown keys are refused (a typo'd "secret" would
    otherwise leave the webhook unsigned or misconfigured)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: str = Field(max_length=2048)
    secret: str


_WEBHOOK_LIST = TypeAdapter(list[_WebhookSpec])


@dataclass(frozen=True)
class ConnectorConfig:
    """Resolved settings; build with `ConnectorConfig.from_env()` or directly in tests."""

    webhooks: tuple[Webhook, ...] = ()
    allowed_networks: tuple[Network, ...] = ()
    ca_bundle: str | None = None
    ingest_token: str | None = None
    max_attempts: int = 6
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    timeout_seconds: float = 5.0
    host: str = "0.0.0.0"  # noqa: S104 - a container's service port
    port: int = 5050
    threads: int = 8
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
        for old in REPLACED:
            if env_str(env, old) is not None:
                raise ConfigError(
                    f"{old} is no longer read: list the webhooks in {WEBHOOKS} as JSON"
                    ' [{"name": ..., "url": ..., "secret": ...}], each with its own secret'
                )
        ingest_token = env_str(env, "CONNECTOR_INGEST_TOKEN")
        if ingest_token is None and production:
            raise ConfigError("CONNECTOR_INGEST_TOKEN is required when APP_ENV=production")
        if ingest_token is not None and len(ingest_token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"CONNECTOR_INGEST_TOKEN must be at least {MIN_TOKEN_LENGTH} characters long"
            )
        ca_bundle = env_str(env, "CONNECTOR_CA_BUNDLE")
        if ca_bundle is not None and not os.path.isfile(ca_bundle):
            raise ConfigError(f"CONNECTOR_CA_BUNDLE: {ca_bundle!r} is not a readable file")
        allowed = parse_prefixes(
            env_str(env, "CONNECTOR_ALLOWED_NETWORKS"), "CONNECTOR_ALLOWED_NETWORKS"
        )
        return cls(
            webhooks=_webhooks(env_str(env, WEBHOOKS), production, allowed),
            allowed_networks=allowed,
            ca_bundle=ca_bundle,
            ingest_token=ingest_token,
            max_attempts=env_int(env, "CONNECTOR_MAX_ATTEMPTS", 6, minimum=1, maximum=20),
            retry_base_seconds=_env_float(env, "CONNECTOR_RETRY_BASE_SECONDS", 1.0, 0.001, 300.0),
            timeout_seconds=_env_float(env, "CONNECTOR_TIMEOUT_SECONDS", 5.0, 0.1, 60.0),
            host=env_str(env, "CONNECTOR_HOST", "0.0.0.0") or "0.0.0.0",  # noqa: S104
            port=env_int(env, "CONNECTOR_PORT", 5050, minimum=1, maximum=65535),
            threads=env_int(env, "CONNECTOR_THREADS", 8, minimum=1, maximum=64),
            log_level=(env_str(env, "LOG_LEVEL", "INFO") or "INFO").upper(),
            production=production,
        )


def _webhooks(
    raw: str | None, production: bool, allowed: tuple[Network, ...]
) -> tuple[Webhook, ...]:
    """CONNECTOR_WEBHOOKS parsed and checked; messages name the variable and the webhook, never
    its secret or the whole URL. An address in a URL is checked here already (a name can only be
    checked when it is resolved, on each connection: egress.py)."""
    if raw is None:
        return ()
    try:
        specs = _WEBHOOK_LIST.validate_json(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        raise ConfigError(
            f"{WEBHOOKS}{where}: {first['msg']} (expected a JSON list of"
            ' {"name": ..., "url": ..., "secret": ...})'
        ) from None
    webhooks: list[Webhook] = []
    min_secret = MIN_SECRET_LENGTH[production]
    for spec in specs:
        hook = Webhook(spec.name, spec.url, spec.secret)
        try:
            parts = urlsplit(hook.url)
            valid = bool(parts.hostname) and parts.port != 0  # .port raises when out of range
        except ValueError:
            valid = False
        schemes = ("https",) if production else ("http", "https")
        if not valid or parts.scheme not in schemes:
            wanted = "an https:// URL (APP_ENV=production)" if production else "an http(s) URL"
            raise ConfigError(f"{WEBHOOKS}: webhook {hook.display} needs {wanted} with a host")
        if _is_address(parts.hostname) and (why := refusal(parts.hostname or "", allowed)):
            raise ConfigError(f"{WEBHOOKS}: webhook {hook.display} points at {why}")
        if len(hook.secret) < min_secret:
            raise ConfigError(
                f"{WEBHOOKS}: webhook {hook.name!r} needs a secret of at least {min_secret}"
                " characters"
            )
        for other in webhooks:
            if other.name == hook.name:
                raise ConfigError(f"{WEBHOOKS}: the name {hook.name!r} is used twice")
            if other.secret == hook.secret:
                raise ConfigError(
                    f"{WEBHOOKS}: webhooks {other.name!r} and {hook.name!r} share a secret;"
                    " each needs its own, or one could sign events for the other"
                )
        webhooks.append(hook)
    return tuple(webhooks)


def _is_address(host: str | None) -> bool:
    try:
        ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return True


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
