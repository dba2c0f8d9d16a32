"""Every setting of the fast-path agent, read from the environment in one place.

FASTPATH_INTERFACES      comma-separated interfaces to attach to (required), e.g. "eth0,eth1"
FASTPATH_MODE            native | generic | auto (default auto: native, else generic)
FASTPATH_BPFFS           bpffs directory of the pinned maps (default /sys/fs/bpf/myapp-fastpath)
FASTPATH_GRPC_PORT       gRPC control port (default 50051; 0 picks a free one)
FASTPATH_HTTP_PORT       /healthz, /readyz, /metrics port (default 8080; 0 picks a free one)
FASTPATH_BIND            address both servers listen on (default 0.0.0.0)
FASTPATH_TLS_CERT        PEM server certificate of the gRPC port; with FASTPATH_TLS_KEY and
FASTPATH_TLS_KEY         FASTPATH_TLS_CLIENT_CA (all three or none). Required unless FASTPATH_BIND
                         is loopback: plaintext serves only development and tests
FASTPATH_TLS_CLIENT_CA   PEM bundle of the CAs whose client certificates are accepted (the old
                         and the new CA during a rotation)
FASTPATH_WRITERS         comma-separated client identities (URI SANs) that may call every method
                         (default spiffe://myapp/flask-backend)
FASTPATH_READERS         identities that may call GetStatus, GetStats, ListRules, StreamStats and
                         StreamSamples only (default spiffe://myapp/monitoring)
FASTPATH_GRPC_REFLECTION true | false: serve gRPC reflection (default false)
FASTPATH_DEFAULT_POLICY  allow | deny, written at start (default: keep the pinned one, else allow)
FASTPATH_DROP_MALFORMED  true | false: drop malformed packets, not pass them (default false)
FASTPATH_XSK_QUEUES      comma-separated RX queues to open AF_XDP sockets on (default: none)
FASTPATH_XSK_FRAMES      UMEM frames per socket (default 4096, a power of two)
FASTPATH_PROTECTED_PREFIXES  comma-separated CIDRs (v4 and v6) whose traffic is always passed,
                         before any rule and the default policy (the control plane's ranges)
FASTPATH_DETACH_ON_EXIT  true | false: detach the XDP program on SIGTERM (default false: it stays
                         attached, filtering with the pinned rules, and the next agent takes it
                         over without a gap)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from myapp.common import env as common_env
from myapp.common.prefixes import Network, is_loopback_host, parse_prefixes
from myapp.fastpath.shared import Policy

MODES = ("native", "generic", "auto")


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class Config:
    interfaces: tuple[str, ...] = ()
    mode: str = "auto"
    bpffs: Path = Path("/sys/fs/bpf/myapp-fastpath")
    grpc_port: int = 50051
    http_port: int = 8080
    # A container serves its pod network: every interface is the point.
    bind: str = "0.0.0.0"  # noqa: S104
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    writers: frozenset[str] = frozenset({"spiffe://myapp/flask-backend"})
    readers: frozenset[str] = frozenset({"spiffe://myapp/monitoring"})
    grpc_reflection: bool = False

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    default_policy: Policy | None = None
    drop_malformed: bool = False
    xsk_queues: tuple[int, ...] = ()
    xsk_frames: int = 4096
    protected_prefixes: tuple[Network, ...] = ()
    detach_on_exit: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        interfaces = tuple(
            name.strip() for name in env.get("FASTPATH_INTERFACES", "").split(",") if name.strip()
        )
        if not interfaces:
            raise ConfigError("FASTPATH_INTERFACES is required (comma-separated interface names)")
        for name in interfaces:
            if len(name) > 15 or "/" in name:
                raise ConfigError(f"FASTPATH_INTERFACES: {name!r} is not an interface name")
        mode = env.get("FASTPATH_MODE", "auto").strip().lower()
        if mode not in MODES:
            raise ConfigError(f"FASTPATH_MODE must be one of {', '.join(MODES)}, got {mode!r}")
        bpffs = Path(env.get("FASTPATH_BPFFS", str(cls.bpffs)))
        if not bpffs.is_absolute():
            raise ConfigError(f"FASTPATH_BPFFS must be an absolute path, got {str(bpffs)!r}")
        bind = env.get("FASTPATH_BIND", cls.bind).strip()
        tls = _tls_files(env, bind)
        policy_text = env.get("FASTPATH_DEFAULT_POLICY", "").strip().lower()
        policy = None
        if policy_text:
            if policy_text not in ("allow", "deny"):
                raise ConfigError(
                    f"FASTPATH_DEFAULT_POLICY must be allow or deny, got {policy_text!r}"
                )
            policy = Policy.ALLOW if policy_text == "allow" else Policy.DENY
        frames = _int(env, "FASTPATH_XSK_FRAMES", 4096, 64, 1 << 20)
        if frames & (frames - 1):
            raise ConfigError(f"FASTPATH_XSK_FRAMES must be a power of two, got {frames}")
        queues_text = env.get("FASTPATH_XSK_QUEUES", "").strip()
        try:
            queues = tuple(sorted({int(q) for q in queues_text.split(",") if q.strip()}))
        except ValueError:
            raise ConfigError(
                f"FASTPATH_XSK_QUEUES must be comma-separated queue numbers, got {queues_text!r}"
            ) from None
        if any(not 0 <= q < 64 for q in queues):
            raise ConfigError(f"FASTPATH_XSK_QUEUES: queues must be 0..63, got {queues_text!r}")
        try:
            protected = parse_prefixes(env.get("FASTPATH_PROTECTED_PREFIXES"))
        except common_env.ConfigError as err:
            raise ConfigError(str(err)) from None
        return cls(
            interfaces=interfaces,
            mode=mode,
            bpffs=bpffs,
            grpc_port=_int(env, "FASTPATH_GRPC_PORT", 50051, 0, 65535),
            http_port=_int(env, "FASTPATH_HTTP_PORT", 8080, 0, 65535),
            bind=bind,
            tls_cert=tls[0] if tls else None,
            tls_key=tls[1] if tls else None,
            tls_client_ca=tls[2] if tls else None,
            writers=_identities(env, "FASTPATH_WRITERS", cls.writers),
            readers=_identities(env, "FASTPATH_READERS", cls.readers),
            grpc_reflection=_bool(env, "FASTPATH_GRPC_REFLECTION"),
            default_policy=policy,
            drop_malformed=_bool(env, "FASTPATH_DROP_MALFORMED"),
            xsk_queues=queues,
            xsk_frames=frames,
            protected_prefixes=protected,
            detach_on_exit=_bool(env, "FASTPATH_DETACH_ON_EXIT"),
        )


TLS_VARIABLES = ("FASTPATH_TLS_CERT", "FASTPATH_TLS_KEY", "FASTPATH_TLS_CLIENT_CA")


def _tls_files(env: Mapping[str, str], bind: str) -> tuple[Path, Path, Path] | None:
    """The three TLS files, all or none; none only on a loopback bind (no plaintext elsewhere)."""
    given = {name: env.get(name, "").strip() for name in TLS_VARIABLES}
    missing = [name for name, value in given.items() if not value]
    if len(missing) == len(TLS_VARIABLES):
        if not is_loopback_host(bind):
            app_env = env.get("APP_ENV", "production").strip() or "production"
            raise ConfigError(
                f"{', '.join(TLS_VARIABLES)} are required: the control port serves plaintext only "
                f"on a loopback FASTPATH_BIND, got {bind!r} (APP_ENV={app_env})"
            )
        return None
    if missing:
        raise ConfigError(f"{', '.join(missing)} missing: set all of {', '.join(TLS_VARIABLES)}")
    for name, value in given.items():
        if not Path(value).is_file():
            raise ConfigError(f"{name}: no such file {value!r}")
    cert, key, client_ca = (Path(given[name]) for name in TLS_VARIABLES)
    return cert, key, client_ca


def _identities(env: Mapping[str, str], name: str, default: frozenset[str]) -> frozenset[str]:
    text = env.get(name)
    if text is None:
        return default
    identities = frozenset(part.strip() for part in text.split(",") if part.strip())
    for identity in identities:
        if "://" not in identity or any(c.isspace() for c in identity):
            raise ConfigError(f"{name}: {identity!r} is not a URI, e.g. spiffe://myapp/monitoring")
    return identities


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    text = env.get(name, "").strip().lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be true or false, got {text!r}")
