"""The control plane on a real veth: the agent's gRPC port reached across the veth stays
reachable whatever the rules say (protected prefixes), and an agent restart leaves no moment
without a filter (the program is taken over, not detached and attached again)."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from fastpath.v1 import fastpath_pb2 as pb
from fastpath.v1 import fastpath_pb2_grpc as pb_grpc
from fastpath_netns.agentproc import AgentProcess
from fastpath_netns.netns_client import run_client
from myapp.common import pki
from myapp.fastpath.loader import libbpf
from myapp.fastpath.netlab import VethLab, socket_in
from myapp.fastpath.rules import sum_counters
from myapp.fastpath.shared import MAP_COUNTERS, Counter

PORT = 9  # the receivers' port (conftest)


def drain(sock: socket.socket, running: threading.Event | None = None) -> dict[str, int]:
    """Datagrams per source until the socket stays quiet for its timeout (and `running`, when
    given, is cleared)."""
    got: dict[str, int] = {}
    while True:
        try:
            _, peer = sock.recvfrom(2048)
        except TimeoutError:
            if running is None or not running.is_set():
                return got
            continue
        got[peer[0]] = got.get(peer[0], 0) + 1


def send_once(lab: VethLab, source: str, count: int) -> None:
    sock = socket_in(lab.tx_ns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((source, 0))
        for _ in range(count):
            sock.sendto(b"x" * 32, (lab.rx_addr, PORT))
    finally:
        sock.close()


def pinned_counter(pins: Path, counter: Counter) -> int:
    """Packets of one verdict counter, read from the pinned map (whichever agent runs)."""
    fd = libbpf.obj_get(pins / MAP_COUNTERS)
    try:
        return sum_counters(libbpf.percpu_lookup(fd, struct.pack("<I", counter), 16))[0]
    finally:
        os.close(fd)


def start(lab: VethLab, pins: Path, **env: str) -> AgentProcess:
    agent = AgentProcess(
        {"FASTPATH_INTERFACES": lab.rx_if, "FASTPATH_BPFFS": str(pins), "FASTPATH_MODE": "generic"}
        | env
    )
    try:
        agent.wait_started()
    except BaseException:
        agent.kill()
        raise
    return agent


# -- protected prefixes --------------------------------------------------------------------------


@pytest.mark.parametrize("protected", [True, False], ids=["protected", "unprotected"])
def test_drop_all_and_deny_leave_the_writer_able_to_undo_them(
    lab: VethLab, pins: Path, receiver: socket.socket, tmp_path: Path, protected: bool
) -> None:
    """The API's client (with the API's writer certificate, over mutual TLS) from the far end of
    the veth, whose address is the protected prefix: drop-all rules and a DENY default, then the
    same client reads the status and syncs the rules away, and a new connection restores ALLOW.
    Unprotected, the first rule cuts it off: the test can fail."""
    certs = pki.write_dev_certs(tmp_path / "tls")
    agent_tls = certs["fastpath"]
    client, other = lab.tx_addrs[0], lab.tx_addrs[1]  # the client's source: the first address
    agent = start(
        lab,
        pins,
        FASTPATH_BIND=lab.rx_addr,
        FASTPATH_TLS_CERT=str(agent_tls / "tls.crt"),
        FASTPATH_TLS_KEY=str(agent_tls / "tls.key"),
        FASTPATH_TLS_CLIENT_CA=str(agent_tls / "ca.crt"),
        FASTPATH_PROTECTED_PREFIXES=f"{client}/32" if protected else "",
    )
    target = f"{lab.rx_addr}:{agent.grpc_port}"
    try:
        code, out = run_client(lab.tx_ns, target, certs["flask-backend"], "lockdown")
        if not protected:
            # The drop-all rule lands and cuts its writer off before the next call.
            assert code == 1 and out["code"] in ("UNAVAILABLE", "DEADLINE_EXCEEDED"), out
            return
        assert (code, out) == (0, {"applied": 2})
        send_once(lab, other, 20)
        assert drain(receiver) == {}
        code, out = run_client(lab.tx_ns, target, certs["flask-backend"], "restore")
        assert (code, out) == (0, {"found": [2, "POLICY_DENY"], "removed": 2})
        send_once(lab, other, 20)
        assert drain(receiver) == {other: 20}
        assert pinned_counter(pins, Counter.PROTECTED_PASS) > 0
    finally:
        code, log = agent.terminate()
    assert code == 0, log


# -- restart without a gap -----------------------------------------------------------------------


class SteadySender:
    """Datagrams from each of `sources` in turn at `pps` in total, from the far end of the veth,
    until stopped; counts what it sent per source."""

    def __init__(self, lab: VethLab, sources: list[str], pps: int) -> None:
        self.sent = dict.fromkeys(sources, 0)
        self._socks = []
        for source in sources:
            sock = socket_in(lab.tx_ns, socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((source, 0))
            self._socks.append((source, sock))
        self._target = (lab.rx_addr, PORT)
        self._interval = 1 / pps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            source, sock = self._socks[n % len(self._socks)]
            sock.sendto(b"x" * 32, self._target)
            self.sent[source] += 1
            n += 1
            ahead = start + n * self._interval - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        for _, sock in self._socks:
            sock.close()
        return self.sent


def test_restarts_keep_filtering_without_a_gap(
    lab: VethLab, pins: Path, receiver: socket.socket
) -> None:
    """Traffic at a steady rate across two restarts (SIGTERM, then a new agent): the first with
    the same program (kept attached as it is), the second with another (FASTPATH_DROP_MALFORMED
    changes its code: replaced in one netlink call). Not one drop-rule packet is delivered, and
    every delivered packet was counted by a program (the pass rule's hits, kept in the pinned
    maps across the restarts, equal what the receiver got)."""
    blocked, allowed = lab.tx_addrs[0], lab.tx_addrs[1]
    ifindex = lab.ifindex("rx")
    agent = start(lab, pins)
    assert agent.channel is not None
    stub = pb_grpc.FastPathControlStub(agent.channel)
    enabled: dict[str, Any] = {"revision": 1, "enabled": True}
    stub.ApplyRules(
        pb.ApplyRulesRequest(
            rules=[
                pb.Rule(id=1, source_cidr=f"{blocked}/32", action=pb.ACTION_DROP, **enabled),
                pb.Rule(id=2, source_cidr=f"{allowed}/32", action=pb.ACTION_PASS, **enabled),
            ]
        ),
        timeout=10,
    )
    programs = [libbpf.xdp_query_id(ifindex)]
    # Received while sent: the socket buffer would not hold them all.
    receiving = threading.Event()
    receiving.set()
    got: dict[str, int] = {}
    collector = threading.Thread(target=lambda: got.update(drain(receiver, receiving)))
    collector.start()
    sender = SteadySender(lab, [blocked, allowed], pps=2000)
    try:
        time.sleep(0.3)
        for env in ({}, {"FASTPATH_DROP_MALFORMED": "true"}):
            code, log = agent.terminate()
            assert code == 0, log
            assert libbpf.xdp_query_id(ifindex) == programs[-1], "SIGTERM must leave it attached"
            agent = start(lab, pins, **env)
            programs.append(libbpf.xdp_query_id(ifindex))
            time.sleep(0.3)
    finally:
        sent = sender.stop()
        receiving.clear()
        collector.join()
        assert agent.channel is not None
        stats = pb_grpc.FastPathControlStub(agent.channel).GetStats(
            pb.GetStatsRequest(), timeout=10
        )
        agent.terminate()
    hits = {r.rule_id: r.matched.packets for r in stats.rules}
    assert sent[blocked] > 1000 and sent[allowed] > 1000, sent
    assert got.get(blocked, 0) == 0, f"{got.get(blocked)} drop-rule packets got through"
    assert hits == {1: sent[blocked], 2: sent[allowed]}, (hits, sent)
    assert got == {allowed: sent[allowed]}, (got, sent)
    assert programs[1] == programs[0], "the same program must be kept, not replaced"
    assert programs[2] not in (0, programs[0]), "a changed program must replace the old one"
