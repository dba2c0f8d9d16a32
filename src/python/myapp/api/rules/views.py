"""/api/v1/rules: packet-filter rules (rules:read for viewers, rules:write for maintainers)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from myapp.api.auth.principal import current_principal
from myapp.api.errors import validation_error
from myapp.api.fastpath.sync import notify_rule_changed, notify_rule_deleted
from myapp.api.listing import fetch_page
from myapp.api.routing import Reply, api_route
from myapp.api.rules import service
from myapp.api.rules.schemas import RuleCreate, RuleList, RuleOut, RulePatch, RulePut, RuleQuery
from myapp.api.state import commit, db

bp = Blueprint("rules", __name__, url_prefix="/api/v1/rules")


@api_route(
    bp,
    "GET",
    "",
    scope="rules:read",
    query=RuleQuery,
    response=RuleList,
    summary="List rules (search in name and CIDR, filter, sort, paginate)",
)
def list_rules(query: RuleQuery) -> RuleList:
    d = db()
    table = d.fw_rule
    condition = table.id > 0
    if query.q:
        condition &= table.name.contains(
            query.q, case_sensitive=False
        ) | table.source_cidr.contains(query.q, case_sensitive=False)
    for name in ("action", "protocol", "enabled"):
        value = getattr(query, name)
        if value is not None:
            condition &= table[name] == value
    items, total = fetch_page(table, condition, query, RuleOut, service.SORTABLE)
    return RuleList(
        items=items,
        total=total,
        page=query.page,
        per_page=query.per_page,
    )


@api_route(
    bp,
    "POST",
    "",
    scope="rules:write",
    body=RuleCreate,
    response=RuleOut,
    status=201,
    errors=(403, 409),
    summary="Create a rule",
)
def create_rule(body: RuleCreate) -> Reply:
    principal = current_principal()
    row = service.create_rule(
        body.model_dump(exclude={"override"}), principal.email, body.override, principal.role
    )
    commit()
    notify_rule_changed(row.as_dict())
    return Reply(
        service.to_out(row), 201, {"ETag": service.etag(row), "Location": f"/api/v1/rules/{row.id}"}
    )


@api_route(
    bp,
    "GET",
    "/<int:rule_id>",
    scope="rules:read",
    response=RuleOut,
    errors=(404,),
    summary="Get a rule (ETag: its revision)",
)
def get_rule(rule_id: int) -> Reply:
    row = service.get_rule(rule_id)
    return Reply(service.to_out(row), 200, {"ETag": service.etag(row)})


def _update(
    rule_id: int, changes: dict[str, Any], expected: int, source: str, override: bool, *, full: bool
) -> Reply:
    principal = current_principal()
    row = service.update_rule(
        rule_id,
        changes,
        expected,
        source,
        principal.email,
        full=full,
        override=override,
        role=principal.role,
    )
    commit()
    notify_rule_changed(row.as_dict())
    return Reply(service.to_out(row), 200, {"ETag": service.etag(row)})


@api_route(
    bp,
    "PUT",
    "/<int:rule_id>",
    scope="rules:write",
    body=RulePut,
    response=RuleOut,
    errors=(403, 404, 409, 412, 428),
    headers=("If-Match",),
    summary="Replace a rule (If-Match or body revision required)",
)
def put_rule(rule_id: int, body: RulePut) -> Reply:
    expected, source = service.expected_revision(request.headers.get("If-Match"), body.revision)
    changes = body.model_dump(exclude={"revision", "override"})
    return _update(rule_id, changes, expected, source, body.override, full=True)


@api_route(
    bp,
    "PATCH",
    "/<int:rule_id>",
    scope="rules:write",
    body=RulePatch,
    response=RuleOut,
    errors=(403, 404, 409, 412, 428),
    headers=("If-Match",),
    summary="Change some fields of a rule (If-Match or body revision required)",
)
def patch_rule(rule_id: int, body: RulePatch) -> Reply:
    expected, source = service.expected_revision(request.headers.get("If-Match"), body.revision)
    changes = body.model_dump(exclude_unset=True, exclude={"revision", "override"})
    nulls = {k for k, v in changes.items() if v is None} - {
        "dst_port_min",
        "dst_port_max",
        "rate_limit_pps",
        "sample_rate",
    }
    if nulls:
        raise validation_error({name: "Cannot be null" for name in sorted(nulls)})
    return _update(rule_id, changes, expected, source, body.override, full=False)


@api_route(
    bp,
    "DELETE",
    "/<int:rule_id>",
    scope="rules:write",
    status=204,
    errors=(404, 412),
    headers=("If-Match",),
    summary="Delete a rule (If-Match optional)",
)
def delete_rule(rule_id: int) -> None:
    service.delete_rule(rule_id, request.headers.get("If-Match"))
    commit()
    notify_rule_deleted(rule_id)
