"""Audit log models."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from myapp.api.schemas import ListQuery, ResponseModel, UtcDatetime


class AuditOut(ResponseModel):
    id: int
    created_at: UtcDatetime
    actor_id: int | None
    actor_email: str | None
    action: str
    object_type: str | None
    object_id: str | None
    details: dict[str, Any]
    request_id: str | None
    ip: str | None


class AuditList(ResponseModel):
    items: list[AuditOut]
    total: int
    page: int
    per_page: int


class AuditQuery(ListQuery):
    action: str | None = Field(None, max_length=64, description="exact action, e.g. rule.update")
    object_type: str | None = Field(None, max_length=32, description="user, rule, session")
    actor_id: int | None = Field(None, ge=1, description="only entries by this user")
