"""/api/v1/fastpath: the fast-path agents' status and counters as the API sees them.

Both endpoints answer 200 whatever the agents' state: `configured` says whether FASTPATH_ADDR is
set, `connected` whether every agent answered just now, and `error` why not, so the WebUI can
show an honest "not connected" state while the rest of the API keeps working. `agents` lists
each agent (one per node); the counters are the sum over the agents that answered.
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


class AgentStatus(ResponseModel):
    address: str
    connected: bool
    error: str | None
    status: dict[str, Any] | None


class FastpathStatus(ResponseModel):
    configured: bool
    connected: bool
    address: str | None
    error: str | None
    last_sync_at: UtcDatetime | None
    agent: dict[str, Any] | None  # the first agent's status (all of them: `agents`)
    agents: list[AgentStatus]


class FastpathStats(ResponseModel):
    configured: bool
    connected: bool
    missing_agents: list[str]
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
            agents=[],
        )
    lookup_error: str | None = None
    answers: dict[str, dict[str, Any] | FastPathError] = {}
    try:
        answers = reconciler.client.each(lambda client: client.status())
    except FastPathError as exc:  # the agents' name does not resolve
        lookup_error = str(exc)
    agents = [
        AgentStatus(address=address, connected=False, error=str(answer), status=None)
        if isinstance(answer, FastPathError)
        else AgentStatus(address=address, connected=True, error=None, status=answer)
        for address, answer in answers.items()
    ]
    connected = bool(agents) and all(agent.connected for agent in agents)
    errors = [f"{agent.address}: {agent.error}" for agent in agents if agent.error]
    error = lookup_error or "; ".join(errors) or reconciler.status.error
    return FastpathStatus(
        configured=True,
        connected=connected,
        address=config.fastpath_addr,
        error=None if connected else error,
        last_sync_at=reconciler.status.last_sync_at,
        agent=next((agent.status for agent in agents if agent.connected), None),
        agents=agents,
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
        missing_agents=[],
        timestamp=datetime.now(UTC),
        actions={},
        rules=[],
        parse_errors={},
        xsk=[],
    )
    if reconciler is None:
        return empty
    try:
        counters, answered, missing = reconciler.client.stats()
    except FastPathError:  # the agents' name does not resolve
        return empty
    if not answered:
        return empty.model_copy(update={"missing_agents": missing})
    return FastpathStats(
        configured=True,
        connected=not missing,
        missing_agents=missing,
        timestamp=datetime.now(UTC),
        actions=counters["actions"],
        rules=counters["rules"],
        parse_errors=counters["parse_errors"],
        xsk=counters["xsk"],
    )
