"""Frames in and out of the fast path: a builder for tests and benchmarks, and a parser that
is the reference model of the XDP program's parser (same error kinds, same decisions), also
used to summarise packets received over AF_XDP.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from myapp.fastpath.shared import MAX_IPV6_EXT, ParseError

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_ARP = 0x0806
VLAN_TPIDS = (0x8100, 0x88A8)
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6 = 1, 6, 17, 58
IPV6_HOPOPTS, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_DSTOPTS, IPV6_NONXT = 0, 43, 44, 60, 59
IPV6_EXT = (IPV6_HOPOPTS, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_DSTOPTS)
_L4_MIN = {IPPROTO_TCP: 20, IPPROTO_UDP: 8, IPPROTO_ICMP: 8, IPPROTO_ICMPV6: 8}

SRC_MAC = b"\x02\x00\x00\x00\x00\x01"
DST_MAC = b"\x02\x00\x00\x00\x00\x02"


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(
    ethertype: int,
    payload: bytes,
    vlans: Sequence[int] = (),
    tpid: int = 0x8100,
    src_mac: bytes = SRC_MAC,
    dst_mac: bytes = DST_MAC,
) -> bytes:
    """An Ethernet frame; `vlans` are VLAN ids, outermost first."""
    # Inner tags (after the first) are 802.1Q whatever the outer TPID is.
    tags = b"".join(
        struct.pack("!HH", tpid if i == 0 else 0x8100, vid & 0xFFF) for i, vid in enumerate(vlans)
    )
    return dst_mac + src_mac + tags + struct.pack("!H", ethertype) + payload


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    options: bytes = b"",
    frag_offset: int = 0,
    more_fragments: bool = False,
) -> bytes:
    """An IPv4 header (options padded to 4 bytes) with a valid checksum, then `payload`."""
    options = options + b"\0" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    flags = (0x2000 if more_fragments else 0) | (frag_offset // 8)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        ihl * 4 + len(payload),
        0x1234,
        flags,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    header += options
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + payload


def ipv6(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    extensions: Sequence[tuple[int, int]] = (),
) -> bytes:
    """An IPv6 header, extension headers, then `payload` (whose protocol is `proto`).

    extensions: (kind, value) outermost first: for IPV6_FRAGMENT value is the fragment
    offset in bytes; for the others the header length in 8-byte units beyond the first.
    """
    chain = b""
    kinds = [kind for kind, _ in extensions]
    for i, (kind, value) in enumerate(extensions):
        nxt = kinds[i + 1] if i + 1 < len(kinds) else proto
        if kind == IPV6_FRAGMENT:
            chain += struct.pack("!BBHI", nxt, 0, (value // 8) << 3, 0xABCD)
        else:
            chain += struct.pack("!BB", nxt, value) + b"\x01\x04\0\0\0\0" + b"\0" * (8 * value)
    first = kinds[0] if kinds else proto
    header = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(chain) + len(payload),
        first,
        64,
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return header + chain + payload


def tcp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(kind: int = 8, payload: bytes = b"") -> bytes:
    return struct.pack("!BBHHH", kind, 0, 0, 1, 1) + payload


def packet(
    src: str,
    dst: str | None = None,
    proto: int = IPPROTO_UDP,
    sport: int = 40000,
    dport: int = 53,
    vlans: Sequence[int] = (),
    tpid: int = 0x8100,
    options: bytes = b"",
    extensions: Sequence[tuple[int, int]] = (),
    frag_offset: int = 0,
    payload: bytes = b"x" * 18,
    src_mac: bytes = SRC_MAC,
    dst_mac: bytes = DST_MAC,
) -> bytes:
    """A whole frame from `src` (IPv4 or IPv6 decides the family)."""
    family = ipaddress.ip_address(src).version
    if dst is None:
        dst = "192.0.2.1" if family == 4 else "2001:db8:ffff::1"
    if proto == IPPROTO_TCP:
        l4 = tcp(sport, dport, payload)
    elif proto == IPPROTO_UDP:
        l4 = udp(sport, dport, payload)
    elif proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        l4 = icmp(payload=payload)
    else:
        l4 = payload
    if family == 4:
        l3 = ipv4(src, dst, proto, l4, options=options, frag_offset=frag_offset)
        return ethernet(ETH_P_IP, l3, vlans, tpid, src_mac, dst_mac)
    exts = list(extensions)
    if frag_offset:
        exts.append((IPV6_FRAGMENT, frag_offset))
    l3 = ipv6(src, dst, proto, l4, exts)
    return ethernet(ETH_P_IPV6, l3, vlans, tpid, src_mac, dst_mac)


@dataclass(frozen=True)
class Parsed:
    """What the XDP program sees in a frame."""

    error: ParseError = ParseError.NONE
    family: int = 0  # 0 = not IP
    proto: int = 0
    src: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    sport: int = 0
    dport: int = 0
    has_ports: bool = False


def _l4(
    frame: bytes, off: int, proto: int, first_fragment: bool
) -> tuple[ParseError, int, int, bool]:
    if not first_fragment or proto not in _L4_MIN:
        return ParseError.NONE, 0, 0, False
    if off + _L4_MIN[proto] > len(frame):
        return ParseError.L4_TRUNCATED, 0, 0, False
    if proto in (IPPROTO_TCP, IPPROTO_UDP):
        sport, dport = struct.unpack_from("!HH", frame, off)
        return ParseError.NONE, sport, dport, True
    return ParseError.NONE, 0, 0, False


def parse(frame: bytes) -> Parsed:
    """Parse `frame` exactly as fastpath.bpf.c does."""
    end = len(frame)
    if end < 14:
        return Parsed(ParseError.ETH_TRUNCATED)
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    off = 14
    for _ in range(2):
        if ethertype not in VLAN_TPIDS:
            break
        if off + 4 > end:
            return Parsed(ParseError.VLAN_TRUNCATED)
        (ethertype,) = struct.unpack_from("!H", frame, off + 2)
        off += 4
    if ethertype in VLAN_TPIDS:
        return Parsed(ParseError.VLAN_TOO_DEEP)
    if ethertype == ETH_P_IP:
        if off + 20 > end:
            return Parsed(ParseError.IPV4_TRUNCATED)
        version, ihl = frame[off] >> 4, frame[off] & 0xF
        if version != 4 or ihl < 5:
            return Parsed(ParseError.IPV4_BAD_HEADER)
        if off + ihl * 4 > end:
            return Parsed(ParseError.IPV4_TRUNCATED)
        proto = frame[off + 9]
        src = ipaddress.IPv4Address(frame[off + 12 : off + 16])
        dst = ipaddress.IPv4Address(frame[off + 16 : off + 20])
        (frag,) = struct.unpack_from("!H", frame, off + 6)
        err, sport, dport, ports = _l4(frame, off + ihl * 4, proto, frag & 0x1FFF == 0)
        if err:
            return Parsed(err)
        return Parsed(ParseError.NONE, 4, proto, src, dst, sport, dport, ports)
    if ethertype == ETH_P_IPV6:
        if off + 40 > end:
            return Parsed(ParseError.IPV6_TRUNCATED)
        if frame[off] >> 4 != 6:
            return Parsed(ParseError.IPV6_BAD_HEADER)
        src6 = ipaddress.IPv6Address(frame[off + 8 : off + 24])
        dst6 = ipaddress.IPv6Address(frame[off + 24 : off + 40])
        nexthdr = frame[off + 6]
        cur = off + 40
        first_fragment = True
        for _ in range(MAX_IPV6_EXT):
            if nexthdr not in IPV6_EXT:
                break
            if cur + 8 > end:
                return Parsed(ParseError.IPV6_EXT_TRUNCATED)
            if nexthdr == IPV6_FRAGMENT:
                (fragoff,) = struct.unpack_from("!H", frame, cur + 2)
                if fragoff & 0xFFF8:
                    first_fragment = False
                nexthdr = frame[cur]
                cur += 8
            else:
                length = (frame[cur + 1] + 1) * 8
                nexthdr = frame[cur]
                if cur + length > end:
                    return Parsed(ParseError.IPV6_EXT_TRUNCATED)
                cur += length
        if nexthdr in IPV6_EXT:
            return Parsed(ParseError.IPV6_EXT_TOO_DEEP)
        err, sport, dport, ports = _l4(frame, cur, nexthdr, first_fragment)
        if err:
            return Parsed(err)
        return Parsed(ParseError.NONE, 6, nexthdr, src6, dst6, sport, dport, ports)
    return Parsed()
