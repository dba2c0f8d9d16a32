"""Every RPC over a real loopback gRPC server backed by the real BPF object (not attached:
packets go through BPF_PROG_TEST_RUN), plus the HTTP endpoints."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import requests
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fastpath.v1 import fastpath_pb2 as pb
from fastpath.v1 import fastpath_pb2_grpc as pb_grpc
from myapp.fastpath import packets as P
from myapp.fastpath.agent import Agent
from myapp.fastpath.config import Config
from myapp.fastpath.control.server import SERVICE_NAME, ControlServer, build_server
from myapp.fastpath.control.service import FastPathService
from myapp.fastpath.loader import libbpf
from myapp.fastpath.loader.datapath import Datapath
from myapp.fastpath.metrics import build_http_server
from myapp.fastpath.shared import MAP_LPM_V4, MAP_RULE_META
from myapp.fastpath.testsupport import require_root
from myapp.fastpath.xsk.consumer import Sample

CONFIG = Config(interfaces=(), grpc_port=0, http_port=0, bind="127.0.0.1", grpc_reflection=True)


@dataclass
class Harness:
    agent: Agent
    stub: pb_grpc.FastPathControlStub
    channel: grpc.Channel
    control: ControlServer


@contextlib.contextmanager
def _serve(datapath: Datapath) -> Iterator[Harness]:
    agent = Agent(CONFIG, datapath)
    stopping = threading.Event()
    control = build_server(CONFIG, [FastPathService(agent, stopping)])
    try:
        with grpc.insecure_channel(f"127.0.0.1:{control.port}") as channel:
            yield Harness(agent, pb_grpc.FastPathControlStub(channel), channel, control)
    finally:
        stopping.set()
        control.stop(grace=1)
        agent.close()


@pytest.fixture
def h() -> Iterator[Harness]:
    require_root()
    with _serve(Datapath()) as harness:
        yield harness


def r(rule_id: int, cidr: str, action: int = pb.ACTION_DROP, **kw: object) -> pb.Rule:
    fields: dict[str, object] = {"revision": 1, "enabled": True, **kw}
    return pb.Rule(id=rule_id, source_cidr=cidr, action=action, **fields)  # type: ignore[arg-type]


def code_of(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()  # type: ignore[operator]
    return err.value.code(), err.value.details()


def test_apply_list_and_traffic(h: Harness) -> None:
    resp = h.stub.ApplyRules(
        pb.ApplyRulesRequest(rules=[r(1, "203.0.113.0/24"), r(2, "2001:db8:bad::/48", name="v6")]),
        timeout=10,
    )
    assert resp.applied == 2 and resp.generation == 1
    listed = h.stub.ListRules(pb.ListRulesRequest(), timeout=10)
    assert [(x.id, x.source_cidr, x.name) for x in listed.rules] == [
        (1, "203.0.113.0/24", ""),
        (2, "2001:db8:bad::/48", "v6"),
    ]
    assert h.agent.datapath.test_run(P.packet("203.0.113.5")) == libbpf.XDP_DROP
    stats = h.stub.GetStats(pb.GetStatsRequest(), timeout=10)
    assert {s.rule_id: s.matched.packets for s in stats.rules} == {1: 1, 2: 0}
    assert stats.actions["drop"].packets == 1
    assert "l4_truncated" in stats.parse_errors
    # Same revision again: nothing to write.
    assert h.stub.ApplyRules(pb.ApplyRulesRequest(rules=[r(1, "203.0.113.0/24")])).applied == 0


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (r(2, "203.0.113.0/33"), "rules[1].source_cidr"),
        (r(2, "10.0.0.1/8"), "rules[1].source_cidr"),
        (r(2, "10.0.0.0/8", action=pb.ACTION_UNSPECIFIED), "rules[1].action"),
        (r(2, "10.0.0.0/8", protocol=1, dst_port_min=1, dst_port_max=2), "rules[1].dst_port_min"),
        (r(2, "10.0.0.0/8", dst_port_min=9, dst_port_max=2), "rules[1].dst_port_max"),
        (r(2, "10.0.0.0/8", action=pb.ACTION_RATE_LIMIT), "rules[1].rate_limit_pps"),
        (r(0, "10.0.0.0/8"), "rules[1].id"),
        (r(1, "10.0.0.0/8"), "rules[1].id"),
        (r(2, "10.0.0.0/8", name="x" * 64), "rules[1].name"),
    ],
)
def test_bad_rules_are_refused_naming_the_field_and_nothing_lands(
    h: Harness, bad: pb.Rule, field: str
) -> None:
    code, details = code_of(
        lambda: h.stub.ApplyRules(pb.ApplyRulesRequest(rules=[r(1, "198.51.100.0/24"), bad]))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(field + ":")
    assert h.stub.ListRules(pb.ListRulesRequest()).rules == []


def _request_with(method: str, field_path: list[str], value: str) -> Message:
    """A request of `method` whose string field at `field_path` (through singular messages or
    the first element of repeated ones) is `value`; any rule on the way is otherwise valid."""
    request = getattr(pb, f"{method}Request")()
    target = request
    for name in field_path[:-1]:
        child = getattr(target, name)
        target = child.add() if hasattr(child, "add") else child
        if isinstance(target, pb.Rule):
            target.CopyFrom(r(1, "198.51.100.0/24"))
    setattr(target, field_path[-1], value)
    return request


def _string_fields(descriptor: Descriptor, prefix: list[str]) -> Iterator[list[str]]:
    for f in descriptor.fields:
        if f.type == FieldDescriptor.TYPE_STRING:
            yield [*prefix, f.name]
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            message = f.message_type
            # A message field always has its type; the stubs type it Optional.
            if message is not None and not message.GetOptions().map_entry:
                yield from _string_fields(message, [*prefix, f.name])


HUGE_CASES = [
    (method.name, path)
    for method in pb.DESCRIPTOR.services_by_name["FastPathControl"].methods
    for path in _string_fields(method.input_type, [])
]


def test_every_string_field_of_every_request_is_covered() -> None:
    assert sorted(HUGE_CASES) == [
        ("ApplyRules", ["rules", "name"]),
        ("ApplyRules", ["rules", "source_cidr"]),
        ("SyncRules", ["rules", "name"]),
        ("SyncRules", ["rules", "source_cidr"]),
    ]


@pytest.mark.parametrize(("method", "path"), HUGE_CASES, ids=lambda c: str(c))
def test_one_mib_values_get_a_short_invalid_argument(
    h: Harness, method: str, path: list[str]
) -> None:
    """A default client (4 MiB messages, 8 KiB of metadata) sees INVALID_ARGUMENT, not a
    RESOURCE_EXHAUSTED about metadata size, for a 1 MiB value in any string field."""
    request = _request_with(method, path, "9" * (1 << 20))
    code, details = code_of(lambda: getattr(h.stub, method)(request, timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details[:200]
    assert f".{path[-1]}:" in details and len(details) < 200, details
    assert h.stub.ListRules(pb.ListRulesRequest()).rules == []


def test_revisions_refuse_stale_writes_and_deletes(h: Harness) -> None:
    h.stub.ApplyRules(pb.ApplyRulesRequest(rules=[r(1, "198.51.100.0/24")]))
    newer = r(1, "198.51.100.0/25")
    newer.revision = 3
    assert h.stub.ApplyRules(pb.ApplyRulesRequest(rules=[newer])).applied == 1
    code, details = code_of(
        lambda: h.stub.ApplyRules(pb.ApplyRulesRequest(rules=[r(1, "10.0.0.0/8")]))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "revision 1" in details
    code, _ = code_of(
        lambda: h.stub.DeleteRules(pb.DeleteRulesRequest(rules=[pb.RuleRef(id=1, revision=2)]))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    code, details = code_of(
        lambda: h.stub.DeleteRules(pb.DeleteRulesRequest(rules=[pb.RuleRef(id=0)]))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("rules[0].id")
    resp = h.stub.DeleteRules(pb.DeleteRulesRequest(rules=[pb.RuleRef(id=1, revision=3)]))
    assert resp.deleted == 1
    assert h.agent.datapath.test_run(P.packet("198.51.100.1")) == libbpf.XDP_PASS


def test_sync_adds_updates_and_removes(h: Harness) -> None:
    h.stub.ApplyRules(pb.ApplyRulesRequest(rules=[r(1, "10.0.0.0/8"), r(2, "10.1.0.0/16")]))
    updated = r(2, "10.2.0.0/16")
    updated.revision = 2
    resp = h.stub.SyncRules(pb.SyncRulesRequest(rules=[updated, r(3, "10.3.0.0/16")]))
    assert (resp.added, resp.updated, resp.removed) == (1, 1, 1)
    assert [x.id for x in h.stub.ListRules(pb.ListRulesRequest()).rules] == [2, 3]
    assert h.agent.datapath.test_run(P.packet("10.2.0.1")) == libbpf.XDP_DROP
    assert h.agent.datapath.test_run(P.packet("10.1.0.1")) == libbpf.XDP_PASS


def test_too_many_rules_on_one_prefix_is_resource_exhausted(h: Harness) -> None:
    rules = [r(i, "10.0.0.0/8", priority=i) for i in range(1, 10)]
    code, details = code_of(lambda: h.stub.ApplyRules(pb.ApplyRulesRequest(rules=rules)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "10.0.0.0/8" in details
    assert h.stub.ListRules(pb.ListRulesRequest()).rules == []


def test_a_full_map_rolls_the_whole_batch_back(tmp_path: Path) -> None:
    """An object built with a 4-entry IPv4 trie: the 5th prefix fails after 4 were written."""
    require_root()
    clang = shutil.which("clang") or "/usr/bin/clang"
    obj = tmp_path / "small.bpf.o"
    subprocess.run(
        [
            clang,
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-DFP_LPM_V4_ENTRIES=4",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
            "src/bpf/fastpath.bpf.c",
            "-o",
            str(obj),
        ],
        check=True,
    )
    with _serve(Datapath(bpf_object=obj)) as harness:
        harness.stub.ApplyRules(pb.ApplyRulesRequest(rules=[r(1, "10.0.0.0/8")]))
        batch = [r(i, f"10.{i}.0.0/16") for i in range(2, 7)]
        code, details = code_of(lambda: harness.stub.ApplyRules(pb.ApplyRulesRequest(rules=batch)))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
        assert [x.id for x in harness.stub.ListRules(pb.ListRulesRequest()).rules] == [1]
        fds = harness.agent.datapath.map_fds
        assert len(list(libbpf.map_keys(fds[MAP_LPM_V4], 8))) == 1
        assert len(list(libbpf.map_keys(fds[MAP_RULE_META], 4))) == 1
        assert harness.agent.datapath.test_run(P.packet("10.3.0.1")) == libbpf.XDP_DROP
        assert harness.agent.datapath.test_run(P.packet("11.3.0.1")) == libbpf.XDP_PASS


def test_default_policy_status_and_streams(h: Harness) -> None:
    code, details = code_of(lambda: h.stub.SetDefaultPolicy(pb.SetDefaultPolicyRequest()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("policy")
    h.stub.SetDefaultPolicy(pb.SetDefaultPolicyRequest(policy=pb.POLICY_DENY))
    assert h.agent.datapath.test_run(P.packet("192.0.2.9")) == libbpf.XDP_DROP
    status = h.stub.GetStatus(pb.GetStatusRequest(), timeout=10)
    assert status.default_policy == pb.POLICY_DENY and status.version
    stream = h.stub.StreamStats(pb.StreamStatsRequest(interval_ms=100), timeout=10)
    first, second = next(stream), next(stream)
    assert second.timestamp_ns > first.timestamp_ns
    assert first.actions["default_drop"].packets == 1
    stream.cancel()

    samples = h.stub.StreamSamples(pb.StreamSamplesRequest(max_samples=2), timeout=10)
    sample = Sample(1, 0, "198.51.100.1", "192.0.2.1", 17, 1000, 53, 60)

    def feed() -> None:
        # Until the stream has subscribed, appended samples would be before its position.
        for _ in range(50):
            h.agent.samples.append([sample])
            threading.Event().wait(0.05)

    feeder = threading.Thread(target=feed)
    feeder.start()
    got = list(samples)
    feeder.join()
    assert [(s.source, s.destination_port) for s in got] == [("198.51.100.1", 53)] * 2


def test_health_and_reflection(h: Harness) -> None:
    health = health_pb2_grpc.HealthStub(h.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(h.channel)
    answers = refl.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


def test_http_endpoints(h: Harness) -> None:
    h.stub.ApplyRules(pb.ApplyRulesRequest(rules=[r(7, "203.0.113.0/24")]))
    h.agent.datapath.test_run(P.packet("203.0.113.1"))
    http = build_http_server(CONFIG, h.agent)
    base = f"http://127.0.0.1:{http.server_address[1]}"
    try:
        assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
        # Nothing is attached in this test.
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 503
        body = requests.get(f"{base}/metrics", timeout=10).text
        assert 'fastpath_rule_packets_total{rule_id="7"} 1.0' in body
        assert 'fastpath_action_packets_total{action="drop"} 1.0' in body
        assert 'fastpath_parse_errors_total{kind="vlan_too_deep"} 0.0' in body
    finally:
        http.shutdown()
        http.server_close()
