"""FASTPATH_PROTECTED_PREFIXES parsing and the overlap test the API applies to rules."""

from __future__ import annotations

import ipaddress

import pytest

from myapp.common.env import ConfigError
from myapp.common.prefixes import overlapping, parse_prefixes

net = ipaddress.ip_network


def test_parse_keeps_order_drops_duplicates_and_blanks() -> None:
    assert parse_prefixes(" 10.0.0.0/8, fd00::/8,,10.0.0.0/8 ") == (
        net("10.0.0.0/8"),
        net("fd00::/8"),
    )
    assert parse_prefixes(None) == () and parse_prefixes("") == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("10.0.0.0", "with a prefix length"),
        ("10.0.0.0/33", "is not an IPv4 or IPv6 CIDR"),
        ("fd00::1/8", "did you mean fd00::/8"),
        ("x" * 10_000 + "/8", "is not an IPv4"),
        (",".join(f"10.{i // 256}.{i % 256}.0/24" for i in range(1025)), "at most 1024"),
    ],
)
def test_bad_values_name_the_variable(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match="FASTPATH_PROTECTED_PREFIXES") as err:
        parse_prefixes(text)
    assert says in str(err.value) and len(str(err.value)) < 200


@pytest.mark.parametrize(
    ("rule", "found"),
    [
        ("0.0.0.0/0", "10.0.0.0/8"),  # covers it
        ("10.1.2.0/24", "10.0.0.0/8"),  # lies inside
        ("10.0.0.0/8", "10.0.0.0/8"),  # equal
        ("11.0.0.0/8", None),
        ("::/0", "fd00::/8"),
        ("fd00:1::/32", "fd00::/8"),
        ("2001:db8::/32", None),
    ],
)
def test_overlap_is_cover_or_inside_within_a_family(rule: str, found: str | None) -> None:
    protected = parse_prefixes("10.0.0.0/8,fd00::/8")
    assert overlapping(net(rule), protected) == (net(found) if found else None)
