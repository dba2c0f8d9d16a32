"""Packet-filter rule models. Field checks here; cross-field checks in `rules.service.check`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from myapp.api.schemas import ListQuery, RequestModel, ResponseModel, UtcDatetime
from myapp.common.prefixes import parse_cidr

Protocol = Literal["any", "tcp", "udp", "icmp", "icmpv6"]
Action = Literal["drop", "pass", "rate_limit", "redirect"]
SyncState = Literal["synced", "pending", "error", "disabled"]
Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


Cidr = Annotated[
    str, StringConstraints(max_length=64), AfterValidator(lambda value: str(parse_cidr(value)))
]
Override = Annotated[
    bool,
    Field(
        description=(
            "Accept a source_cidr that covers or lies inside a protected prefix "
            "(FASTPATH_PROTECTED_PREFIXES: the control plane's ranges, which the fast path "
            "passes before any rule anyway). Admins only: anyone else gets 403. Recorded in "
            "the audit entry. Not stored with the rule."
        )
    ),
]


class RuleFields(RequestModel):
    name: Name
    source_cidr: Cidr
    protocol: Protocol = "any"
    dst_port_min: Port | None = None
    dst_port_max: Port | None = None
    action: Action
    rate_limit_pps: Annotated[int, Field(ge=1, le=100_000_000)] | None = None
    sample_rate: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    enabled: bool = True
    priority: Annotated[int, Field(ge=0, le=65535)] = 100
    override: Override = False


class RuleCreate(RuleFields):
    pass


class RulePut(RuleFields):
    revision: Annotated[int, Field(ge=1)] | None = None


class RulePatch(RequestModel):
    name: Name | None = None
    source_cidr: Cidr | None = None
    protocol: Protocol | None = None
    dst_port_min: Port | None = None
    dst_port_max: Port | None = None
    action: Action | None = None
    rate_limit_pps: Annotated[int, Field(ge=1, le=100_000_000)] | None = None
    sample_rate: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    enabled: bool | None = None
    priority: Annotated[int, Field(ge=0, le=65535)] | None = None
    revision: Annotated[int, Field(ge=1)] | None = None
    override: Override = False


class RuleOut(ResponseModel):
    id: int
    name: str
    source_cidr: str
    protocol: Protocol
    dst_port_min: int | None
    dst_port_max: int | None
    action: Action
    rate_limit_pps: int | None
    sample_rate: int | None
    enabled: bool
    priority: int
    revision: int
    created_by: str
    updated_by: str
    created_at: UtcDatetime
    updated_at: UtcDatetime
    sync_state: SyncState
    sync_error: str | None


class RuleList(ResponseModel):
    items: list[RuleOut]
    total: int
    page: int
    per_page: int


class RuleQuery(ListQuery):
    action: Action | None = Field(None, description="only rules with this action")
    protocol: Protocol | None = Field(None, description="only rules for this protocol")
    enabled: bool | None = Field(None, description="only enabled (true) or disabled (false) rules")
