"""/api/v1/audit: the audit log, newest first by default (scope audit:read, i.e. admins)."""

from __future__ import annotations

from flask import Blueprint

from myapp.api.audit.schemas import AuditList, AuditOut, AuditQuery
from myapp.api.listing import sort_order
from myapp.api.routing import api_route
from myapp.api.state import db

bp = Blueprint("audit", __name__, url_prefix="/api/v1/audit")

SORTABLE = ("id", "created_at", "action", "actor_email", "object_type")


@api_route(
    bp,
    "GET",
    "",
    scope="audit:read",
    query=AuditQuery,
    response=AuditList,
    summary="List audit entries (search in action, actor and object; filter; paginate)",
)
def list_audit(query: AuditQuery) -> AuditList:
    d = db()
    table = d.audit_log
    condition = table.id > 0
    if query.q:
        condition &= (
            table.action.contains(query.q, case_sensitive=False)
            | table.actor_email.contains(query.q, case_sensitive=False)
            | table.object_type.contains(query.q, case_sensitive=False)
            | (table.object_id == query.q)
        )
    if query.action:
        condition &= table.action == query.action
    if query.object_type:
        condition &= table.object_type == query.object_type
    if query.actor_id:
        condition &= table.actor_id == query.actor_id
    field, descending = sort_order(query.sort, SORTABLE, "-id")
    order = ~table[field] if descending else table[field]
    if field != "id":
        order = order | ~table.id
    total = d(condition).count()
    start = (query.page - 1) * query.per_page
    rows = d(condition).select(orderby=order, limitby=(start, start + query.per_page))
    items = []
    for row in rows:
        data = row.as_dict()
        data["details"] = data.get("details") or {}
        items.append(AuditOut.model_validate(data))
    return AuditList(items=items, total=total, page=query.page, per_page=query.per_page)
