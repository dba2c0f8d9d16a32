"""The rule set: validation, matching semantics, and its layout in the pinned BPF maps.

Semantics (the XDP program implements them; `first_match` is the reference in Python): the
candidates for a packet are the enabled rules whose source prefix contains its source address,
ordered by prefix length (longest first), then priority (lower first), then rule id. The first
candidate whose protocol and destination port range also hold decides. Port ranges only match
TCP and UDP packets that carry ports (not non-first fragments).

Layout: each rule owns a slot in `fp_rules` (and `fp_rule_counters`) for as long as it exists,
so its counters survive updates. Each prefix with enabled rules has an LPM entry listing the
slots of its candidates (its own and the covering prefixes', in the order above), at most
SLOTS_PER_PREFIX. Writes are journalled: a batch that fails half way is rolled back.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from myapp.fastpath import shared
from myapp.fastpath.loader import libbpf
from myapp.fastpath.packets import IPPROTO_TCP, IPPROTO_UDP, Parsed

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (family, prefixlen, network address as int): cheap to hash and to mask.
PrefixKey = tuple[int, int, int]
_BITS = {4: 32, 6: 128}
# Longest part of a bad value an error message quotes: a 1 MiB value quoted whole would push the
# gRPC status past the default 8 KiB metadata limit (the client then sees RESOURCE_EXHAUSTED).
QUOTE_LIMIT = 64


def quoted(value: str, limit: int = QUOTE_LIMIT) -> str:
    """repr() of `value`, cut to its first `limit` characters ("…" and the length after)."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value)} characters)"


class RuleError(ValueError):
    """A rule is invalid; `field` names the offending field."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


class StaleRevision(Exception):
    """The caller's revision is older than (or differs from) the one applied."""


class TableFull(Exception):
    """A map or the per-prefix candidate list has no room for the change."""


@dataclass(frozen=True)
class RuleSpec:
    id: int
    network: Network
    action: shared.Action
    revision: int = 1
    name: str = ""
    protocol: int = 0
    dport_min: int = 0
    dport_max: int = 0
    rate_limit_pps: int = 0
    sample_rate: int = 1
    enabled: bool = True
    priority: int = 0

    @property
    def has_ports(self) -> bool:
        return (self.dport_min, self.dport_max) != (0, 0)

    @property
    def prefix(self) -> PrefixKey:
        return (self.network.version, self.network.prefixlen, int(self.network.network_address))

    @property
    def burst(self) -> int:
        # 100 ms worth back to back: senders that batch (every real one) still get their rate;
        # a bucket smaller than the sender's bursts would throttle it below the setting.
        return max(1, self.rate_limit_pps // 10)

    def order(self) -> tuple[int, int]:
        return (self.priority, self.id)


def validate(
    *,
    id: int,
    source_cidr: str,
    action: int,
    revision: int = 1,
    name: str = "",
    protocol: int = 0,
    dst_port_min: int = 0,
    dst_port_max: int = 0,
    rate_limit_pps: int = 0,
    sample_rate: int = 0,
    enabled: bool = True,
    priority: int = 0,
) -> RuleSpec:
    """A RuleSpec from raw field values, or RuleError naming the first bad field."""
    if id <= 0 or id > 0xFFFFFFFF:
        raise RuleError("id", f"must be between 1 and 4294967295, got {id}")
    if len(name.encode()) >= shared.RULE_NAME_LEN:
        raise RuleError("name", f"must be at most {shared.RULE_NAME_LEN - 1} bytes of UTF-8")
    network = _network(source_cidr)
    try:
        act = shared.Action(action)
    except ValueError:
        raise RuleError(
            "action", f"must be one of PASS, DROP, RATE_LIMIT, REDIRECT, got {action}"
        ) from None
    if not 0 <= protocol <= 255:
        raise RuleError("protocol", f"must be an IP protocol number 0..255, got {protocol}")
    for field_name, port in (("dst_port_min", dst_port_min), ("dst_port_max", dst_port_max)):
        if not 0 <= port <= 65535:
            raise RuleError(field_name, f"must be a port 0..65535, got {port}")
    if dst_port_min > dst_port_max:
        raise RuleError(
            "dst_port_max", f"must be >= dst_port_min ({dst_port_min}), got {dst_port_max}"
        )
    if (dst_port_min, dst_port_max) != (0, 0) and protocol not in (0, IPPROTO_TCP, IPPROTO_UDP):
        raise RuleError(
            "dst_port_min", f"a port range needs protocol TCP, UDP or any, not {protocol}"
        )
    if act == shared.Action.RATE_LIMIT and rate_limit_pps <= 0:
        raise RuleError("rate_limit_pps", "must be > 0 for ACTION_RATE_LIMIT")
    if sample_rate < 0:
        raise RuleError("sample_rate", f"must be >= 1 (0 means 1), got {sample_rate}")
    return RuleSpec(
        id=id,
        network=network,
        action=act,
        revision=revision,
        name=name,
        protocol=protocol,
        dport_min=dst_port_min,
        dport_max=dst_port_max,
        rate_limit_pps=rate_limit_pps if act == shared.Action.RATE_LIMIT else 0,
        sample_rate=max(1, sample_rate) if act == shared.Action.REDIRECT else 1,
        enabled=enabled,
        priority=priority,
    )


def _network(source_cidr: str) -> Network:
    text = source_cidr.strip()
    # Longer than any IPv6 prefix in any notation: not worth parsing (nor quoting whole).
    if len(text) > QUOTE_LIMIT:
        raise RuleError("source_cidr", f"{quoted(text)} is not an IPv4/IPv6 prefix (too long)")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as err:
        # ipaddress quotes the value in its message; the value here is short.
        raise RuleError("source_cidr", f"not an IPv4/IPv6 prefix: {err}") from None


def rule_matches(rule: RuleSpec, pkt: Parsed) -> bool:
    if rule.protocol and rule.protocol != pkt.proto:
        return False
    if rule.has_ports:
        return pkt.has_ports and rule.dport_min <= pkt.dport <= rule.dport_max
    return True


def is_protected(protected: Iterable[Network], pkt: Parsed) -> bool:
    """True when `pkt` is passed before any rule (reference model of the protected tries)."""
    if pkt.error or not pkt.family or pkt.src is None:
        return False
    return any(n.version == pkt.family and pkt.src in n for n in protected)


def first_match(rules: Iterable[RuleSpec], pkt: Parsed) -> RuleSpec | None:
    """The rule deciding `pkt` (reference model of the XDP program), None for the default."""
    if pkt.error or not pkt.family or pkt.src is None:
        return None
    containing = [
        r for r in rules if r.enabled and r.network.version == pkt.family and pkt.src in r.network
    ]
    containing.sort(key=lambda r: (-r.network.prefixlen, r.priority, r.id))
    candidates = containing[: shared.SLOTS_PER_PREFIX]
    for rule in candidates:
        if rule_matches(rule, pkt):
            return rule
    return None


def _mask(family: int, length: int) -> int:
    bits = _BITS[family]
    return ((1 << length) - 1) << (bits - length) if length else 0


def _lpm_key(prefix: PrefixKey) -> bytes:
    family, length, addr = prefix
    return struct.pack("<I", length) + addr.to_bytes(_BITS[family] // 8, "big")


def _rule_value(rule: RuleSpec) -> bytes:
    value = shared.Rule(
        rule_id=rule.id,
        action=int(rule.action),
        protocol=rule.protocol,
        flags=shared.RULE_PORTS if rule.has_ports else 0,
        dport_min=rule.dport_min,
        dport_max=rule.dport_max,
        rate_pps=rule.rate_limit_pps,
        burst=rule.burst,
        sample_rate=rule.sample_rate,
    )
    return bytes(value)


def _meta_value(rule: RuleSpec, slot: int) -> bytes:
    meta = shared.RuleMeta(
        revision=rule.revision,
        slot=slot,
        priority=rule.priority,
        family=rule.network.version,
        prefixlen=rule.network.prefixlen,
        enabled=int(rule.enabled),
        name=rule.name.encode(),
    )
    packed = rule.network.network_address.packed
    meta.addr[: len(packed)] = list(packed)
    return bytes(meta)


def _meta_to_rule(rule_id: int, raw: bytes) -> tuple[RuleSpec, int]:
    meta = shared.RuleMeta.from_buffer_copy(raw)
    addr_bytes = bytes(meta.addr)[: 4 if meta.family == 4 else 16]
    network = ipaddress.ip_network((addr_bytes, meta.prefixlen))
    return (
        RuleSpec(
            id=rule_id,
            network=network,
            action=shared.Action.PASS,  # replaced from fp_rules by the caller
            revision=meta.revision,
            name=meta.name.decode(errors="replace"),
            priority=meta.priority,
            enabled=bool(meta.enabled),
        ),
        meta.slot,
    )


@dataclass
class ChangeResult:
    added: int = 0
    updated: int = 0
    removed: int = 0
    generation: int = 0


@dataclass
class _Journal:
    """Previous values of every key written, to undo a batch that fails half way."""

    entries: list[tuple[int, bytes, bytes | list[bytes] | None]] = field(default_factory=list)

    def record(self, fd: int, key: bytes, old: bytes | None) -> None:
        self.entries.append((fd, key, old))

    def record_percpu(self, fd: int, key: bytes, old: list[bytes]) -> None:
        self.entries.append((fd, key, old))

    def undo(self) -> None:
        for fd, key, old in reversed(self.entries):
            if old is None:
                libbpf.map_delete(fd, key)
            elif isinstance(old, list):
                libbpf.percpu_update(fd, key, old)
            else:
                libbpf.map_update(fd, key, old)


class RuleTable:
    """The applied rule set, kept in step with the BPF maps (the only writer of them)."""

    def __init__(self, map_fds: dict[str, int], max_rules: int = shared.MAX_RULES) -> None:
        self._fd = map_fds
        self._max_rules = max_rules
        self.rules: dict[int, RuleSpec] = {}
        self._slots: dict[int, int] = {}
        self._prefix_values: dict[PrefixKey, tuple[int, ...]] = {}
        self._load()

    # -- state from the maps -------------------------------------------------------------------
    def _load(self) -> None:
        """Rebuild the rule set from pinned maps (empty on a fresh start)."""
        meta_fd, rules_fd = self._fd[shared.MAP_RULE_META], self._fd[shared.MAP_RULES]
        for key in list(libbpf.map_keys(meta_fd, 4)):
            raw = libbpf.map_lookup(meta_fd, key, C_SIZEOF_META)
            if raw is None:
                continue
            (rule_id,) = struct.unpack("<I", key)
            spec, slot = _meta_to_rule(rule_id, raw)
            value = shared.Rule.from_buffer_copy(libbpf.array_get(rules_fd, slot, C_SIZEOF_RULE))
            spec = replace(
                spec,
                action=shared.Action(value.action),
                protocol=value.protocol,
                dport_min=value.dport_min if value.flags & shared.RULE_PORTS else 0,
                dport_max=value.dport_max if value.flags & shared.RULE_PORTS else 0,
                rate_limit_pps=value.rate_pps,
                sample_rate=value.sample_rate,
            )
            self.rules[rule_id] = spec
            self._slots[rule_id] = slot
        for family in (4, 6):
            index = self._index(self.rules.values(), family)
            for prefix in index:
                slots = self._candidates(prefix, index)
                if slots:
                    self._prefix_values[prefix] = slots
        self._free = sorted(set(range(self._max_rules)) - set(self._slots.values()), reverse=True)

    def config(self) -> shared.Config:
        raw = libbpf.array_get(self._fd[shared.MAP_CONFIG], 0, C_SIZEOF_CONFIG)
        return shared.Config.from_buffer_copy(raw)

    def _write_config(self, cfg: shared.Config) -> None:
        libbpf.map_update(self._fd[shared.MAP_CONFIG], struct.pack("<I", 0), bytes(cfg))

    @property
    def generation(self) -> int:
        return int(self.config().generation)

    def set_default_policy(self, policy: shared.Policy) -> None:
        cfg = self.config()
        cfg.default_policy = int(policy)
        self._write_config(cfg)

    def default_policy(self) -> shared.Policy:
        value = self.config().default_policy
        return shared.Policy(value) if value else shared.Policy.ALLOW

    def slot_of(self, rule_id: int) -> int:
        return self._slots[rule_id]

    # -- candidates ---------------------------------------------------------------------------
    @staticmethod
    def _index(rules: Iterable[RuleSpec], family: int) -> dict[PrefixKey, list[RuleSpec]]:
        index: dict[PrefixKey, list[RuleSpec]] = {}
        for rule in rules:
            if rule.enabled and rule.network.version == family:
                index.setdefault(rule.prefix, []).append(rule)
        for members in index.values():
            members.sort(key=RuleSpec.order)
        return index

    def _candidates_specs(
        self, prefix: PrefixKey, index: dict[PrefixKey, list[RuleSpec]], lengths: Sequence[int]
    ) -> list[RuleSpec]:
        family, length, addr = prefix
        out: list[RuleSpec] = []
        for plen in lengths:
            if plen > length:
                continue
            out.extend(index.get((family, plen, addr & _mask(family, plen)), ()))
        return out

    def _candidates(
        self,
        prefix: PrefixKey,
        index: dict[PrefixKey, list[RuleSpec]],
        slots: dict[int, int] | None = None,
        lengths: Sequence[int] | None = None,
    ) -> tuple[int, ...]:
        if lengths is None:
            lengths = sorted({p[1] for p in index}, reverse=True)
        slots = self._slots if slots is None else slots
        specs = self._candidates_specs(prefix, index, lengths)
        return tuple(slots[r.id] for r in specs)

    # -- changes ------------------------------------------------------------------------------
    def apply(self, batch: Sequence[RuleSpec]) -> ChangeResult:
        """Create or update rules as one batch (all land or none)."""
        seen: set[int] = set()
        changes: dict[int, RuleSpec | None] = {}
        for i, rule in enumerate(batch):
            if rule.id in seen:
                raise RuleError(f"rules[{i}].id", f"rule {rule.id} appears twice in the batch")
            seen.add(rule.id)
            current = self.rules.get(rule.id)
            if current is not None:
                if rule.revision < current.revision:
                    raise StaleRevision(
                        f"rule {rule.id}: revision {rule.revision} is older than the applied "
                        f"revision {current.revision}"
                    )
                if rule.revision == current.revision:
                    continue
            changes[rule.id] = rule
        return self._commit(changes)

    def delete(self, refs: Sequence[tuple[int, int]]) -> ChangeResult:
        """Delete rules by (id, revision); revision 0 deletes whatever is there."""
        changes: dict[int, RuleSpec | None] = {}
        for i, (rule_id, revision) in enumerate(refs):
            if rule_id <= 0:
                raise RuleError(f"rules[{i}].id", f"must be > 0, got {rule_id}")
            current = self.rules.get(rule_id)
            if current is None:
                continue
            if revision and revision != current.revision:
                raise StaleRevision(
                    f"rule {rule_id}: delete of revision {revision}, but revision "
                    f"{current.revision} is applied"
                )
            changes[rule_id] = None
        return self._commit(changes)

    def sync(self, desired: Sequence[RuleSpec]) -> ChangeResult:
        """Make the applied set equal to `desired` (one batch)."""
        changes: dict[int, RuleSpec | None] = {}
        wanted: set[int] = set()
        for i, rule in enumerate(desired):
            if rule.id in wanted:
                raise RuleError(f"rules[{i}].id", f"rule {rule.id} appears twice in the batch")
            wanted.add(rule.id)
            current = self.rules.get(rule.id)
            if current is not None and rule.revision < current.revision:
                raise StaleRevision(
                    f"rule {rule.id}: revision {rule.revision} is older than the applied "
                    f"revision {current.revision}"
                )
            if current is None or rule.revision != current.revision:
                changes[rule.id] = rule
        for rule_id in self.rules:
            if rule_id not in wanted:
                changes[rule_id] = None
        return self._commit(changes)

    def _commit(self, changes: dict[int, RuleSpec | None]) -> ChangeResult:
        result = ChangeResult()
        if not changes:
            result.generation = self.generation
            return result
        new_rules = dict(self.rules)
        new_slots = dict(self._slots)
        free = list(self._free)
        freed_slots: list[int] = []
        affected: set[PrefixKey] = set()
        for rule_id, rule in changes.items():
            old = self.rules.get(rule_id)
            if old is not None:
                affected.add(old.prefix)
            if rule is None:
                if old is not None:
                    del new_rules[rule_id]
                    freed_slots.append(new_slots.pop(rule_id))
                    result.removed += 1
                continue
            affected.add(rule.prefix)
            new_rules[rule_id] = rule
            if old is None:
                if not free:
                    raise TableFull(f"the rule table is full ({self._max_rules} rules)")
                slot = free.pop()
                new_slots[rule_id] = slot
                result.added += 1
            else:
                result.updated += 1

        # Every prefix equal to or inside an affected one may see its candidates change.
        new_values: dict[PrefixKey, tuple[int, ...]] = {}
        removed_prefixes: list[PrefixKey] = []
        for family in (4, 6):
            fam_affected = {p for p in affected if p[0] == family}
            if not fam_affected:
                continue
            index = self._index(new_rules.values(), family)
            lengths = sorted({p[1] for p in index}, reverse=True)
            affected_lengths = sorted({p[1] for p in fam_affected})
            for prefix in index:
                _, length, addr = prefix
                if not any(
                    (family, plen, addr & _mask(family, plen)) in fam_affected
                    for plen in affected_lengths
                    if plen <= length
                ):
                    continue
                specs = self._candidates_specs(prefix, index, lengths)
                if len(specs) > shared.SLOTS_PER_PREFIX:
                    net: Network = (
                        ipaddress.IPv4Network((addr, length))
                        if family == 4
                        else ipaddress.IPv6Network((addr, length))
                    )
                    raise TableFull(
                        f"prefix {net} would have {len(specs)} candidate rules (its own and "
                        f"those of covering prefixes); the limit is {shared.SLOTS_PER_PREFIX}"
                    )
                value = tuple(new_slots[r.id] for r in specs)
                if self._prefix_values.get(prefix) != value:
                    new_values[prefix] = value
            for prefix in fam_affected:
                if prefix not in index and prefix in self._prefix_values:
                    removed_prefixes.append(prefix)

        journal = _Journal()
        try:
            self._write(
                changes,
                new_rules,
                new_slots,
                freed_slots,
                new_values,
                removed_prefixes,
                journal,
            )
        except libbpf.BpfError as err:
            journal.undo()
            if err.errno in (7, 28, 12):  # E2BIG, ENOSPC, ENOMEM: a map is full
                raise TableFull(f"a BPF map is full: {err}") from err
            raise
        except BaseException:
            journal.undo()
            raise

        self.rules = new_rules
        self._slots = new_slots
        for slot in freed_slots:
            free.append(slot)
        free.sort(reverse=True)
        self._free = free
        for prefix in removed_prefixes:
            self._prefix_values.pop(prefix, None)
        self._prefix_values.update(new_values)
        result.generation = self.generation
        return result

    def _write(
        self,
        changes: dict[int, RuleSpec | None],
        new_rules: dict[int, RuleSpec],
        new_slots: dict[int, int],
        freed_slots: list[int],
        new_values: dict[PrefixKey, tuple[int, ...]],
        removed_prefixes: list[PrefixKey],
        journal: _Journal,
    ) -> None:
        # Order keeps the data path consistent: rule bodies before the prefixes that point at
        # them; prefixes released before the slots they pointed at are cleared.
        rules_fd, meta_fd = self._fd[shared.MAP_RULES], self._fd[shared.MAP_RULE_META]
        counters_fd = self._fd[shared.MAP_RULE_COUNTERS]
        zero_counter = bytes(C_SIZEOF_COUNTER)
        # Rule bodies and metadata go in one batched write per map (a bulk load is mostly these);
        # everything is journaled first, so a failed batch is undone like a failed single write.
        body_keys: list[bytes] = []
        bodies: list[bytes] = []
        meta_keys: list[bytes] = []
        metas: list[bytes] = []
        for rule_id, rule in changes.items():
            if rule is None:
                continue
            slot = new_slots[rule_id]
            key = struct.pack("<I", slot)
            old_rule = self.rules.get(rule_id)
            old_body = _rule_value(old_rule) if old_rule is not None else bytes(C_SIZEOF_RULE)
            journal.record(rules_fd, key, old_body)
            body_keys.append(key)
            bodies.append(_rule_value(rule))
            id_key = struct.pack("<I", rule_id)
            old_meta = _meta_value(old_rule, slot) if old_rule is not None else None
            journal.record(meta_fd, id_key, old_meta)
            meta_keys.append(id_key)
            metas.append(_meta_value(rule, slot))
        libbpf.map_update_batch(rules_fd, body_keys, bodies)
        libbpf.map_update_batch(meta_fd, meta_keys, metas)
        for prefix, slots in new_values.items():
            fd = self._fd[shared.MAP_LPM_V4 if prefix[0] == 4 else shared.MAP_LPM_V6]
            key = _lpm_key(prefix)
            old_slots = self._prefix_values.get(prefix)
            journal.record(fd, key, _prefix_value(old_slots) if old_slots is not None else None)
            libbpf.map_update(fd, key, _prefix_value(slots))
        for prefix in removed_prefixes:
            fd = self._fd[shared.MAP_LPM_V4 if prefix[0] == 4 else shared.MAP_LPM_V6]
            key = _lpm_key(prefix)
            journal.record(fd, key, _prefix_value(self._prefix_values[prefix]))
            libbpf.map_delete(fd, key)
        for rule_id, rule in changes.items():
            if rule is not None or rule_id not in self.rules:
                continue
            old_rule = self.rules[rule_id]
            slot = self._slots[rule_id]
            id_key = struct.pack("<I", rule_id)
            journal.record(meta_fd, id_key, _meta_value(old_rule, slot))
            libbpf.map_delete(meta_fd, id_key)
            key = struct.pack("<I", slot)
            journal.record(rules_fd, key, _rule_value(old_rule))
            libbpf.map_update(rules_fd, key, bytes(C_SIZEOF_RULE))
            # Free slots hold zero counters, so the next rule in the slot starts from zero
            # without a read-and-clear on the (bulk) add path.
            journal.record_percpu(
                counters_fd, key, libbpf.percpu_lookup(counters_fd, key, C_SIZEOF_COUNTER)
            )
            libbpf.percpu_update(counters_fd, key, zero_counter)
        cfg = self.config()
        journal.record(self._fd[shared.MAP_CONFIG], struct.pack("<I", 0), bytes(cfg))
        cfg.generation += 1
        self._write_config(cfg)

    # -- counters -----------------------------------------------------------------------------
    def rule_counters(self) -> dict[int, tuple[int, int]]:
        """(packets, bytes) per rule id, summed over CPUs.

        One batched read of the counter slots in use (slots are handed out lowest first, so
        that is about as many slots as there are rules), summed per slot with numpy: GetStats
        and StreamStats hold the table lock while this runs.
        """
        if not self._slots:
            return {}
        top = max(self._slots.values()) + 1
        raw = libbpf.percpu_array_read(self._fd[shared.MAP_RULE_COUNTERS], top, C_SIZEOF_COUNTER)
        # struct fp_counter is {u64 packets; u64 bytes}: two words per CPU, no padding.
        totals = np.frombuffer(raw, dtype="<u8").reshape(top, -1, 2).sum(axis=1)
        # Two flat lists of ints, not one small list per slot: fewer objects for the collector.
        packets, octets = totals[:, 0].tolist(), totals[:, 1].tolist()
        return {rule_id: (packets[slot], octets[slot]) for rule_id, slot in self._slots.items()}


def replace_protected(map_fds: dict[str, int], protected: Iterable[Network]) -> None:
    """Make the protected tries hold exactly `protected`: the new prefixes are added before the
    stale ones go, so a prefix in both the old and the new set is never missing."""
    one = struct.pack("<I", 1)
    for family, name in ((4, shared.MAP_PROTECTED_V4), (6, shared.MAP_PROTECTED_V6)):
        fd = map_fds[name]
        wanted = {
            _lpm_key((family, n.prefixlen, int(n.network_address)))
            for n in protected
            if n.version == family
        }
        stale = set(libbpf.map_keys(fd, 4 + _BITS[family] // 8)) - wanted
        for key in sorted(wanted):
            libbpf.map_update(fd, key, one)
        for key in stale:
            libbpf.map_delete(fd, key)


def _prefix_value(slots: Sequence[int]) -> bytes:
    value = shared.PrefixValue(count=len(slots))
    for i, slot in enumerate(slots):
        value.slots[i] = slot
    return bytes(value)


def sum_counters(per_cpu: Sequence[bytes]) -> tuple[int, int]:
    packets = octets = 0
    for raw in per_cpu:
        p, b = struct.unpack_from("<QQ", raw)
        packets += p
        octets += b
    return packets, octets


C_SIZEOF_META = len(bytes(shared.RuleMeta()))
C_SIZEOF_RULE = len(bytes(shared.Rule()))
C_SIZEOF_CONFIG = len(bytes(shared.Config()))
C_SIZEOF_COUNTER = len(bytes(shared.CounterValue()))
