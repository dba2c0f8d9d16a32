"""/api/v1/fastpath: the fast-path agent's status and counters as the API sees them.

Both endpoints answer 200 whatever the agent's state: `configured` says whether FASTPATH_ADDR is
set, `connected` whether the agent answered just now, and `error` why not, so the WebUI can
show an honest "not connected" state while the rest of the API keeps working.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint

from myapp.api.fastpath.client import FastPathError
from myapp.api.routing import api_route
from myapp.api.schemas import ResponseModel, UtcDatetime
from myapp.api.state import state

bp = Blueprint("fastpath", __name__, url_prefix="/api/v1/fastpath")


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
    config = state().config
    reconciler = state().fastpath
    if reconciler is None:
        return FastpathStatus(
            configured=False,
            connected=False,
            address=config.fastpath_addr,
            error=None,
            last_sync_at=None,
            agent=None,
        )
    agent: dict[str, Any] | None = None
    error = reconciler.status.error
    try:
        agent = reconciler.client.status()
        connected = True
    except FastPathError as exc:
        connected, error = False, str(exc)
    return FastpathStatus(
        configured=True,
        connected=connected,
        address=config.fastpath_addr,
        error=None if connected else error,
        last_sync_at=reconciler.status.last_sync_at,
        agent=agent,
    )


@api_route(
    bp,
    "GET",
    "/stats",
    scope="fastpath:read",
    response=FastpathStats,
    summary="Fast-path counters and packet rates (empty while not connected)",
)
def stats() -> FastpathStats:
    reconciler = state().fastpath
    empty = FastpathStats(
        configured=reconciler is not None,
        connected=False,
        timestamp=datetime.now(UTC),
        actions={},
        rules=[],
        parse_errors={},
        xsk=[],
    )
    if reconciler is None:
        return empty
    try:
        counters = reconciler.client.stats()
    except FastPathError:
        return empty
    return FastpathStats(
        configured=True,
        connected=True,
        timestamp=datetime.now(UTC),
        actions=counters["actions"],
        rules=counters["rules"],
        parse_errors=counters["parse_errors"],
        xsk=counters["xsk"],
    )
