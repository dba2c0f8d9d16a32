"""/api/v1/fastpath: the fast-path agent's status and counters as the API sees them.

The gRPC client to the agent is not part of this version: `connected` is always false and
`error` says so when FASTPATH_ADDR is configured, so the WebUI can show an honest state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint

from myapp.api.routing import api_route
from myapp.api.schemas import ResponseModel, UtcDatetime
from myapp.api.state import state

bp = Blueprint("fastpath", __name__, url_prefix="/api/v1/fastpath")

NOT_CONNECTED = "the API's gRPC client to the fast path is not implemented yet"


class FastpathStatus(ResponseModel):
    configured: bool
    connected: bool
    address: str | None
    error: str | None
    last_sync_at: UtcDatetime | None
    agent: dict[str, Any] | None


class FastpathStats(ResponseModel):
    configured: bool
    connected: bool
    timestamp: UtcDatetime
    actions: dict[str, dict[str, float]]
    rules: list[dict[str, Any]]
    parse_errors: dict[str, int]
    xsk: list[dict[str, Any]]


@api_route(
    bp,
    "GET",
    "/status",
    scope="fastpath:read",
    response=FastpathStatus,
    summary="Fast-path agent connection status",
)
def status() -> FastpathStatus:
    address = state().config.fastpath_addr
    return FastpathStatus(
        configured=address is not None,
        connected=False,
        address=address,
        error=NOT_CONNECTED if address else None,
        last_sync_at=None,
        agent=None,
    )


@api_route(
    bp,
    "GET",
    "/stats",
    scope="fastpath:read",
    response=FastpathStats,
    summary="Fast-path counters (empty while not connected)",
)
def stats() -> FastpathStats:
    return FastpathStats(
        configured=state().config.fastpath_addr is not None,
        connected=False,
        timestamp=datetime.now(UTC),
        actions={},
        rules=[],
        parse_errors={},
        xsk=[],
    )
