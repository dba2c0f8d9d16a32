"""Python mirror of src/bpf/fastpath_shared.h: structs, constants and map names.

Keep in step with the header; shared_test.py compiles the header and compares every size and
offset below with what the C compiler lays out.
"""

from __future__ import annotations

import ctypes as C
import enum

LAYOUT_VERSION = 1
SLOTS_PER_PREFIX = 8
MAX_IPV6_EXT = 6
RULE_NAME_LEN = 64
RULE_PORTS = 1 << 0

# Default capacities (the header's #ifndef values).
MAX_RULES = 262144
LPM_V4_ENTRIES = 262144
LPM_V6_ENTRIES = 262144
RATE_ENTRIES = 65536
XSK_QUEUES = 64
PROTECTED_ENTRIES = 1024

PROGRAM_NAME = "fastpath_xdp"
MAP_LPM_V4 = "fp_lpm_v4"
MAP_LPM_V6 = "fp_lpm_v6"
MAP_RULES = "fp_rules"
MAP_RULE_META = "fp_rule_meta"
MAP_RULE_COUNTERS = "fp_rule_counters"
MAP_COUNTERS = "fp_counters"
MAP_PARSE_ERRORS = "fp_parse_errors"
MAP_CONFIG = "fp_config"
MAP_RATE = "fp_rate"
MAP_XSKS = "fp_xsks"
MAP_PROTECTED_V4 = "fp_protected_v4"
MAP_PROTECTED_V6 = "fp_protected_v6"
# Every map the agent pins under FASTPATH_BPFFS (the .rodata settings are per load).
PINNED_MAPS = (
    MAP_LPM_V4,
    MAP_LPM_V6,
    MAP_RULES,
    MAP_RULE_META,
    MAP_RULE_COUNTERS,
    MAP_COUNTERS,
    MAP_PARSE_ERRORS,
    MAP_CONFIG,
    MAP_RATE,
    MAP_XSKS,
    MAP_PROTECTED_V4,
    MAP_PROTECTED_V6,
)


class Action(enum.IntEnum):
    PASS = 1
    DROP = 2
    RATE_LIMIT = 3
    REDIRECT = 4


class Policy(enum.IntEnum):
    ALLOW = 1
    DENY = 2


class Counter(enum.IntEnum):
    """enum fp_counter: why the program returned its verdict."""

    PASS = 0
    DROP = 1
    RATE_PASS = 2
    RATE_DROP = 3
    REDIRECT = 4
    REDIRECT_SKIP = 5
    REDIRECT_NOSOCK = 6
    DEFAULT_PASS = 7
    DEFAULT_DROP = 8
    NON_IP = 9
    MALFORMED_PASS = 10
    MALFORMED_DROP = 11
    PROTECTED_PASS = 12


class ParseError(enum.IntEnum):
    """enum fp_parse_error."""

    NONE = 0
    ETH_TRUNCATED = 1
    VLAN_TRUNCATED = 2
    VLAN_TOO_DEEP = 3
    IPV4_TRUNCATED = 4
    IPV4_BAD_HEADER = 5
    IPV6_TRUNCATED = 6
    IPV6_BAD_HEADER = 7
    IPV6_EXT_TRUNCATED = 8
    IPV6_EXT_TOO_DEEP = 9
    L4_TRUNCATED = 10


COUNTER_MAX = len(Counter)
PARSE_ERROR_MAX = len(ParseError)


class LpmV4Key(C.Structure):
    _fields_ = [("prefixlen", C.c_uint32), ("addr", C.c_uint8 * 4)]


class LpmV6Key(C.Structure):
    _fields_ = [("prefixlen", C.c_uint32), ("addr", C.c_uint8 * 16)]


class PrefixValue(C.Structure):
    _fields_ = [("count", C.c_uint32), ("slots", C.c_uint32 * SLOTS_PER_PREFIX)]


class Rule(C.Structure):
    _fields_ = [
        ("rule_id", C.c_uint32),
        ("action", C.c_uint8),
        ("protocol", C.c_uint8),
        ("flags", C.c_uint16),
        ("dport_min", C.c_uint16),
        ("dport_max", C.c_uint16),
        ("rate_pps", C.c_uint32),
        ("burst", C.c_uint32),
        ("sample_rate", C.c_uint32),
    ]


class RuleMeta(C.Structure):
    _fields_ = [
        ("revision", C.c_uint64),
        ("slot", C.c_uint32),
        ("priority", C.c_int32),
        ("family", C.c_uint8),
        ("prefixlen", C.c_uint8),
        ("enabled", C.c_uint8),
        ("pad", C.c_uint8),
        ("addr", C.c_uint8 * 16),
        ("name", C.c_char * RULE_NAME_LEN),
    ]


class Config(C.Structure):
    _fields_ = [
        ("layout_version", C.c_uint32),
        ("default_policy", C.c_uint32),
        ("generation", C.c_uint64),
    ]


class RateKey(C.Structure):
    _fields_ = [("slot", C.c_uint32), ("family", C.c_uint32), ("addr", C.c_uint8 * 16)]


class RateState(C.Structure):
    _fields_ = [("tat_ns", C.c_uint64)]


class CounterValue(C.Structure):
    _fields_ = [("packets", C.c_uint64), ("bytes", C.c_uint64)]


class Settings(C.Structure):
    _fields_ = [("drop_malformed", C.c_uint32), ("protected_prefixes", C.c_uint32)]


# The structs the test checks against the header, by their C name.
MIRRORED: dict[str, type[C.Structure]] = {
    "fp_lpm_v4_key": LpmV4Key,
    "fp_lpm_v6_key": LpmV6Key,
    "fp_prefix_value": PrefixValue,
    "fp_rule": Rule,
    "fp_rule_meta": RuleMeta,
    "fp_config": Config,
    "fp_rate_key": RateKey,
    "fp_rate_state": RateState,
    "fp_counter_value": CounterValue,
    "fp_settings": Settings,
}
