"""Finding the fast-path agents (the real resolver) and failing honestly when they are away."""

from __future__ import annotations

import socket

import pytest

from myapp.api.config import Config
from myapp.api.fastpath.client import AgentFleet, FastPathUnavailable, resolve_agents


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


def test_every_listed_address_is_an_agent_once() -> None:
    assert resolve_agents("127.0.0.1:50051, 127.0.0.2:50051,127.0.0.1:50051") == [
        "127.0.0.1:50051",
        "127.0.0.2:50051",
    ]
    assert resolve_agents("[::1]:7") == ["[::1]:7"]


def test_a_name_counts_once_per_address_in_one_family() -> None:
    # 'localhost' is 127.0.0.1 and often ::1 too: the same agent, so only one family is kept.
    agents = resolve_agents("localhost:50051")
    assert len(agents) == 1
    assert agents[0] in ("127.0.0.1:50051", "[::1]:50051")


def test_a_name_that_does_not_resolve_is_unavailable_not_a_crash() -> None:
    with pytest.raises(FastPathUnavailable, match="no-such-agent.invalid"):
        resolve_agents("no-such-agent.invalid:50051")


def test_the_configuration_accepts_what_the_fleet_resolves() -> None:
    spec = "fastpath:50051, 10.0.0.7:50051,[fd00::7]:50051"
    assert Config.from_env({"APP_ENV": "development", "FASTPATH_ADDR": spec}).fastpath_addr == spec


def test_a_fleet_call_fails_naming_the_agents_that_did_not_answer() -> None:
    down = f"127.0.0.1:{_closed_port()}"
    fleet = AgentFleet(f"{down},127.0.0.2:{_closed_port()}", timeout=1.0)
    try:
        with pytest.raises(FastPathUnavailable, match=rf"2 of 2 fast-path agents .*{down}"):
            fleet.apply([])
        counters, answered, missing = fleet.stats()
        assert answered == [] and len(missing) == 2
        assert counters["rules"] == [] and counters["xsk"] == []
    finally:
        fleet.close()


def test_an_agent_dropped_during_a_call_reads_as_unavailable() -> None:
    # refresh() closes the channel of an agent that left while a request thread may be calling it.
    fleet = AgentFleet(f"127.0.0.1:{_closed_port()}", timeout=1.0)
    try:
        (agent,) = fleet.refresh()
        fleet._agents[agent].close()  # what refresh() does to an agent that left
        (result,) = fleet.each(lambda client: client.status()).values()
        assert isinstance(result, FastPathUnavailable) and agent in str(result)
    finally:
        fleet.close()
