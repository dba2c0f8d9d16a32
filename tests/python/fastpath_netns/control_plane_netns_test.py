"""The control plane on a real veth: the agent's gRPC port reached across the veth stays
reachable whatever the rules say (protected prefixes), and an agent restart leaves no moment
without a filter (the program is taken over, not detached and attached again)."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fastpath.v1 import fastpath_pb2 as pb
from fastpath.v1 import fastpath_pb2_grpc as pb_grpc
from fastpath_netns.agentproc import LEAST_PRIVILEGE, AgentProcess
from fastpath_netns.netns_client import run_client
from myapp.common import pki
from myapp.fastpath.loader import libbpf
from myapp.fastpath.loader.attach import pin_path
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


def start(lab: VethLab, pins: Path, wrapper: tuple[str, ...] = (), **env: str) -> AgentProcess:
    agent = AgentProcess(
        {"FASTPATH_INTERFACES": lab.rx_if, "FASTPATH_BPFFS": str(pins), "FASTPATH_MODE": "generic"}
        | env,
        wrapper=wrapper,
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


def pinned_program(pins: Path, ifname: str) -> int:
    """Id of the program pinned for the next agent (0 when there is no pin)."""
    pin = pin_path(pins, ifname) / "prog"
    if not pin.exists():
        return 0
    fd = libbpf.obj_get(pin)
    try:
        return libbpf.prog_id(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize("wrapper", [(), LEAST_PRIVILEGE], ids=["root", "deployed-capabilities"])
def test_restarts_keep_filtering_without_a_gap(
    lab: VethLab, pins: Path, receiver: socket.socket, wrapper: tuple[str, ...]
) -> None:
    """Traffic at a steady rate across three restarts (SIGTERM, then a new agent): the first with
    the same program (kept attached as it is), the second with another (FASTPATH_DROP_MALFORMED
    changes its code: replaced in one netlink call), the third after the pin of the attached
    program was removed (replaced without knowing it). Not one drop-rule packet is delivered, and
    every delivered packet was counted by a program (the pass rule's hits, kept in the pinned
    maps across the restarts, equal what the receiver got).

    "deployed-capabilities" runs each agent with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN only, as
    the DaemonSet does: no CAP_SYS_ADMIN, so the old program is found through its pin, never by
    id, and the unpinned case says loudly that it could not check it."""
    blocked, allowed = lab.tx_addrs[0], lab.tx_addrs[1]
    ifindex = lab.ifindex("rx")
    agent = start(lab, pins, wrapper)
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
    assert pinned_program(pins, lab.rx_if) == programs[0]
    logs: list[str] = []
    # Received while sent: the socket buffer would not hold them all.
    receiving = threading.Event()
    receiving.set()
    got: dict[str, int] = {}
    collector = threading.Thread(target=lambda: got.update(drain(receiver, receiving)))
    collector.start()
    sender = SteadySender(lab, [blocked, allowed], pps=2000)
    try:
        time.sleep(0.3)
        for env in ({}, {"FASTPATH_DROP_MALFORMED": "true"}, {"unpin": ""}):
            code, log = agent.terminate()
            logs.append(log)
            assert code == 0, log
            assert libbpf.xdp_query_id(ifindex) == programs[-1], "SIGTERM must leave it attached"
            if env.pop("unpin", None) is not None:
                shutil.rmtree(pin_path(pins, lab.rx_if))
            agent = start(lab, pins, wrapper, **env)
            programs.append(libbpf.xdp_query_id(ifindex))
            assert pinned_program(pins, lab.rx_if) == programs[-1]
            time.sleep(0.3)
    finally:
        sent = sender.stop()
        receiving.clear()
        collector.join()
        assert agent.channel is not None
        stats = pb_grpc.FastPathControlStub(agent.channel).GetStats(
            pb.GetStatsRequest(), timeout=10
        )
        code, log = agent.terminate()
        logs.append(log)
    hits = {r.rule_id: r.matched.packets for r in stats.rules}
    assert sent[blocked] > 1000 and sent[allowed] > 1000, sent
    assert got.get(blocked, 0) == 0, f"{got.get(blocked)} drop-rule packets got through"
    assert hits == {1: sent[blocked], 2: sent[allowed]}, (hits, sent)
    assert got == {allowed: sent[allowed]}, (got, sent)
    assert programs[1] == programs[0], "the same program must be kept, not replaced"
    assert programs[2] not in (0, programs[0]), "a changed program must replace the old one"
    assert programs[3] not in (0, programs[2]), "an unpinned program is replaced"
    assert "kept as attached" in logs[1], logs[1]
    assert "detaching it first" not in "".join(logs)
    unchecked = "cannot open the attached program"
    assert (unchecked in logs[3]) == bool(wrapper), logs[3]
    assert unchecked not in "".join(logs[:3])


def test_detach_on_exit_removes_the_program_and_its_pin(lab: VethLab, pins: Path) -> None:
    """FASTPATH_DETACH_ON_EXIT=true: the program is detached and its pin removed (a pin left
    behind would keep the detached program loaded)."""
    agent = start(lab, pins, LEAST_PRIVILEGE, FASTPATH_DETACH_ON_EXIT="true")
    attached = libbpf.xdp_query_id(lab.ifindex("rx"))
    assert attached and pinned_program(pins, lab.rx_if) == attached, "".join(agent.lines)
    code, log = agent.terminate()
    assert code == 0, log
    assert libbpf.xdp_query_id(lab.ifindex("rx")) == 0
    assert not pin_path(pins, lab.rx_if).exists()


# -- the deployed shape ---------------------------------------------------------------------------


def test_deployed_shape_tls_only_health_open_reflection_off(
    lab: VethLab, pins: Path, tmp_path: Path
) -> None:
    """As in the DaemonSet: APP_ENV=production, a node address, the three capabilities only.
    Without TLS files it refuses to start naming them; with them the gRPC port takes mutual TLS
    only (a plaintext client changes nothing), reflection is off, and the kubelet's HTTP probes
    answer without a client certificate."""
    env = {"APP_ENV": "production", "FASTPATH_BIND": lab.rx_addr}
    bare = AgentProcess(
        {"FASTPATH_INTERFACES": lab.rx_if, "FASTPATH_BPFFS": str(pins)} | env,
        plaintext=True,
        wrapper=LEAST_PRIVILEGE,
    )
    code, out = bare.wait_exit()
    assert code == 2, out
    for name in ("FASTPATH_TLS_CERT", "FASTPATH_TLS_KEY", "FASTPATH_TLS_CLIENT_CA"):
        assert name in out, out
    assert libbpf.xdp_query_id(lab.ifindex("rx")) == 0, "nothing may be attached"

    certs = pki.write_dev_certs(tmp_path / "tls")
    agent_tls = certs["fastpath"]
    agent = start(
        lab,
        pins,
        LEAST_PRIVILEGE,
        FASTPATH_TLS_CERT=str(agent_tls / "tls.crt"),
        FASTPATH_TLS_KEY=str(agent_tls / "tls.key"),
        FASTPATH_TLS_CLIENT_CA=str(agent_tls / "ca.crt"),
        **env,
    )
    try:
        base = f"http://{lab.rx_addr}:{agent.http_port}"
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
        with grpc.insecure_channel(f"{lab.rx_addr}:{agent.grpc_port}") as plain:
            with pytest.raises(grpc.RpcError) as refused:
                pb_grpc.FastPathControlStub(plain).SetDefaultPolicy(
                    pb.SetDefaultPolicyRequest(policy=pb.POLICY_DENY), timeout=10
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert agent.channel is not None
        writer = pb_grpc.FastPathControlStub(agent.channel)
        status = writer.GetStatus(pb.GetStatusRequest(), timeout=10)
        assert status.default_policy == pb.POLICY_ALLOW
        reflection = reflection_pb2_grpc.ServerReflectionStub(agent.channel)
        with pytest.raises(grpc.RpcError) as off:
            list(
                reflection.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
                )
            )
        assert off.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        code, out = agent.terminate()
    assert code == 0, out
