"""Every setting of the API service, read from the environment in this one place.

Variables (see docs/ARCHITECTURE.md):

- ``APP_ENV``: ``production`` (default) or ``development``. Production refuses default secrets;
  development is opt-in (``make run``, ``pants run api``, the alpha overlay, the tests), so an
  image started without the variable never runs on the development secrets.
- ``DATABASE_URL``: ``sqlite:///path``, ``postgres://u:p@h:5432/db``, ``mysql://u:p@h:3306/db``;
  or ``DB_TYPE`` (postgres|mysql|mariadb|sqlite) with ``DB_HOST``, ``DB_PORT``, ``DB_NAME``,
  ``DB_USER``, ``DB_PASSWORD``. Default: SQLite file ``$DATA_DIR/myapp.db``.
- ``DATA_DIR``: directory for the SQLite file and PyDAL's migration metadata (default ``./data``).
- ``DB_POOL_SIZE``: connections kept per process (default 4; ignored for SQLite).
- ``JWT_SECRET``: HS256 key, >= 32 characters (required in production).
- ``JWT_ISSUER`` / ``JWT_AUDIENCE``: token ``iss``/``aud`` (default ``myapp-api`` / ``myapp``).
- ``ACCESS_TOKEN_TTL`` (s, default 900), ``REFRESH_TOKEN_TTL`` (s, default 1209600 = 14 days: a
  session unused that long ends), ``SESSION_MAX_SECONDS`` (s, default 43200 = 12 hours: a session
  ends that long after its login however much it is used; OWASP ASVS 4.0 3.3.2, level 2).
- ``BCRYPT_ROUNDS``: bcrypt cost, 4..16 (default 12; production requires >= 12).
- ``ADMIN_EMAIL`` (default admin@example.com) / ``ADMIN_PASSWORD``: the first admin, created when
  no admin exists. Development default password: ``admin123456!`` (printed at start-up).
- ``REDIS_URL``: login throttling counters in Redis (in the database when unset).
- Login throttling (throttle.py; every password attempt counts, a right one is given back),
  per ``LOGIN_WINDOW_SECONDS`` (default 300): ``LOGIN_MAX_FAILURES_PAIR`` (default 5) per
  account and client address, then 429; ``LOGIN_MAX_FAILURES_IP`` (default 20) per address,
  then 429; ``LOGIN_MAX_FAILURES_ACCOUNT`` (default 5) per account from all addresses, past
  which each attempt waits, doubling up to ``LOGIN_MAX_DELAY_SECONDS`` (default 2), never
  refused (so no one can lock an account out).
- ``TRUSTED_PROXY_HOPS``: how many proxies in front of the API append to X-Forwarded-For
  (default 0: the client address is the TCP peer). Behind the WebUI's /api proxy set 1 (2 with an
  ingress in front of the WebUI too): login throttling per address and audit `ip` then see the
  browser's address instead of the proxy's.
- ``FASTPATH_ADDR``: ``host:50051`` of the fast-path agents (optional; several comma-separated).
  A name stands for every address it resolves to: the headless ``fastpath`` Service gives one per
  agent pod. When set, every rule change is pushed to every agent and the full rule set is
  reconciled (and the agents looked up again) every ``FASTPATH_SYNC_INTERVAL`` seconds (default
  30).
- ``FASTPATH_TLS_CA``, ``FASTPATH_TLS_CERT``, ``FASTPATH_TLS_KEY`` (all three or none): PEM files
  of the CA bundle the agents' certificates must chain to and of the API's client certificate and
  key (identity ``spiffe://myapp/flask-backend``); the agents are then called over mutual TLS,
  checking the name ``FASTPATH_TLS_SERVER_NAME`` (default ``fastpath.myapp-fastpath.svc``) in their
  certificate, as they are dialled by pod address. Required in production unless every
  ``FASTPATH_ADDR`` is a loopback address (the agents serve plaintext only there).
- ``FASTPATH_PROTECTED_PREFIXES``: comma-separated CIDRs (the agents' value: the cluster's pod
  and node ranges). A rule whose source_cidr covers or lies inside one is refused (422) unless an
  admin sends ``"override": true`` (audited).
- ``AUTH_CACHE_SECONDS``: on PostgreSQL, how long a process may reuse a valid session check
  (default 10; 0 checks the database on every request). Changes to users and sessions evict
  entries at once through LISTEN/NOTIFY; the lifetime only bounds a lost notification. Set 0
  behind a pooler that does not keep sessions (PgBouncer in transaction mode drops LISTEN).
- ``CONNECTOR_URL``: ``http://connector:5050`` (optional): every committed audit entry is also
  posted to the connector's ``/api/v1/events``, which turns it into signed webhooks.
  ``CONNECTOR_INGEST_TOKEN`` is the bearer token it expects (>= 16 characters; required with
  ``CONNECTOR_URL`` in production).
- ``LOG_FORMAT``: ``json`` or ``text`` (default: json in production, text otherwise);
  ``LOG_LEVEL`` (default INFO).
- ``PROMETHEUS_MULTIPROC_DIR``: set by the production server so /metrics aggregates workers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote, urlsplit

from myapp.api.passwords import password_problem
from myapp.common.env import ConfigError, env_int, env_str
from myapp.common.prefixes import Network, is_loopback_host, parse_prefixes

DEV_ADMIN_EMAIL = "admin@example.com"
DEV_ADMIN_PASSWORD = "admin123456!"  # noqa: S105 - the documented development default
DEV_JWT_SECRET = "development-only-jwt-secret-do-not-use-in-production"  # noqa: S105

__all__ = ["Config", "ConfigError", "DEV_ADMIN_EMAIL", "DEV_ADMIN_PASSWORD"]


# host:port, comma-separated; host a name, an IPv4 address or a bracketed IPv6 address.
_HOST_PORT = r"\s*(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}\s*"
_FASTPATH_ADDR = re.compile(rf"{_HOST_PORT}(?:,{_HOST_PORT})*")


@dataclass(frozen=True)
class Config:
    """Resolved settings; build with `Config.from_env()` or directly in tests."""

    app_env: str = "production"
    database_url: str = ""
    data_dir: Path = field(default_factory=lambda: Path("data"))
    db_pool_size: int = 4
    jwt_secret: str = DEV_JWT_SECRET
    jwt_issuer: str = "myapp-api"
    jwt_audience: str = "myapp"
    access_token_ttl: int = 900
    refresh_token_ttl: int = 14 * 24 * 3600
    session_max_seconds: int = 12 * 3600
    bcrypt_rounds: int = 12
    admin_email: str = DEV_ADMIN_EMAIL
    admin_password: str | None = DEV_ADMIN_PASSWORD
    redis_url: str | None = None
    redis_prefix: str = "myapp:"
    login_max_failures_account: int = 5
    login_max_failures_ip: int = 20
    login_max_failures_pair: int = 5
    login_max_delay_seconds: float = 2.0
    login_window_seconds: int = 300
    trusted_proxy_hops: int = 0
    fastpath_addr: str | None = None
    fastpath_sync_interval: int = 30
    fastpath_tls: FastPathTls | None = None
    fastpath_protected_prefixes: tuple[Network, ...] = ()
    auth_cache_seconds: int = 10
    connector_url: str | None = None
    connector_token: str | None = None
    log_format: str = "text"
    log_level: str = "INFO"
    testing: bool = False

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def db_uri(self) -> str:
        """The PyDAL URI for `database_url` (SQLite under `data_dir` when unset)."""
        return pydal_uri(self.database_url or f"sqlite:///{self.data_dir / 'myapp.db'}")

    @property
    def db_kind(self) -> str:
        """``sqlite``, ``postgres`` or ``mysql``."""
        return self.db_uri.split(":", 1)[0]

    def with_overrides(self, **changes: object) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read and validate every variable; raises ConfigError naming the offending one."""
        env = os.environ if env is None else env
        app_env = (env_str(env, "APP_ENV", "production") or "production").lower()
        if app_env not in ("development", "production"):
            raise ConfigError(f"APP_ENV must be 'development' or 'production', got {app_env!r}")
        production = app_env == "production"

        data_dir = Path(env_str(env, "DATA_DIR", "data") or "data")
        database_url = env_str(env, "DATABASE_URL") or _url_from_parts(env) or ""
        if database_url:
            pydal_uri(database_url)  # validates the scheme, naming DATABASE_URL/DB_TYPE

        jwt_secret = env_str(env, "JWT_SECRET")
        if jwt_secret is None:
            if production:
                raise ConfigError("JWT_SECRET is required when APP_ENV=production (>= 32 chars)")
            jwt_secret = DEV_JWT_SECRET
        elif len(jwt_secret) < 32:
            raise ConfigError("JWT_SECRET must be at least 32 characters long")
        if production and jwt_secret == DEV_JWT_SECRET:
            raise ConfigError("JWT_SECRET must not be the development default in production")

        bcrypt_rounds = env_int(env, "BCRYPT_ROUNDS", 12, minimum=4, maximum=16)
        if production and bcrypt_rounds < 12:
            raise ConfigError("BCRYPT_ROUNDS must be >= 12 when APP_ENV=production")

        admin_password = env_str(env, "ADMIN_PASSWORD")
        if admin_password is None and not production:
            admin_password = DEV_ADMIN_PASSWORD
        if admin_password is not None:
            if production and admin_password == DEV_ADMIN_PASSWORD:
                raise ConfigError("ADMIN_PASSWORD must not be the development default")
            if not 12 <= len(admin_password) <= 128:
                raise ConfigError("ADMIN_PASSWORD must be 12..128 characters long")
            # Production only: development and tests need not load the common-password list.
            problem = production and password_problem(
                admin_password, env_str(env, "ADMIN_EMAIL", DEV_ADMIN_EMAIL)
            )
            if problem:
                raise ConfigError(f"ADMIN_PASSWORD: {problem}")

        log_format = (env_str(env, "LOG_FORMAT") or ("json" if production else "text")).lower()
        if log_format not in ("json", "text"):
            raise ConfigError(f"LOG_FORMAT must be 'json' or 'text', got {log_format!r}")

        fastpath_addr = env_str(env, "FASTPATH_ADDR")
        if fastpath_addr is not None and not _FASTPATH_ADDR.fullmatch(fastpath_addr):
            raise ConfigError(
                f"FASTPATH_ADDR must be host:port[,host:port...], got {fastpath_addr!r}"
            )

        connector_url = env_str(env, "CONNECTOR_URL")
        if connector_url is not None:
            parts = urlsplit(connector_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"CONNECTOR_URL must be an http(s) URL, got {connector_url!r}")
        connector_token = env_str(env, "CONNECTOR_INGEST_TOKEN")
        if connector_token is not None and len(connector_token) < 16:
            raise ConfigError("CONNECTOR_INGEST_TOKEN must be at least 16 characters long")
        if production and connector_url and connector_token is None:
            raise ConfigError(
                "CONNECTOR_INGEST_TOKEN is required with CONNECTOR_URL when APP_ENV=production"
            )

        fastpath_tls = _fastpath_tls(env, fastpath_addr, production)

        return cls(
            app_env=app_env,
            database_url=database_url,
            data_dir=data_dir,
            db_pool_size=env_int(env, "DB_POOL_SIZE", 4, minimum=1, maximum=100),
            jwt_secret=jwt_secret,
            jwt_issuer=env_str(env, "JWT_ISSUER", "myapp-api") or "myapp-api",
            jwt_audience=env_str(env, "JWT_AUDIENCE", "myapp") or "myapp",
            access_token_ttl=env_int(env, "ACCESS_TOKEN_TTL", 900, minimum=30, maximum=86400),
            refresh_token_ttl=env_int(
                env, "REFRESH_TOKEN_TTL", 14 * 24 * 3600, minimum=60, maximum=90 * 24 * 3600
            ),
            session_max_seconds=env_int(
                env, "SESSION_MAX_SECONDS", 12 * 3600, minimum=300, maximum=90 * 24 * 3600
            ),
            bcrypt_rounds=bcrypt_rounds,
            admin_email=(env_str(env, "ADMIN_EMAIL", DEV_ADMIN_EMAIL) or DEV_ADMIN_EMAIL).lower(),
            admin_password=admin_password,
            redis_url=env_str(env, "REDIS_URL"),
            redis_prefix=env_str(env, "REDIS_PREFIX", "myapp:") or "myapp:",
            login_max_failures_account=env_int(env, "LOGIN_MAX_FAILURES_ACCOUNT", 5, minimum=1),
            login_max_failures_ip=env_int(env, "LOGIN_MAX_FAILURES_IP", 20, minimum=1),
            login_max_failures_pair=env_int(env, "LOGIN_MAX_FAILURES_PAIR", 5, minimum=1),
            login_max_delay_seconds=env_int(
                env, "LOGIN_MAX_DELAY_SECONDS", 2, minimum=0, maximum=30
            ),
            login_window_seconds=env_int(env, "LOGIN_WINDOW_SECONDS", 300, minimum=1),
            trusted_proxy_hops=env_int(env, "TRUSTED_PROXY_HOPS", 0, minimum=0, maximum=5),
            fastpath_addr=fastpath_addr,
            fastpath_sync_interval=env_int(
                env, "FASTPATH_SYNC_INTERVAL", 30, minimum=1, maximum=3600
            ),
            fastpath_tls=fastpath_tls,
            fastpath_protected_prefixes=parse_prefixes(env.get("FASTPATH_PROTECTED_PREFIXES")),
            auth_cache_seconds=env_int(env, "AUTH_CACHE_SECONDS", 10, minimum=0, maximum=300),
            connector_url=connector_url,
            connector_token=connector_token,
            log_format=log_format,
            log_level=(env_str(env, "LOG_LEVEL", "INFO") or "INFO").upper(),
        )


@dataclass(frozen=True)
class FastPathTls:
    """The files of the API's mutual TLS to the agents, and the name their certificate must hold."""

    ca: Path
    cert: Path
    key: Path
    server_name: str = "fastpath.myapp-fastpath.svc"


_FASTPATH_TLS = ("FASTPATH_TLS_CA", "FASTPATH_TLS_CERT", "FASTPATH_TLS_KEY")


def _fastpath_tls(
    env: Mapping[str, str], fastpath_addr: str | None, production: bool
) -> FastPathTls | None:
    given = {name: env_str(env, name) for name in _FASTPATH_TLS}
    missing = [name for name, value in given.items() if value is None]
    if len(missing) == len(_FASTPATH_TLS):
        hosts = [
            part.strip().rpartition(":")[0].strip("[]") for part in (fastpath_addr or "").split(",")
        ]
        if production and fastpath_addr and not all(is_loopback_host(host) for host in hosts):
            raise ConfigError(
                f"{', '.join(_FASTPATH_TLS)} are required when APP_ENV=production and "
                "FASTPATH_ADDR is not a loopback address (the agents accept only mutual TLS), "
                f"got {fastpath_addr!r}"
            )
        return None
    if missing:
        raise ConfigError(f"{', '.join(missing)} missing: set all of {', '.join(_FASTPATH_TLS)}")
    for name, value in given.items():
        if not Path(str(value)).is_file():
            raise ConfigError(f"{name}: no such file {value!r}")
    ca, cert, key = (Path(str(given[name])) for name in _FASTPATH_TLS)
    server_name = env_str(env, "FASTPATH_TLS_SERVER_NAME", FastPathTls.server_name)
    return FastPathTls(ca, cert, key, str(server_name))


def _url_from_parts(env: Mapping[str, str]) -> str | None:
    db_type = env_str(env, "DB_TYPE")
    if db_type is None:
        return None
    db_type = db_type.lower()
    if db_type == "sqlite":
        file_name = env_str(env, "DB_NAME", "myapp.db") or "myapp.db"
        if "/" not in file_name:
            file_name = str(Path(env_str(env, "DATA_DIR", "data") or "data") / file_name)
        return f"sqlite:///{file_name}"
    defaults = {"postgres": 5432, "postgresql": 5432, "mysql": 3306, "mariadb": 3306}
    if db_type not in defaults:
        raise ConfigError(f"DB_TYPE must be postgres, mysql, mariadb or sqlite, got {db_type!r}")
    host = env_str(env, "DB_HOST")
    if host is None:
        raise ConfigError(f"DB_HOST is required when DB_TYPE={db_type}")
    port = env_int(env, "DB_PORT", defaults[db_type], minimum=1, maximum=65535)
    name = env_str(env, "DB_NAME", "myapp") or "myapp"
    user = env_str(env, "DB_USER", "myapp") or "myapp"
    password = env_str(env, "DB_PASSWORD")
    scheme = "postgres" if db_type.startswith("postgres") else "mysql"
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return f"{scheme}://{auth}@{host}:{port}/{name}"


def pydal_uri(url: str) -> str:
    """Translate a 12-factor database URL into the URI PyDAL expects (driver chosen here)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    rest = url.split("://", 1)[1] if "://" in url else ""
    if scheme == "sqlite":
        # SQLAlchemy's convention: sqlite:///relative/path, sqlite:////absolute/path.
        path = rest[1:] if rest.startswith("/") else rest
        if not path or path == ":memory:":
            raise ConfigError("DATABASE_URL: SQLite needs a file path, e.g. sqlite:///data/app.db")
        return f"sqlite://{Path(path).resolve()}"
    if scheme in ("postgres", "postgresql", "postgres+psycopg2", "postgresql+psycopg2"):
        return f"postgres:psycopg2://{rest}"
    if scheme in ("mysql", "mariadb", "mysql+pymysql"):
        return f"mysql:pymysql://{rest}?set_encoding=utf8mb4"
    raise ConfigError(
        f"DATABASE_URL must start with sqlite://, postgres:// or mysql://, got {scheme or url!r}"
    )
