"""API -> fast path end to end: a rule created through REST reaches the real agent over gRPC and
the loaded XDP program drops matching packets; the API keeps working while the agent is down
and catches up by itself when it comes back.

The agent runs in-process on a loopback port with the real BPF object loaded into the kernel
(packets go through BPF_PROG_TEST_RUN, no interface needed); the API is the real Flask app on a
fresh SQLite database. They talk over mutual TLS as deployed: certificates from myapp.common.pki,
the API with the writer identity, the agent checking it.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from myapp.api.app import create_app
from myapp.api.config import DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD, Config, FastPathTls
from myapp.api.db import dispose
from myapp.common import pki
from myapp.fastpath import packets
from myapp.fastpath.agent import Agent
from myapp.fastpath.config import Config as AgentConfig
from myapp.fastpath.control.server import build_server
from myapp.fastpath.control.service import FastPathService
from myapp.fastpath.loader import libbpf
from myapp.fastpath.loader.datapath import Datapath
from myapp.fastpath.testsupport import require_root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One CA; the TLS directories of the agent, the API (writer) and monitoring (reader)."""
    return pki.write_dev_certs(tmp_path_factory.mktemp("pki"))


@contextmanager
def running_agent(port: int, certs: dict[str, Path]) -> Iterator[Agent]:
    """The real agent's mutual-TLS control server on 127.0.0.1:port, BPF object loaded, no
    attach."""
    tls = certs["fastpath"]
    config = AgentConfig(
        interfaces=(),
        grpc_port=port,
        http_port=0,
        bind="127.0.0.1",
        tls_cert=tls / "tls.crt",
        tls_key=tls / "tls.key",
        tls_client_ca=tls / "ca.crt",
    )
    agent = Agent(config, Datapath())
    stopping = threading.Event()
    control = build_server(config, [FastPathService(agent, stopping)])
    try:
        yield agent
    finally:
        stopping.set()
        control.stop(grace=1)
        agent.close()


@contextmanager
def api_app(fastpath_port: int | str, client: Path) -> Iterator[Flask]:
    """The API on a fresh SQLite database, syncing every second with the agent on this port (or
    the agents a FASTPATH_ADDR-style list names), over mutual TLS with the certificate in
    `client`."""
    data_dir = Path(tempfile.mkdtemp(prefix="myapp-fastpath-api-"))
    config = Config(
        data_dir=data_dir,
        bcrypt_rounds=4,
        testing=True,
        fastpath_addr=(
            fastpath_port if isinstance(fastpath_port, str) else f"127.0.0.1:{fastpath_port}"
        ),
        fastpath_sync_interval=1,
        fastpath_tls=FastPathTls(client / "ca.crt", client / "tls.crt", client / "tls.key"),
    )
    app = create_app(config)
    try:
        yield app
    finally:
        state = app.extensions["myapp"]
        state.fastpath.stop()
        dispose(state.db)
        shutil.rmtree(data_dir, ignore_errors=True)


def _admin_headers(client: FlaskClient) -> dict[str, str]:
    reply = client.post(
        "/api/v1/auth/login", json={"email": DEV_ADMIN_EMAIL, "password": DEV_ADMIN_PASSWORD}
    )
    assert reply.status_code == 200, reply.get_json()
    return {"Authorization": f"Bearer {reply.get_json()['access_token']}"}


def wait_for(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll `condition` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout
    value = condition()
    while not value and time.monotonic() < deadline:
        time.sleep(0.05)
        value = condition()
    assert value, f"condition not met within {timeout} s (last value {value!r})"
    return value


def _rule(client: FlaskClient, headers: dict[str, str], rule_id: int) -> dict[str, Any]:
    reply = client.get(f"/api/v1/rules/{rule_id}", headers=headers)
    assert reply.status_code == 200
    return dict(reply.get_json())


def _create_rule(client: FlaskClient, headers: dict[str, str], **rule: Any) -> int:
    created = client.post("/api/v1/rules", headers=headers, json=rule)
    assert created.status_code == 201, created.get_json()
    return int(created.get_json()["id"])


def _patch_rule(
    client: FlaskClient, headers: dict[str, str], rule_id: int, **changes: Any
) -> dict[str, Any]:
    """PATCH with If-Match on the rule's current revision (as the WebUI does); the new rule."""
    revision = _rule(client, headers, rule_id)["revision"]
    patched = client.patch(
        f"/api/v1/rules/{rule_id}",
        headers={**headers, "If-Match": f'"{revision}"'},
        json=changes,
    )
    assert patched.status_code == 200, patched.get_json()
    updated = dict(patched.get_json())
    assert updated["revision"] == revision + 1
    return updated


@pytest.fixture(autouse=True)
def _root() -> None:
    require_root("loading the XDP program behind the fast-path agent")


def test_rest_rule_reaches_the_kernel_and_drops_packets(certs: dict[str, Path]) -> None:
    port = _free_port()
    with running_agent(port, certs) as agent, api_app(port, certs["flask-backend"]) as app:
        client = app.test_client()
        headers = _admin_headers(client)
        blocked, other = packets.packet("203.0.113.9"), packets.packet("198.51.100.9")
        assert agent.datapath.test_run(blocked) == libbpf.XDP_PASS

        rule_id = _create_rule(
            client, headers, name="block test net 3", source_cidr="203.0.113.0/24", action="drop"
        )
        wait_for(lambda: _rule(client, headers, rule_id)["sync_state"] == "synced")
        assert agent.datapath.test_run(blocked) == libbpf.XDP_DROP
        assert agent.datapath.test_run(other) == libbpf.XDP_PASS

        status = client.get("/api/v1/fastpath/status", headers=headers).get_json()
        assert status["configured"] and status["connected"], status
        assert status["agent"]["rule_count"] == 1
        stats = client.get("/api/v1/fastpath/stats", headers=headers).get_json()
        assert stats["connected"]
        assert {r["rule_id"]: r["packets"] for r in stats["rules"]} == {rule_id: 1}

        # An edit (now: pass) and a delete reach the kernel too.
        _patch_rule(client, headers, rule_id, action="pass")
        wait_for(lambda: agent.datapath.test_run(blocked) == libbpf.XDP_PASS)
        wait_for(lambda: _rule(client, headers, rule_id)["sync_state"] == "synced")
        assert client.delete(f"/api/v1/rules/{rule_id}", headers=headers).status_code == 204
        wait_for(lambda: agent.list_rules()[0] == [])


def test_api_keeps_working_while_the_agent_is_down_and_catches_up(
    certs: dict[str, Path],
) -> None:
    port = _free_port()  # nothing listens here yet
    with api_app(port, certs["flask-backend"]) as app:
        client = app.test_client()
        headers = _admin_headers(client)
        rule_id = _create_rule(
            client, headers, name="down", source_cidr="2001:db8:bad::/48", action="drop"
        )
        assert _rule(client, headers, rule_id)["sync_state"] == "pending"

        status = client.get("/api/v1/fastpath/status", headers=headers).get_json()
        assert status["configured"] and not status["connected"]
        assert status["error"], "a down agent must say why"
        stats = client.get("/api/v1/fastpath/stats", headers=headers)
        assert stats.status_code == 200 and not stats.get_json()["connected"]

        with running_agent(port, certs) as agent:
            # The periodic reconciliation (1 s here) brings the late agent up to date.
            wait_for(lambda: _rule(client, headers, rule_id)["sync_state"] == "synced")
            assert [r.id for r in agent.list_rules()[0]] == [rule_id]
            assert agent.datapath.test_run(packets.packet("2001:db8:bad::1")) == libbpf.XDP_DROP


def test_every_agent_of_the_fleet_gets_the_rules_and_a_missing_one_holds_the_sync_state(
    certs: dict[str, Path],
) -> None:
    # One agent per node (a DaemonSet): a rule counts as synced only once all of them have it.
    port_a, port_b = _free_port(), _free_port()
    blocked = packets.packet("192.0.2.77")
    fleet = f"127.0.0.1:{port_a},127.0.0.1:{port_b}"
    with running_agent(port_a, certs) as agent_a, api_app(fleet, certs["flask-backend"]) as app:
        client = app.test_client()
        headers = _admin_headers(client)
        with running_agent(port_b, certs) as agent_b:
            rule_id = _create_rule(
                client, headers, name="fleet", source_cidr="192.0.2.0/24", action="drop"
            )
            wait_for(lambda: _rule(client, headers, rule_id)["sync_state"] == "synced")
            for agent in (agent_a, agent_b):
                assert agent.datapath.test_run(blocked) == libbpf.XDP_DROP
            status = client.get("/api/v1/fastpath/status", headers=headers).get_json()
            assert status["connected"], status
            assert [a["address"] for a in status["agents"]] == [
                f"127.0.0.1:{port_a}",
                f"127.0.0.1:{port_b}",
            ]
            stats = client.get("/api/v1/fastpath/stats", headers=headers).get_json()
            # One matched packet on each agent, added up.
            assert {r["rule_id"]: r["packets"] for r in stats["rules"]} == {rule_id: 2}
            assert stats["connected"] and stats["missing_agents"] == []

        # Agent B is gone: an edit reaches A, and the rule waits for B as "pending".
        updated = _patch_rule(client, headers, rule_id, action="pass")
        wait_for(lambda: agent_a.datapath.test_run(blocked) == libbpf.XDP_PASS)
        pending = wait_for(lambda: _rule(client, headers, rule_id)["sync_state"] == "pending")
        assert pending
        status = client.get("/api/v1/fastpath/status", headers=headers).get_json()
        assert not status["connected"]
        assert [a["connected"] for a in status["agents"]] == [True, False]
        assert f"127.0.0.1:{port_b}" in status["error"]
        stats = client.get("/api/v1/fastpath/stats", headers=headers).get_json()
        assert stats["missing_agents"] == [f"127.0.0.1:{port_b}"] and not stats["connected"]

        # B comes back (a restarted pod): the periodic sync gives it the current rule set.
        with running_agent(port_b, certs) as agent_b:
            wait_for(lambda: _rule(client, headers, rule_id)["sync_state"] == "synced")
            assert [(r.id, r.revision) for r in agent_b.list_rules()[0]] == [
                (rule_id, updated["revision"])
            ]
            assert agent_b.datapath.test_run(blocked) == libbpf.XDP_PASS


def test_an_api_with_a_reader_certificate_cannot_change_the_agent(certs: dict[str, Path]) -> None:
    # The agent decides by the certificate: the monitoring identity may read, never write.
    port = _free_port()
    with running_agent(port, certs) as agent, api_app(port, certs["monitoring"]) as app:
        client = app.test_client()
        headers = _admin_headers(client)
        rule_id = _create_rule(
            client, headers, name="not yours", source_cidr="203.0.113.0/24", action="drop"
        )
        refused = wait_for(
            lambda: _rule(client, headers, rule_id)["sync_state"] == "error"
            and _rule(client, headers, rule_id)
        )
        assert "PERMISSION_DENIED" in refused["sync_error"], refused
        assert agent.list_rules()[0] == []
        assert agent.datapath.test_run(packets.packet("203.0.113.9")) == libbpf.XDP_PASS
        status = client.get("/api/v1/fastpath/status", headers=headers).get_json()
        assert status["connected"] and status["agent"]["rule_count"] == 0, status
