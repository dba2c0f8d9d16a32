"""Rule storage with optimistic concurrency: ``UPDATE ... WHERE id=? AND revision=?``.

An update succeeds only if the row still has the revision the client read; the affected-row
count tells, so two concurrent writers can never both win (no lost update) on any backend.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from pydal import DAL
from pydal.objects import Row

from myapp.api.audit.service import record
from myapp.api.db import integrity_errors, utcnow
from myapp.api.errors import ApiError, not_found, validation_error
from myapp.api.rules.schemas import RuleOut
from myapp.api.state import db, rollback, state
from myapp.common.prefixes import overlapping

SORTABLE = (
    "id",
    "name",
    "source_cidr",
    "protocol",
    "action",
    "priority",
    "enabled",
    "created_at",
    "updated_at",
)
FIELDS = (
    "name",
    "source_cidr",
    "protocol",
    "dst_port_min",
    "dst_port_max",
    "action",
    "rate_limit_pps",
    "sample_rate",
    "enabled",
    "priority",
)


def to_out(row: Row) -> RuleOut:
    return RuleOut.model_validate(row.as_dict())


def etag(row: Row) -> str:
    return f'"{row.revision}"'


def get_rule(rule_id: int) -> Row:
    row = db().fw_rule(rule_id)
    if row is None:
        raise not_found(f"Rule {rule_id}")
    return row


def check(data: dict[str, Any]) -> dict[str, Any]:
    """Cross-field rules of the contract; returns the normalised values or raises 422."""
    errors: dict[str, str] = {}
    protocol = data["protocol"]
    pmin, pmax = data.get("dst_port_min"), data.get("dst_port_max")
    if protocol in ("tcp", "udp"):
        if pmin is None and pmax is not None:
            errors["dst_port_min"] = "Give dst_port_min together with dst_port_max"
        if pmin is not None and pmax is None:
            pmax = data["dst_port_max"] = pmin  # a single port
        if pmin is not None and pmax is not None and pmin > pmax:
            errors["dst_port_max"] = f"Must be >= dst_port_min ({pmin})"
    else:
        for name in ("dst_port_min", "dst_port_max"):
            if data.get(name) is not None:
                errors[name] = f"Ports need protocol tcp or udp (protocol is {protocol})"
    v6 = ":" in data["source_cidr"]
    if protocol == "icmp" and v6:
        errors["protocol"] = "Use icmpv6 with an IPv6 source_cidr"
    if protocol == "icmpv6" and not v6:
        errors["protocol"] = "Use icmp with an IPv4 source_cidr"
    if data["action"] == "rate_limit":
        if data.get("rate_limit_pps") is None:
            errors["rate_limit_pps"] = "Required when action is rate_limit"
    elif data.get("rate_limit_pps") is not None:
        errors["rate_limit_pps"] = "Only allowed when action is rate_limit"
    if data["action"] != "redirect" and data.get("sample_rate") is not None:
        errors["sample_rate"] = "Only allowed when action is redirect"
    if errors:
        raise validation_error(errors)
    return data


def check_protected(data: dict[str, Any], override: bool, role: str) -> dict[str, str] | None:
    """None when the rule's source_cidr is clear of FASTPATH_PROTECTED_PREFIXES; with an admin's
    override, what the audit entry records; otherwise 422 naming the field and the prefix (403
    when a non-admin asks to override). Checked on every create and update, so a rule that
    touches the control plane's ranges stays an admin's to change."""
    protected = state().config.fastpath_protected_prefixes
    hit = overlapping(ipaddress.ip_network(data["source_cidr"]), protected)
    if hit is None:
        return None
    if not override:
        raise ApiError(
            422,
            "validation_error",
            f"Rule {data['name']!r}: source_cidr {data['source_cidr']} overlaps the protected "
            f"prefix {hit}",
            {
                "fields": {
                    "source_cidr": (
                        f"Overlaps the protected prefix {hit} (FASTPATH_PROTECTED_PREFIXES: the "
                        "fast path passes its traffic before any rule); an admin may send "
                        '"override": true'
                    )
                },
                "protected_prefix": str(hit),
            },
        )
    if role != "admin":
        raise ApiError(
            403,
            "forbidden",
            f"Only an admin may override the protected prefix {hit}; ask an admin to create or "
            "change this rule",
        )
    return {"protected_prefix": str(hit)}


def match_key(data: dict[str, Any]) -> str:
    return "|".join(
        str(data.get(name) if data.get(name) is not None else "*")
        for name in ("source_cidr", "protocol", "dst_port_min", "dst_port_max")
    )


def _duplicate(key: str, exclude: int | None = None) -> ApiError:
    d = db()
    query = d.fw_rule.match_key == key
    if exclude is not None:
        query &= d.fw_rule.id != exclude
    other = d(query).select(d.fw_rule.id, d.fw_rule.name, limitby=(0, 1)).first()
    other_id = other.id if other else None
    name = f" ({other.name!r})" if other else ""
    return ApiError(
        409,
        "duplicate",
        f"Rule {other_id}{name} already matches the same source, protocol and ports",
        {
            "rule_id": other_id,
            "fields": ["source_cidr", "protocol", "dst_port_min", "dst_port_max"],
        },
    )


def _initial_sync_state() -> str:
    return "pending" if state().config.fastpath_addr else "disabled"


def create_rule(data: dict[str, Any], actor: str, override: bool = False, role: str = "") -> Row:
    data = check(dict(data))
    overridden = check_protected(data, override, role)
    key = match_key(data)
    d = db()
    if not d(d.fw_rule.match_key == key).isempty():
        raise _duplicate(key)
    now = utcnow()
    try:
        rule_id = d.fw_rule.insert(
            **{name: data.get(name) for name in FIELDS},
            revision=1,
            match_key=key,
            created_by=actor,
            updated_by=actor,
            created_at=now,
            updated_at=now,
            sync_state=_initial_sync_state(),
            sync_error=None,
        )
    except integrity_errors(d):
        rollback()
        raise _duplicate(key) from None
    row = d.fw_rule(rule_id)
    details: dict[str, Any] = {k: data.get(k) for k in FIELDS}
    if overridden:
        details["override"] = overridden
    record("rule.create", "rule", rule_id, details)
    return row


def expected_revision(if_match: str | None, body_revision: int | None) -> tuple[int, str]:
    """(revision, source) from If-Match or the body; 428 when neither is given."""
    if if_match:
        tag = if_match.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        if not tag.isdigit():
            raise ApiError(
                412, "precondition_failed", 'If-Match must be the rule\'s ETag, e.g. "3"'
            )
        return int(tag), "if-match"
    if body_revision is not None:
        return body_revision, "body"
    raise ApiError(
        428,
        "precondition_required",
        'Send If-Match: "<revision>" or a "revision" field so concurrent edits are detected',
    )


def _stale(row: Row, source: str, expected: int) -> ApiError:
    if source == "if-match":
        return ApiError(
            412,
            "precondition_failed",
            f"If-Match revision {expected} is stale; the rule is at revision {row.revision}",
            {"current": to_out(row).model_dump(mode="json")},
        )
    return ApiError(
        409,
        "revision_conflict",
        f"Revision {expected} is stale; the rule is at revision {row.revision}",
        {"current": to_out(row).model_dump(mode="json")},
    )


def update_rule(
    rule_id: int,
    changes: dict[str, Any],
    expected: int,
    source: str,
    actor: str,
    *,
    full: bool,
    override: bool = False,
    role: str = "",
) -> Row:
    d = db()
    row = get_rule(rule_id)
    if row.revision != expected:
        raise _stale(row, source, expected)
    merged = {name: row[name] for name in FIELDS}
    if full:
        merged = {name: changes.get(name) for name in FIELDS}
    else:
        merged.update(changes)
        if "protocol" in changes and changes["protocol"] not in ("tcp", "udp"):
            # Switching to a port-less protocol drops the old ports unless new ones were given.
            for name in ("dst_port_min", "dst_port_max"):
                if name not in changes:
                    merged[name] = None
    merged = check(merged)
    overridden = check_protected(merged, override, role)
    key = match_key(merged)
    if not d((d.fw_rule.match_key == key) & (d.fw_rule.id != rule_id)).isempty():
        raise _duplicate(key, exclude=rule_id)
    try:
        updated = d((d.fw_rule.id == rule_id) & (d.fw_rule.revision == expected)).update(
            **merged,
            match_key=key,
            revision=expected + 1,
            updated_by=actor,
            updated_at=utcnow(),
            sync_state=_initial_sync_state(),
            sync_error=None,
        )
    except integrity_errors(d):
        rollback()
        raise _duplicate(key, exclude=rule_id) from None
    if updated != 1:
        rollback()
        current = d.fw_rule(rule_id)
        if current is None:
            raise not_found(f"Rule {rule_id}")
        raise _stale(current, source, expected)
    changed = {k: merged[k] for k in FIELDS if merged[k] != row[k]}
    details: dict[str, Any] = {"revision": expected + 1, "changes": changed}
    if overridden:
        details["override"] = overridden
    record("rule.update", "rule", rule_id, details)
    return d.fw_rule(rule_id)


def delete_rule(rule_id: int, if_match: str | None) -> None:
    d = db()
    row = get_rule(rule_id)
    query = d.fw_rule.id == rule_id
    if if_match:
        expected, source = expected_revision(if_match, None)
        if row.revision != expected:
            raise _stale(row, source, expected)
        query &= d.fw_rule.revision == expected
    if d(query).delete() != 1:
        rollback()
        current = d.fw_rule(rule_id)
        if current is None:
            raise not_found(f"Rule {rule_id}")
        raise _stale(current, "if-match", int(if_match.strip('W/"') if if_match else 0))
    record("rule.delete", "rule", rule_id, {"name": row.name, "source_cidr": row.source_cidr})


def sync_snapshot(d: DAL) -> list[dict[str, Any]]:
    """Every rule as the fast-path sync sends it (the agent keeps disabled ones switched off)."""
    return [row.as_dict() for row in d(d.fw_rule).select(orderby=d.fw_rule.id)]


def mark_sync(d: DAL, refs: Sequence[tuple[int, int]], sync_state: str, error: str | None) -> None:
    """Record the fast path's answer for these (id, revision) pairs; a rule edited since keeps
    the state of its newer revision."""
    for rule_id, revision in refs:
        d((d.fw_rule.id == rule_id) & (d.fw_rule.revision == revision)).update(
            sync_state=sync_state, sync_error=error
        )
    d.commit()
