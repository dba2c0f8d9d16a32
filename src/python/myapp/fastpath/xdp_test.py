"""The XDP program against tables of packets through BPF_PROG_TEST_RUN: packet in, verdict and
counter changes out; then 100,000 random and mutated packets against the Python reference
model (packets.parse, rules.is_protected, rules.first_match)."""

from __future__ import annotations

import ipaddress
import os
import random
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

import pytest

from myapp.fastpath import packets as P
from myapp.fastpath.loader import libbpf
from myapp.fastpath.loader.datapath import Datapath
from myapp.fastpath.loader.libbpf import XDP_DROP, XDP_PASS
from myapp.fastpath.rules import (
    Network,
    RuleSpec,
    RuleTable,
    TableFull,
    first_match,
    is_protected,
    validate,
)
from myapp.fastpath.shared import MAP_PROTECTED_V4, Action, Counter, ParseError, Policy
from myapp.fastpath.testsupport import require_root


@pytest.fixture
def dp() -> Iterator[Datapath]:
    require_root()
    affinity = os.sched_getaffinity(0)
    with Datapath() as datapath:
        yield datapath
    os.sched_setaffinity(0, affinity)  # some tests pin themselves to one CPU


@pytest.fixture
def table(dp: Datapath) -> RuleTable:
    return RuleTable(dp.map_fds)


def run(dp: Datapath, frame: bytes) -> tuple[int, dict[Counter, int], dict[ParseError, int]]:
    """Verdict and the counters that moved (packets) for one frame."""
    before_c, before_e = dp.counters(), dp.parse_errors()
    verdict = dp.test_run(frame)
    after_c, after_e = dp.counters(), dp.parse_errors()
    moved_c = {k: after_c[k][0] - before_c[k][0] for k in after_c if after_c[k] != before_c[k]}
    moved_e = {k: after_e[k][0] - before_e[k][0] for k in after_e if after_e[k] != before_e[k]}
    return verdict, moved_c, moved_e


def rule(rule_id: int, cidr: str, action: Action, **kw: Any) -> RuleSpec:
    return validate(id=rule_id, source_cidr=cidr, action=int(action), **kw)


V6_EXTS = [(P.IPV6_HOPOPTS, 0), (P.IPV6_ROUTING, 1), (P.IPV6_DSTOPTS, 2)]
SHAPES = {
    "v4 udp": P.packet("198.51.100.7"),
    "v4 tcp": P.packet("198.51.100.7", proto=P.IPPROTO_TCP),
    "v4 icmp": P.packet("198.51.100.7", proto=P.IPPROTO_ICMP),
    "v4 other proto": P.packet("198.51.100.7", proto=47),
    "v4 options": P.packet("198.51.100.7", options=b"\x01" * 40),
    "v4 vlan": P.packet("198.51.100.7", vlans=[10]),
    "v4 qinq": P.packet("198.51.100.7", vlans=[10, 20], tpid=0x88A8),
    "v4 later fragment": P.packet("198.51.100.7", frag_offset=1480),
    "v6 udp": P.packet("2001:db8:1::7"),
    "v6 tcp": P.packet("2001:db8:1::7", proto=P.IPPROTO_TCP),
    "v6 icmp": P.packet("2001:db8:1::7", proto=P.IPPROTO_ICMPV6),
    "v6 ext headers": P.packet("2001:db8:1::7", extensions=V6_EXTS),
    "v6 first fragment": P.packet("2001:db8:1::7", extensions=[(P.IPV6_FRAGMENT, 0)]),
    "v6 later fragment": P.packet("2001:db8:1::7", frag_offset=1448),
    "v6 qinq ext": P.packet("2001:db8:1::7", vlans=[1, 2], extensions=V6_EXTS),
}
MALFORMED = {
    "three vlan tags": (P.packet("198.51.100.7", vlans=[1, 2, 3]), ParseError.VLAN_TOO_DEEP),
    "v4 version 5": (
        P.ethernet(P.ETH_P_IP, b"\x55" + P.ipv4("198.51.100.7", "192.0.2.1", 17, P.udp(1, 2))[1:]),
        ParseError.IPV4_BAD_HEADER,
    ),
    "v4 ihl 4": (
        P.ethernet(P.ETH_P_IP, b"\x44" + P.ipv4("198.51.100.7", "192.0.2.1", 17, P.udp(1, 2))[1:]),
        ParseError.IPV4_BAD_HEADER,
    ),
    "v6 version 4": (
        P.ethernet(
            P.ETH_P_IPV6, b"\x40" + P.ipv6("2001:db8::1", "2001:db8::2", 17, P.udp(1, 2))[1:]
        ),
        ParseError.IPV6_BAD_HEADER,
    ),
    "seven v6 extension headers": (
        P.packet("2001:db8:1::7", extensions=[(P.IPV6_DSTOPTS, 0)] * 7),
        ParseError.IPV6_EXT_TOO_DEEP,
    ),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_well_formed_shapes_take_the_default(dp: Datapath, shape: str) -> None:
    assert P.parse(SHAPES[shape]).error == ParseError.NONE
    assert run(dp, SHAPES[shape]) == (XDP_PASS, {Counter.DEFAULT_PASS: 1}, {})


def test_non_ip_is_passed_and_counted(dp: Datapath) -> None:
    arp = P.ethernet(P.ETH_P_ARP, bytes(28))
    assert run(dp, arp) == (XDP_PASS, {Counter.NON_IP: 1}, {})


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_headers_are_counted_by_kind(dp: Datapath, case: str) -> None:
    frame, kind = MALFORMED[case]
    assert P.parse(frame).error == kind
    assert run(dp, frame) == (XDP_PASS, {Counter.MALFORMED_PASS: 1}, {kind: 1})


@pytest.mark.parametrize(
    "shape", ["v4 options", "v4 qinq", "v6 qinq ext", "v6 first fragment", "v4 tcp"]
)
def test_truncation_at_every_length(dp: Datapath, shape: str) -> None:
    """Every prefix of the frame (test-run needs at least the 14-byte Ethernet header)."""
    frame = SHAPES[shape]
    seen_kinds = set()
    for length in range(14, len(frame)):
        cut = frame[:length]
        expected = P.parse(cut)
        verdict, moved, errors = run(dp, cut)
        assert verdict == XDP_PASS, length
        if expected.error:
            seen_kinds.add(expected.error)
            assert (moved, errors) == ({Counter.MALFORMED_PASS: 1}, {expected.error: 1}), length
        else:
            assert errors == {}, length
    assert ParseError.L4_TRUNCATED in seen_kinds


def test_drop_malformed_setting_drops_them(dp: Datapath) -> None:
    with Datapath(drop_malformed=True) as strict:
        frame = SHAPES["v4 tcp"][:30]
        assert run(strict, frame) == (
            XDP_DROP,
            {Counter.MALFORMED_DROP: 1},
            {ParseError.IPV4_TRUNCATED: 1},
        )
        assert run(strict, SHAPES["v4 tcp"])[0] == XDP_PASS


def test_drop_rules_v4_and_v6(dp: Datapath, table: RuleTable) -> None:
    table.apply([rule(1, "203.0.113.0/24", Action.DROP), rule(2, "2001:db8:bad::/48", Action.DROP)])
    for src, rule_id in (("203.0.113.9", 1), ("2001:db8:bad:1::9", 2)):
        for vlans in ([], [7], [7, 8]):
            frame = P.packet(src, vlans=vlans)
            assert run(dp, frame) == (XDP_DROP, {Counter.DROP: 1}, {})
        assert table.rule_counters()[rule_id] == (3, 3 * len(P.packet(src)) + 12)
    assert run(dp, P.packet("203.0.114.9"))[0] == XDP_PASS
    assert run(dp, P.packet("2001:db8:bae::1"))[0] == XDP_PASS


def test_protocol_and_port_range_are_anded(dp: Datapath, table: RuleTable) -> None:
    table.apply([rule(1, "10.0.0.0/8", Action.DROP, protocol=6, dst_port_min=80, dst_port_max=90)])
    src = "10.1.2.3"
    assert run(dp, P.packet(src, proto=6, dport=80))[0] == XDP_DROP
    assert run(dp, P.packet(src, proto=6, dport=90))[0] == XDP_DROP
    assert run(dp, P.packet(src, proto=6, dport=91))[0] == XDP_PASS
    assert run(dp, P.packet(src, proto=6, dport=79))[0] == XDP_PASS
    assert run(dp, P.packet(src, proto=17, dport=85))[0] == XDP_PASS
    # A later fragment carries no ports: a port rule cannot match it.
    assert run(dp, P.packet(src, proto=6, dport=85, frag_offset=8))[0] == XDP_PASS
    assert table.rule_counters()[1][0] == 2


def test_priority_decides_within_a_prefix_and_longer_prefix_first(
    dp: Datapath, table: RuleTable
) -> None:
    table.apply(
        [
            rule(1, "10.0.0.0/8", Action.DROP, priority=5),
            rule(2, "10.0.0.0/8", Action.PASS, priority=1, protocol=17),
            rule(3, "10.9.0.0/16", Action.PASS, protocol=6),
        ]
    )
    assert run(dp, P.packet("10.1.1.1", proto=17))[1] == {Counter.PASS: 1}
    assert run(dp, P.packet("10.1.1.1", proto=6))[1] == {Counter.DROP: 1}
    # The /16 rule wins for TCP; for ICMP it does not match and the covering /8 rules apply.
    assert run(dp, P.packet("10.9.1.1", proto=6))[1] == {Counter.PASS: 1}
    assert run(dp, P.packet("10.9.1.1", proto=1))[1] == {Counter.DROP: 1}
    hits = {k: v[0] for k, v in table.rule_counters().items()}
    assert hits == {1: 2, 2: 1, 3: 1}


def test_default_policy_deny_and_pass_rule(dp: Datapath, table: RuleTable) -> None:
    table.set_default_policy(Policy.DENY)
    table.apply([rule(1, "192.0.2.0/24", Action.PASS)])
    assert run(dp, P.packet("192.0.2.5"))[:2] == (XDP_PASS, {Counter.PASS: 1})
    assert run(dp, P.packet("198.51.100.5"))[:2] == (XDP_DROP, {Counter.DEFAULT_DROP: 1})
    assert run(dp, P.ethernet(P.ETH_P_ARP, bytes(28)))[0] == XDP_PASS


def test_rate_limit_allows_the_burst_then_drops(dp: Datapath, table: RuleTable) -> None:
    table.apply([rule(1, "198.51.100.0/24", Action.RATE_LIMIT, rate_limit_pps=50)])
    verdicts = [dp.test_run(P.packet("198.51.100.1")) for _ in range(20)]
    # burst is 100 ms of the rate (5 packets): test-run sends far faster than 50 pps.
    assert verdicts[:5] == [XDP_PASS] * 5
    assert verdicts[-5:] == [XDP_DROP] * 5
    # Another source has its own bucket.
    assert dp.test_run(P.packet("198.51.100.2")) == XDP_PASS
    counters = dp.counters()
    assert counters[Counter.RATE_PASS][0] + counters[Counter.RATE_DROP][0] == 21


def test_redirect_samples_one_in_n(dp: Datapath, table: RuleTable) -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # per-CPU sample counter
    table.apply([rule(1, "198.51.100.0/24", Action.REDIRECT, sample_rate=3)])
    for _ in range(9):
        # No AF_XDP socket on the queue here: the sampled packets fall back to pass.
        assert dp.test_run(P.packet("198.51.100.1")) == XDP_PASS
    counters = dp.counters()
    assert counters[Counter.REDIRECT_NOSOCK][0] == 3
    assert counters[Counter.REDIRECT_SKIP][0] == 6


def test_disabled_rule_and_delete(dp: Datapath, table: RuleTable) -> None:
    table.apply([rule(1, "198.51.100.0/24", Action.DROP, enabled=False)])
    assert dp.test_run(P.packet("198.51.100.1")) == XDP_PASS
    table.apply([rule(1, "198.51.100.0/24", Action.DROP, revision=2)])
    assert dp.test_run(P.packet("198.51.100.1")) == XDP_DROP
    table.delete([(1, 0)])
    assert dp.test_run(P.packet("198.51.100.1")) == XDP_PASS
    # The freed slot is reused; its counters start from zero.
    table.apply([rule(2, "198.51.100.0/24", Action.DROP)])
    assert table.rule_counters() == {2: (0, 0)}


# -- protected prefixes ------------------------------------------------------------------------

PROTECTED = [ipaddress.ip_network("192.0.2.0/28"), ipaddress.ip_network("2001:db8:c0::/48")]
DROP_ALL = [
    rule(1, "0.0.0.0/0", Action.DROP),
    rule(2, "::/0", Action.DROP),
    rule(3, "192.0.2.0/24", Action.DROP, protocol=P.IPPROTO_UDP),
]
# (source, extra frame fields) -> verdict and counters with DROP_ALL applied and a DENY default.
PROTECTED_ROWS: list[tuple[str, dict[str, Any], int, dict[Counter, int], dict[ParseError, int]]] = [
    ("192.0.2.1", {}, XDP_PASS, {Counter.PROTECTED_PASS: 1}, {}),
    (
        "192.0.2.15",
        {"proto": P.IPPROTO_TCP, "vlans": [5]},
        XDP_PASS,
        {Counter.PROTECTED_PASS: 1},
        {},
    ),
    ("192.0.2.16", {}, XDP_DROP, {Counter.DROP: 1}, {}),  # just outside the /28
    ("198.51.100.1", {}, XDP_DROP, {Counter.DROP: 1}, {}),
    ("2001:db8:c0:ffff::1", {"extensions": V6_EXTS}, XDP_PASS, {Counter.PROTECTED_PASS: 1}, {}),
    ("2001:db8:c1::1", {}, XDP_DROP, {Counter.DROP: 1}, {}),
    # Malformed is decided before the source is looked at (its address may be cut off).
    (
        "192.0.2.1",
        {"vlans": [1, 2, 3]},
        XDP_PASS,
        {Counter.MALFORMED_PASS: 1},
        {ParseError.VLAN_TOO_DEEP: 1},
    ),
]


@pytest.fixture
def protected_dp() -> Iterator[Datapath]:
    require_root()
    with Datapath(protected=PROTECTED) as datapath:
        table = RuleTable(datapath.map_fds)
        table.apply(DROP_ALL)
        table.set_default_policy(Policy.DENY)
        yield datapath


@pytest.mark.parametrize(("src", "fields", "verdict", "moved", "errors"), PROTECTED_ROWS)
def test_protected_sources_pass_before_rules_and_policy(
    protected_dp: Datapath,
    src: str,
    fields: dict[str, Any],
    verdict: int,
    moved: dict[Counter, int],
    errors: dict[ParseError, int],
) -> None:
    assert run(protected_dp, P.packet(src, **fields)) == (verdict, moved, errors)


def test_protected_tries_are_not_consulted_when_none_are_configured(
    dp: Datapath, table: RuleTable
) -> None:
    """Loaded without protected prefixes the lookup is compiled out: an entry written behind
    the agent's back changes nothing."""
    table.apply([rule(1, "0.0.0.0/0", Action.DROP)])
    key = bytes([24, 0, 0, 0, 192, 0, 2, 0])
    libbpf.map_update(dp.map_fds[MAP_PROTECTED_V4], key, (1).to_bytes(4, "little"))
    assert run(dp, P.packet("192.0.2.1")) == (XDP_DROP, {Counter.DROP: 1}, {})


# -- randomized ----------------------------------------------------------------------------------

PROTOS = [0, 0, 6, 17, 1, 58]


def _random_rules(rng: random.Random, count: int) -> list[RuleSpec]:
    out = []
    for rule_id in range(1, count + 1):
        net: ipaddress.IPv4Network | ipaddress.IPv6Network
        if rng.random() < 0.5:
            length = rng.choice([8, 12, 16, 16, 20, 24, 24, 28, 32])
            addr = (10 << 24) | rng.getrandbits(24) & ~0xF0F0F0
            net = ipaddress.IPv4Network((addr, length), strict=False)
        else:
            length = rng.choice([32, 40, 48, 56, 64, 96, 128])
            addr = (0x20010DB8 << 96) | (rng.getrandbits(96) & ~(0xFFF0 << 64))
            net = ipaddress.IPv6Network((addr, length), strict=False)
        proto = rng.choice(PROTOS)
        ports: dict[str, Any] = {}
        if proto in (0, 6, 17) and rng.random() < 0.4:
            low = rng.randrange(0, 1000)
            ports = {"dst_port_min": low, "dst_port_max": low + rng.randrange(0, 500)}
        action = rng.choice([Action.DROP, Action.PASS, Action.REDIRECT, Action.RATE_LIMIT])
        out.append(
            validate(
                id=rule_id,
                source_cidr=str(net),
                action=int(action),
                protocol=proto,
                priority=rng.randrange(0, 4),
                # Rate so high that every packet conforms: the verdict stays deterministic.
                rate_limit_pps=1_000_000_000,
                sample_rate=rng.choice([1, 2, 5]),
                enabled=rng.random() > 0.1,
                **ports,
            )
        )
    return out


def _random_frame(rng: random.Random, rules: list[RuleSpec]) -> bytes:
    if rules and rng.random() < 0.8:
        net = rng.choice(rules).network
        host = int(net.network_address) + rng.randrange(net.num_addresses)
        src = str(ipaddress.ip_address(host))
    elif rng.random() < 0.5:
        src = str(ipaddress.IPv4Address(rng.getrandbits(32)))
    else:
        src = str(ipaddress.IPv6Address(rng.getrandbits(128)))
    v6 = ":" in src
    proto = rng.choice([6, 17, 17, 1, 58, 47])
    frame = P.packet(
        src,
        proto=proto,
        dport=rng.randrange(0, 1600),
        vlans=[rng.randrange(4096) for _ in range(rng.choice([0, 0, 0, 1, 2, 3]))],
        tpid=rng.choice([0x8100, 0x88A8]),
        options=b"\x01" * rng.choice([0, 0, 4, 40]) if not v6 else b"",
        extensions=[
            (rng.choice([P.IPV6_HOPOPTS, P.IPV6_ROUTING, P.IPV6_DSTOPTS]), rng.randrange(3))
            for _ in range(rng.choice([0, 0, 1, 2, 6]) if v6 else 0)
        ],
        frag_offset=rng.choice([0, 0, 0, 8, 1480]),
        payload=bytes(rng.randrange(0, 32)),
    )
    mutation = rng.random()
    if mutation < 0.15:
        frame = frame[: rng.randrange(14, len(frame) + 1)]
    elif mutation < 0.3:
        data = bytearray(frame)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(12, min(len(data), 90))] = rng.getrandbits(8)
        frame = bytes(data)
    elif mutation < 0.33:
        frame = bytes(rng.getrandbits(8) for _ in range(rng.randrange(14, 120)))
    return frame


def _random_protected(rng: random.Random) -> list[Network]:
    """Prefixes in the rules' address space (10/8 and 2001:db8::/32), so they shadow rules."""
    v4 = [
        ipaddress.IPv4Network(((10 << 24) | rng.getrandbits(24) & ~0xF0F0F0, length), strict=False)
        for length in (16, 24, 32)
    ]
    v6 = [
        ipaddress.IPv6Network(
            ((0x20010DB8 << 96) | (rng.getrandbits(96) & ~(0xFFF0 << 64)), length), strict=False
        )
        for length in (36, 64)
    ]
    return [*v4, *v6]


@pytest.fixture
def random_dp() -> Iterator[tuple[Datapath, list[Network], random.Random]]:
    require_root()
    rng = random.Random(int(os.environ.get("FASTPATH_RANDOM_SEED", "20261130")))
    protected = _random_protected(rng)
    affinity = os.sched_getaffinity(0)
    with Datapath(protected=protected) as datapath:
        yield datapath, protected, rng
    os.sched_setaffinity(0, affinity)


def test_random_and_mutated_packets_match_the_reference_model(
    random_dp: tuple[Datapath, list[Network], random.Random],
) -> None:
    dp, protected, rng = random_dp
    table = RuleTable(dp.map_fds)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    accepted: list[RuleSpec] = []
    for candidate in _random_rules(rng, 80):
        try:
            table.apply([candidate])
            accepted.append(candidate)
        except TableFull:
            pass
    assert len(accepted) > 40
    table.set_default_policy(Policy.DENY)
    expected_hits: Tally[int] = Tally()
    expected_errors: Tally[ParseError] = Tally()
    expected_protected = 0
    mismatches: list[tuple[Any, ...]] = []
    total = 100_000
    for i in range(total):
        frame = _random_frame(rng, accepted)
        parsed = P.parse(frame)
        match = first_match(accepted, parsed)
        if parsed.error:
            expected_errors[parsed.error] += 1
            want = XDP_PASS
        elif not parsed.family:
            want = XDP_PASS
        elif is_protected(protected, parsed):
            expected_protected += 1
            want = XDP_PASS
        elif match is None:
            want = XDP_DROP
        else:
            expected_hits[match.id] += 1
            want = XDP_DROP if match.action == Action.DROP else XDP_PASS
        got = dp.test_run(frame)
        if got != want and len(mismatches) < 10:
            mismatches.append((i, frame.hex(), parsed, match, got, want))
    assert mismatches == []
    hits = {k: v[0] for k, v in table.rule_counters().items() if v[0]}
    assert hits == dict(expected_hits)
    errors = {k: v[0] for k, v in dp.parse_errors().items() if v[0]}
    assert errors == dict(expected_errors)
    assert dp.counters()[Counter.PROTECTED_PASS][0] == expected_protected > 1000
    assert sum(v[0] for v in dp.counters().values()) == total
