"""Pydantic models shared by several resources (timestamps, lists, errors)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema


def _iso_utc(value: datetime) -> str:
    # Hot path (two per listed item): stored values are naive UTC, so only append the Z.
    if value.tzinfo is None:
        return value.isoformat() + "Z"
    return value.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


# Stored naive UTC; serialised as ISO 8601 with a trailing Z.
UtcDatetime = Annotated[
    datetime,
    PlainSerializer(_iso_utc, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class RequestModel(BaseModel):
    """Request bodies: JSON types are not coerced ("5" is not an int), unknown fields rejected."""

    model_config = ConfigDict(strict=True, extra="forbid", str_strip_whitespace=False)


class QueryModel(BaseModel):
    """Query strings: values arrive as text and are converted; unknown parameters rejected."""

    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ListQuery(QueryModel):
    page: int = Field(1, ge=1, le=1_000_000, description="1-based page number")
    per_page: int = Field(20, ge=1, le=100, description="items per page (1..100)")
    q: str | None = Field(None, max_length=200, description="case-insensitive search")
    sort: str | None = Field(
        None, max_length=40, pattern=r"^-?[a-z_]+$", description="field name; '-field' descending"
    )


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
