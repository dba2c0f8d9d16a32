"""Where webhooks may be delivered: public addresses only, unless the operator allows a network.

A webhook URL is configuration, but whoever sets it (or controls its DNS) must not turn the
connector into a way into the cluster: loopback, private, link-local, CGNAT, multicast, reserved
and cloud-metadata addresses are refused unless ``CONNECTOR_ALLOWED_NETWORKS`` lists them. The
check runs when the socket is opened, on the very address connected to: the name is resolved
once, every address it resolves to is checked, and the connection goes to a checked address while
the Host header, SNI and certificate check keep the hostname. A name that resolves to a public
address for a check and to a private one for the connection (DNS rebinding) therefore gets
nowhere. Environment proxies are ignored (`guarded_session`): through a proxy the check would see
only the proxy's address.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any

import requests
from requests.adapters import HTTPAdapter

# urllib3 comes with requests (see BUILD); the hook below is urllib3's.
from urllib3 import connection, connectionpool, exceptions  # pants: no-infer-dep
from urllib3.util.connection import create_connection  # pants: no-infer-dep

from myapp.common.prefixes import Network

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to, as text; tests inject their own.
Resolver = Callable[[str, int], Sequence[str]]

# Named so the rule reads as the documentation says it; `_refusal` also refuses whatever else
# Python does not consider globally reachable (documentation ranges and the like).
BLOCKED_NETWORKS: tuple[tuple[str, Network], ...] = tuple(
    (why, ipaddress.ip_network(net))
    for why, net in (
        ("unspecified", "0.0.0.0/8"),
        ("private", "10.0.0.0/8"),
        ("CGNAT", "100.64.0.0/10"),  # also Alibaba Cloud's metadata, 100.100.100.200
        ("loopback", "127.0.0.0/8"),
        ("link-local", "169.254.0.0/16"),  # also the usual metadata address, 169.254.169.254
        ("private", "172.16.0.0/12"),
        ("private", "192.168.0.0/16"),
        ("multicast", "224.0.0.0/4"),
        ("reserved", "240.0.0.0/4"),
        ("unspecified", "::/128"),
        ("loopback", "::1/128"),
        ("private (ULA)", "fc00::/7"),  # also AWS's IPv6 metadata, fd00:ec2::254
        ("link-local", "fe80::/10"),
        ("multicast", "ff00::/8"),
    )
)
# IPv6 forms that carry an IPv4 address the packets really go to: IPv4-mapped (::ffff:a.b.c.d,
# what a dual-stack socket connects through) and the NAT64 well-known prefix.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedDestination(Exception):
    """The webhook's host resolves to an address the egress rules refuse (not a network error:
    requests and urllib3 let it through unchanged, so the caller can tell it apart)."""


def unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped or NAT64 IPv6 address; others unchanged."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _refusal(address: IPAddress) -> str | None:
    """Why `address` is refused (before the allow-list), or None for a public address."""
    for why, network in BLOCKED_NETWORKS:
        if address in network:
            return why
    if address.is_multicast or address.is_reserved or not address.is_global:
        return "not globally reachable"
    return None


def refusal(text: str, allowed: Sequence[Network] = ()) -> str | None:
    """Why connecting to the address `text` is refused, None when it is public or allowed."""
    plain = unwrap(ipaddress.ip_address(text.split("%", 1)[0]))  # without an IPv6 scope id
    why = _refusal(plain)
    if why is None or any(plain in network for network in allowed):
        return None
    return f"{plain} ({why}), which is not in CONNECTOR_ALLOWED_NETWORKS"


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to for a TCP connection, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressGuard:
    """Resolves a host once and vets every address; connects only to vetted ones."""

    def __init__(
        self, allowed: Sequence[Network] = (), resolver: Resolver = system_resolver
    ) -> None:
        self.allowed = tuple(allowed)
        self._resolve = resolver

    def check(self, host: str, port: int) -> list[str]:
        """The addresses of `host` to connect to; raises BlockedDestination if any is refused
        (one bad address refuses the host: which one a client picks is not ours to choose)."""
        addresses = []
        for text in self._resolve(host, port):
            why = refusal(text, self.allowed)
            if why is not None:
                raise BlockedDestination(f"{host} resolves to {why}")
            addresses.append(text)
        if not addresses:
            raise BlockedDestination(f"{host} resolves to no address")
        return addresses

    def connect(self, conn: connection.HTTPConnection) -> socket.socket:
        """Open `conn`'s socket to a vetted address of its host (urllib3's errors on failure)."""
        try:
            addresses = self.check(conn.host, conn.port or 0)
        except socket.gaierror as e:
            raise exceptions.NameResolutionError(conn.host, conn, e) from e
        error: OSError | None = None
        for address in addresses:
            try:
                return create_connection(
                    (address, conn.port or 0),
                    conn.timeout,
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except socket.timeout as e:
                raise exceptions.ConnectTimeoutError(
                    conn, f"connecting to {conn.host} timed out"
                ) from e
            except OSError as e:
                error = e
        raise exceptions.NewConnectionError(conn, f"Failed to establish a new connection: {error}")


# requests speaks through urllib3, whose connections open their socket in `_new_conn()` (and
# resolve the host there): overriding that one method is the smallest hook that sees the
# address actually connected to, while urllib3 keeps doing Host, TLS, SNI and hostname checks.
class _GuardedConnectMixin:
    def __init__(self, *args: Any, guard: AddressGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = guard

    def _new_conn(self) -> socket.socket:
        assert isinstance(self, connection.HTTPConnection)  # noqa: S101 - for the type checker
        return self._guard.connect(self)


class _GuardedHTTPConnection(_GuardedConnectMixin, connection.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectMixin, connection.HTTPSConnection):
    pass


class _GuardedHTTPPool(connectionpool.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose pools connect through `guard` (it reaches the connections as
    an extra keyword of the pool, which urllib3 passes on to each connection it makes)."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": functools.partial(_GuardedHTTPPool, guard=self._guard),
            "https": functools.partial(_GuardedHTTPSPool, guard=self._guard),
        }


def guarded_session(guard: AddressGuard) -> requests.Session:
    """A session that connects only where `guard` allows, ignoring proxy and netrc settings from
    the environment. Redirects are the caller's to refuse (`allow_redirects=False`)."""
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(guard)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
