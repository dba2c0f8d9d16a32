"""The agent as a process on a real veth pair: its receiving end in this netns (where the agent
and its gRPC port live), the sending end in a netns of its own. Traffic from Python sockets."""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from fastpath.v1 import fastpath_pb2 as pb
from fastpath.v1 import fastpath_pb2_grpc as pb_grpc
from fastpath_netns.agentproc import AgentProcess
from myapp.fastpath.loader import libbpf
from myapp.fastpath.loader.datapath import Datapath
from myapp.fastpath.netlab import VethLab, socket_in, wait_for

PORT = 9  # the receivers' port (conftest)


def start_agent(
    lab: VethLab, pins: Path, **env: str
) -> tuple[AgentProcess, pb_grpc.FastPathControlStub]:
    agent = AgentProcess({"FASTPATH_INTERFACES": lab.rx_if, "FASTPATH_BPFFS": str(pins), **env})
    try:
        return agent, agent.wait_started()
    except BaseException:
        agent.kill()
        raise


def send(lab: VethLab, source: str, count: int, pace_pps: int = 0) -> float:
    """Send `count` UDP datagrams from `source`; returns the seconds it took."""
    family = socket.AF_INET6 if ":" in source else socket.AF_INET
    target = lab.rx_addr6 if family == socket.AF_INET6 else lab.rx_addr
    sock = socket_in(lab.tx_ns, family, socket.SOCK_DGRAM)
    affinity = os.sched_getaffinity(0)
    # One CPU: generic XDP runs on the sending CPU, and 1-in-N sampling counts per CPU.
    os.sched_setaffinity(0, {min(affinity)})
    try:
        sock.bind((source, 0))
        start = time.monotonic()
        for i in range(count):
            sock.sendto(b"x" * 32, (target, PORT))
            if pace_pps and i % 16 == 15:
                ahead = start + (i + 1) / pace_pps - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        return time.monotonic() - start
    finally:
        os.sched_setaffinity(0, affinity)
        sock.close()


def drain(sock: socket.socket) -> dict[str, int]:
    """Datagrams received per source until the socket stays quiet for its timeout."""
    got: dict[str, int] = {}
    while True:
        try:
            _, peer = sock.recvfrom(2048)
        except TimeoutError:
            return got
        addr = peer[0]
        got[addr] = got.get(addr, 0) + 1


def rule(rule_id: int, cidr: str, action: int, **kw: object) -> pb.Rule:
    fields: dict[str, object] = {"revision": 1, "enabled": True, **kw}
    return pb.Rule(id=rule_id, source_cidr=cidr, action=action, **fields)  # type: ignore[arg-type]


def stats(stub: pb_grpc.FastPathControlStub) -> pb.Stats:
    return stub.GetStats(pb.GetStatsRequest(), timeout=10)


@pytest.mark.parametrize("mode", ["generic", "native"])
def test_blocked_dropped_others_delivered(
    lab: VethLab, pins: Path, receiver: socket.socket, receiver6: socket.socket, mode: str
) -> None:
    agent, stub = start_agent(lab, pins, FASTPATH_MODE=mode, FASTPATH_DETACH_ON_EXIT="true")
    try:
        status = stub.GetStatus(pb.GetStatusRequest(), timeout=10)
        assert [(i.name, i.mode, i.attached) for i in status.interfaces] == [
            (lab.rx_if, mode, True)
        ]
        assert requests.get(f"http://127.0.0.1:{agent.http_port}/readyz", timeout=10).ok
        blocked, allowed = lab.tx_addrs[0], lab.tx_addrs[1]
        blocked6, allowed6 = lab.tx_addrs6
        stub.ApplyRules(
            pb.ApplyRulesRequest(
                rules=[
                    rule(1, f"{blocked}/32", pb.ACTION_DROP),
                    rule(2, f"{blocked6}/128", pb.ACTION_DROP),
                ]
            )
        )
        send(lab, blocked, 200)
        send(lab, allowed, 200)
        # Allowed first: neighbour discovery for the receiver is shared by both sources, and the
        # blocked source's own solicitations are dropped like the rest of its packets.
        send(lab, allowed6, 100)
        send(lab, blocked6, 100)
        assert drain(receiver) == {allowed: 200}
        assert drain(receiver6) == {allowed6: 100}
        s = stats(stub)
        assert {r.rule_id: r.matched.packets for r in s.rules} == {1: 200, 2: 100}
        assert s.actions["drop"].packets == 300
        assert s.actions["default_pass"].packets >= 200  # plus ARP-less IPv6 chatter, if any
    finally:
        code, out = agent.terminate()
    assert code == 0, out
    assert libbpf.xdp_query_id(lab.ifindex("rx")) == 0, "SIGTERM must detach the program when asked"


def test_rate_limit_holds_within_ten_percent(
    lab: VethLab, pins: Path, receiver: socket.socket
) -> None:
    agent, stub = start_agent(lab, pins, FASTPATH_MODE="generic")
    try:
        rate = 2000
        src = lab.tx_addrs[0]
        stub.ApplyRules(
            pb.ApplyRulesRequest(
                rules=[rule(1, f"{src}/32", pb.ACTION_RATE_LIMIT, rate_limit_pps=rate)]
            )
        )
        # Offer twice the rate: 0.5 s empties the bucket's burst, then 1.5 s measured.
        send(lab, src, rate, pace_pps=rate * 2)
        before = stats(stub).actions["rate_pass"].packets
        offered = rate * 3
        elapsed = send(lab, src, offered, pace_pps=rate * 2)
        s = stats(stub)
        passed = s.actions["rate_pass"].packets - before
        assert s.actions["rate_pass"].packets + s.actions["rate_drop"].packets == rate + offered
        achieved = passed / elapsed
        assert abs(achieved - rate) <= 0.1 * rate, (passed, elapsed)
        assert sum(drain(receiver).values()) == s.actions["rate_pass"].packets
    finally:
        agent.terminate()


def test_af_xdp_consumer_gets_exactly_the_redirected_share(
    lab: VethLab, pins: Path, receiver: socket.socket
) -> None:
    agent, stub = start_agent(lab, pins, FASTPATH_MODE="generic", FASTPATH_XSK_QUEUES="0")
    try:
        src = lab.tx_addrs[2]
        stub.ApplyRules(
            pb.ApplyRulesRequest(rules=[rule(1, f"{src}/32", pb.ACTION_REDIRECT, sample_rate=4)])
        )
        send(lab, src, 400)

        def consumed() -> int:
            xsk = stats(stub).xsk
            return xsk[0].rx_packets if xsk else -1

        wait_for(lambda: consumed() == 100, 10, "the AF_XDP consumer to drain 100 packets")
        s = stats(stub)
        assert s.actions["redirect"].packets == 100
        assert s.actions["redirect_skip"].packets == 300
        assert (s.xsk[0].slots_total, s.xsk[0].slot_exhausted) == (4096, 0)
        assert drain(receiver) == {src: 300}

        # Summaries reach StreamSamples: keep redirecting until the subscribed stream sees one.
        samples = stub.StreamSamples(pb.StreamSamplesRequest(max_samples=1), timeout=30)
        stop = threading.Event()

        def feed() -> None:
            while not stop.wait(0.2):
                send(lab, src, 4)

        feeder = threading.Thread(target=feed)
        feeder.start()
        try:
            sample = next(iter(samples))
        finally:
            stop.set()
            feeder.join()
        assert (sample.source, sample.destination, sample.destination_port) == (
            src,
            lab.rx_addr,
            PORT,
        )
        wait_for(
            lambda: consumed() == stats(stub).actions["redirect"].packets,
            10,
            "the consumer to drain exactly the redirected packets",
        )
        metrics = requests.get(f"http://127.0.0.1:{agent.http_port}/metrics", timeout=10).text
        assert "fastpath_xsk_rx_packets_total" in metrics and "fastpath_xsk_numa_node" in metrics
        assert f'fastpath_xsk_top_talker_packets{{source="{src}"}}' in metrics
    finally:
        code, out = agent.terminate()
    assert code == 0, out


def test_restart_and_crash_keep_rules_and_counters_second_agent_refused(
    lab: VethLab, pins: Path, receiver: socket.socket
) -> None:
    blocked = lab.tx_addrs[0]
    agent, stub = start_agent(lab, pins, FASTPATH_MODE="generic")
    try:
        stub.ApplyRules(pb.ApplyRulesRequest(rules=[rule(5, f"{blocked}/32", pb.ACTION_DROP)]))
        send(lab, blocked, 50)
        second = AgentProcess({"FASTPATH_INTERFACES": lab.rx_if, "FASTPATH_BPFFS": str(pins)})
        code, out = second.wait_exit()
        assert code == 2 and "another fastpath agent is already attached" in out
    finally:
        code, out = agent.terminate()
    assert code == 0, out
    agent, stub = start_agent(lab, pins, FASTPATH_MODE="generic")
    try:
        listed = stub.ListRules(pb.ListRulesRequest(), timeout=10)
        assert [(r.id, r.source_cidr) for r in listed.rules] == [(5, f"{blocked}/32")]
        assert {r.rule_id: r.matched.packets for r in stats(stub).rules} == {5: 50}
        send(lab, blocked, 50)
        assert {r.rule_id: r.matched.packets for r in stats(stub).rules} == {5: 100}
        assert stats(stub).actions["drop"].packets == 100
        assert drain(receiver) == {}
    finally:
        agent.kill()  # a crash: the program stays attached, the interface lock goes
    assert libbpf.xdp_query_id(lab.ifindex("rx")) != 0
    agent, stub = start_agent(lab, pins, FASTPATH_MODE="native")
    try:
        # The leftover generic program is replaced; rules and counters carry on.
        assert [i.mode for i in stub.GetStatus(pb.GetStatusRequest()).interfaces] == ["native"]
        send(lab, blocked, 10)
        assert {r.rule_id: r.matched.packets for r in stats(stub).rules} == {5: 110}
    finally:
        agent.terminate()


def test_refusals_are_clear(lab: VethLab, pins: Path, tmp_path: Path) -> None:
    missing = AgentProcess({"FASTPATH_INTERFACES": "nosuchif0", "FASTPATH_BPFFS": str(pins)})
    code, out = missing.wait_exit()
    assert code == 2 and "interface 'nosuchif0' does not exist" in out

    def drop_privileges() -> None:
        # Still uid 0, but without CAP_NET_ADMIN/CAP_SYS_ADMIN/CAP_BPF in the bounding set the
        # exec'd agent cannot get them back.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        for cap in (12, 21, 39):
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")

    unprivileged = AgentProcess(
        {"FASTPATH_INTERFACES": lab.rx_if, "FASTPATH_BPFFS": str(pins)}, preexec=drop_privileges
    )
    code, out = unprivileged.wait_exit()
    assert code == 2 and "needs CAP_NET_ADMIN" in out

    # Maps pinned by a build with another capacity are refused, not misread.
    small = tmp_path / "small.bpf.o"
    subprocess.run(
        [
            shutil.which("clang") or "/usr/bin/clang",
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-DFP_MAX_RULES=1024",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
            "src/bpf/fastpath.bpf.c",
            "-o",
            str(small),
        ],
        check=True,
    )
    Datapath(pins, bpf_object=small).close()
    mismatched = AgentProcess({"FASTPATH_INTERFACES": lab.rx_if, "FASTPATH_BPFFS": str(pins)})
    code, out = mismatched.wait_exit()
    assert code == 2 and "does not match this program: max_entries 1024" in out
    assert libbpf.xdp_query_id(lab.ifindex("rx")) == 0
