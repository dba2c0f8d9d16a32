"""Protected source prefixes (FASTPATH_PROTECTED_PREFIXES): the ranges the control plane talks
from (the cluster's pod and node ranges). The agent passes their traffic before any rule and the
default policy; the API refuses rules overlapping them. Both read the variable through here."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from myapp.common.env import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
VARIABLE = "FASTPATH_PROTECTED_PREFIXES"
# The agent's tries hold at most this many per family (FP_PROTECTED_ENTRIES in the BPF header).
MAX_PER_FAMILY = 1024


def is_loopback_host(host: str) -> bool:
    """Whether a bind address or dialled host (IP literal, bracketed or not, or "localhost") is
    loopback: the only place the control port may be plaintext."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_cidr(text: str) -> Network:
    """One IPv4/IPv6 CIDR with its prefix length and no host bits; ValueError saying what is
    wrong (quoting at most 64 characters of `text`) otherwise."""
    text = text.strip()
    if "/" not in text:
        raise ValueError(
            "must be a CIDR with a prefix length, e.g. 203.0.113.0/24 or 2001:db8::/32"
        )
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{text[:64]!r} is not an IPv4 or IPv6 CIDR") from None
    if ipaddress.ip_interface(text).ip != network.network_address:
        raise ValueError(f"host bits set in {text!r}; did you mean {network}?")
    return network


def parse_prefixes(text: str | None, name: str = VARIABLE) -> tuple[Network, ...]:
    """Comma-separated IPv4/IPv6 CIDRs, deduplicated in the order given; ConfigError naming
    `name` and the bad item otherwise."""
    out: list[Network] = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        try:
            network = parse_cidr(item)
        except ValueError as err:
            raise ConfigError(f"{name}: {err}") from None
        if network not in out:
            out.append(network)
    for family in (4, 6):
        count = sum(1 for n in out if n.version == family)
        if count > MAX_PER_FAMILY:
            raise ConfigError(f"{name}: {count} IPv{family} prefixes, at most {MAX_PER_FAMILY}")
    return tuple(out)


def overlapping(network: Network, protected: Iterable[Network]) -> Network | None:
    """The first protected prefix that `network` covers or lies inside, None when disjoint."""
    for prefix in protected:
        if prefix.version == network.version and (
            network.subnet_of(prefix) or network.supernet_of(prefix)  # type: ignore[arg-type]
        ):
            return prefix
    return None
