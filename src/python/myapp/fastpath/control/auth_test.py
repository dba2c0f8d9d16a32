"""Mutual TLS and per-method authorization on a real server (real BPF object, loopback port,
certificates from myapp.common.pki): who gets in, what each identity may call, and that a refused
call changes nothing in the maps."""

from __future__ import annotations

import contextlib
import datetime
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fastpath.v1 import fastpath_pb2 as pb
from fastpath.v1 import fastpath_pb2_grpc as pb_grpc
from myapp.common import pki
from myapp.fastpath import packets as P
from myapp.fastpath.agent import Agent
from myapp.fastpath.config import Config, ConfigError
from myapp.fastpath.control.auth import READER_METHODS, server_credentials
from myapp.fastpath.control.server import build_server
from myapp.fastpath.control.service import FastPathService
from myapp.fastpath.loader import libbpf
from myapp.fastpath.loader.datapath import Datapath
from myapp.fastpath.testsupport import require_root
from myapp.fastpath.xsk.consumer import Sample

SERVER_NAME = "fastpath.myapp-fastpath.svc"
STRANGER = "spiffe://myapp/stranger"


@dataclass
class Pki:
    ca: pki.Issued
    directory: Path

    def client(self, identity: str, ca: pki.Issued | None = None, **validity: Any) -> pki.Issued:
        return pki.client_certificate(ca or self.ca, identity, **validity)


@dataclass
class Served:
    agent: Agent
    port: int
    certs: Pki

    def channel(self, client: pki.Issued | None, trusted: bytes | None = None) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=trusted or self.certs.ca.cert_pem(),
            private_key=client.key_pem() if client else None,
            certificate_chain=client.cert_pem() if client else None,
        )
        return grpc.secure_channel(
            f"127.0.0.1:{self.port}",
            credentials,
            # A channel of its own: no connection shared with an earlier channel of the test.
            options=[
                ("grpc.ssl_target_name_override", SERVER_NAME),
                ("grpc.use_local_subchannel_pool", 1),
            ],
        )

    def stub(self, client: pki.Issued) -> pb_grpc.FastPathControlStub:
        return pb_grpc.FastPathControlStub(self.channel(client))


@pytest.fixture
def certs(tmp_path: Path) -> Pki:
    ca = pki.make_ca()
    pki.write_tls_dir(tmp_path / "fastpath", [ca.cert], pki.agent_certificate(ca))
    return Pki(ca, tmp_path / "fastpath")


def _tls_config(certs: Pki, **overrides: Any) -> Config:
    config = Config(
        interfaces=(),
        grpc_port=0,
        http_port=0,
        bind="127.0.0.1",
        tls_cert=certs.directory / "tls.crt",
        tls_key=certs.directory / "tls.key",
        tls_client_ca=certs.directory / "ca.crt",
    )
    return replace(config, **overrides)


@contextlib.contextmanager
def serving(config: Config, certs: Pki) -> Iterator[Served]:
    require_root()
    agent = Agent(config, Datapath())
    stopping = threading.Event()
    control = build_server(config, [FastPathService(agent, stopping)])
    try:
        yield Served(agent, control.port, certs)
    finally:
        stopping.set()
        control.stop(grace=1)
        agent.close()


@pytest.fixture
def served(certs: Pki) -> Iterator[Served]:
    with serving(_tls_config(certs), certs) as s:
        yield s


def code_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details() or ""


def rule(rule_id: int, cidr: str) -> pb.Rule:
    return pb.Rule(id=rule_id, revision=1, source_cidr=cidr, action=pb.ACTION_DROP, enabled=True)


WRITES: dict[str, Callable[[pb_grpc.FastPathControlStub], Any]] = {
    "ApplyRules": lambda s: s.ApplyRules(
        pb.ApplyRulesRequest(rules=[rule(9, "0.0.0.0/0")]), timeout=10
    ),
    "SyncRules": lambda s: s.SyncRules(pb.SyncRulesRequest(rules=[]), timeout=10),
    "SetDefaultPolicy": lambda s: s.SetDefaultPolicy(
        pb.SetDefaultPolicyRequest(policy=pb.POLICY_DENY), timeout=10
    ),
    "DeleteRules": lambda s: s.DeleteRules(
        pb.DeleteRulesRequest(rules=[pb.RuleRef(id=1)]), timeout=10
    ),
}


def _read_all(served: Served, stub: pb_grpc.FastPathControlStub) -> set[str]:
    """Calls the five read methods through `stub`; the names of those that answered."""
    answered = set()
    assert stub.GetStatus(pb.GetStatusRequest(), timeout=10).version
    answered.add("GetStatus")
    stub.GetStats(pb.GetStatsRequest(), timeout=10)
    answered.add("GetStats")
    stub.ListRules(pb.ListRulesRequest(), timeout=10)
    answered.add("ListRules")
    stream = stub.StreamStats(pb.StreamStatsRequest(interval_ms=100), timeout=10)
    next(stream)
    stream.cancel()
    answered.add("StreamStats")
    samples = stub.StreamSamples(pb.StreamSamplesRequest(max_samples=1), timeout=10)
    feeding = threading.Event()

    def feed() -> None:
        # Samples appended before the stream subscribed are not its: keep appending a while.
        while not feeding.wait(0.05):
            served.agent.samples.append([Sample(1, 0, "198.51.100.1", "192.0.2.1", 17, 1, 53, 60)])

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        assert [s.source for s in samples] == ["198.51.100.1"]
    finally:
        feeding.set()
        feeder.join()
    answered.add("StreamSamples")
    return answered


def test_the_writer_may_call_everything(served: Served) -> None:
    writer = served.stub(served.certs.client(pki.API_IDENTITY))
    assert writer.ApplyRules(pb.ApplyRulesRequest(rules=[rule(1, "203.0.113.0/24")])).applied == 1
    assert served.agent.datapath.test_run(P.packet("203.0.113.1")) == libbpf.XDP_DROP
    for call in WRITES.values():
        call(writer)
    assert served.agent.list_rules()[0] == []
    assert writer.GetStatus(pb.GetStatusRequest()).default_policy == pb.POLICY_DENY
    assert _read_all(served, writer) == READER_METHODS


def test_a_reader_may_read_and_its_writes_are_denied_leaving_the_maps_as_they_were(
    served: Served,
) -> None:
    writer = served.stub(served.certs.client(pki.API_IDENTITY))
    writer.ApplyRules(pb.ApplyRulesRequest(rules=[rule(1, "203.0.113.0/24")]))
    reader = served.stub(served.certs.client(pki.MONITORING_IDENTITY))
    for name, call in WRITES.items():
        code, details = code_of(lambda call=call: call(reader))  # type: ignore[misc]
        assert code == grpc.StatusCode.PERMISSION_DENIED, (name, details)
        assert pki.MONITORING_IDENTITY in details and name in details
    assert [(r.id, str(r.network)) for r in served.agent.list_rules()[0]] == [(1, "203.0.113.0/24")]
    assert served.agent.datapath.test_run(P.packet("192.0.2.1")) == libbpf.XDP_PASS
    assert served.agent.datapath.test_run(P.packet("203.0.113.1")) == libbpf.XDP_DROP
    status = reader.GetStatus(pb.GetStatusRequest())
    assert (status.default_policy, status.rule_count) == (pb.POLICY_ALLOW, 1)
    assert _read_all(served, reader) == READER_METHODS


def test_an_unknown_identity_is_denied_even_when_its_metadata_claims_another(
    served: Served,
) -> None:
    stranger = served.stub(served.certs.client(STRANGER))
    claims = [("x-identity", pki.API_IDENTITY), ("x-spiffe-id", pki.API_IDENTITY)]
    code, details = code_of(lambda: stranger.GetStatus(pb.GetStatusRequest(), metadata=claims))
    assert code == grpc.StatusCode.PERMISSION_DENIED and STRANGER in details
    code, _ = code_of(lambda: WRITES["SetDefaultPolicy"](stranger))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    reader = served.stub(served.certs.client(pki.MONITORING_IDENTITY))
    code, _ = code_of(
        lambda: reader.SyncRules(
            pb.SyncRulesRequest(rules=[]), metadata=[("x-identity", pki.API_IDENTITY)]
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert served.agent.datapath.test_run(P.packet("192.0.2.1")) == libbpf.XDP_PASS
    # Health answers any client the CA signed; reflection is off unless turned on.
    health = health_pb2_grpc.HealthStub(served.channel(served.certs.client(STRANGER)))
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == (
        health_pb2.HealthCheckResponse.SERVING
    )


def _list_services(channel: grpc.Channel) -> set[str]:
    answers = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    return {s.name for a in answers for s in a.list_services_response.service}


def test_reflection_is_off_by_default_and_on_when_asked(served: Served, certs: Pki) -> None:
    writer = served.certs.client(pki.API_IDENTITY)
    code, _ = code_of(lambda: _list_services(served.channel(writer)))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    with serving(_tls_config(certs, grpc_reflection=True), certs) as reflecting:
        assert "fastpath.v1.FastPathControl" in _list_services(reflecting.channel(writer))


@pytest.mark.parametrize("client", ["plaintext", "no certificate", "other CA", "expired"])
def test_clients_without_a_valid_certificate_are_refused_and_change_nothing(
    served: Served, client: str
) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    other_ca = pki.make_ca("another CA")
    channel = {
        "plaintext": lambda: grpc.insecure_channel(f"127.0.0.1:{served.port}"),
        "no certificate": lambda: served.channel(None),
        "other CA": lambda: served.channel(served.certs.client(pki.API_IDENTITY, ca=other_ca)),
        "expired": lambda: served.channel(
            served.certs.client(pki.API_IDENTITY, not_before=past, days=1)
        ),
    }[client]()
    with channel:
        stub = pb_grpc.FastPathControlStub(channel)
        for call in WRITES.values():
            code, _ = code_of(lambda call=call: call(stub))  # type: ignore[misc]
            assert code == grpc.StatusCode.UNAVAILABLE, client
    assert served.agent.list_rules()[0] == []
    assert served.agent.datapath.test_run(P.packet("192.0.2.1")) == libbpf.XDP_PASS


def test_a_client_must_check_the_agents_certificate(served: Served) -> None:
    # The API refuses an agent whose certificate another CA signed (a rogue listener).
    writer = served.certs.client(pki.API_IDENTITY)
    channel = served.channel(writer, trusted=pki.make_ca("rogue").cert_pem())
    code, _ = code_of(lambda: pb_grpc.FastPathControlStub(channel).GetStatus(pb.GetStatusRequest()))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_during_a_ca_rotation_clients_of_both_cas_are_accepted(certs: Pki) -> None:
    new_ca = pki.make_ca("new CA")
    bundle = certs.directory / "bundle.crt"
    bundle.write_bytes(pki.pem_bundle([certs.ca.cert, new_ca.cert]))
    with serving(_tls_config(certs, tls_client_ca=bundle), certs) as s:
        for ca in (certs.ca, new_ca):
            stub = s.stub(certs.client(pki.MONITORING_IDENTITY, ca=ca))
            assert stub.GetStatus(pb.GetStatusRequest(), timeout=10).version


def test_changed_files_take_effect_at_the_next_handshake_without_a_restart(certs: Pki) -> None:
    """The three steps of a CA rotation, as a Secret volume update delivers them."""
    new_ca = pki.make_ca("new CA")
    old_client = certs.client(pki.MONITORING_IDENTITY)
    new_client = certs.client(pki.MONITORING_IDENTITY, ca=new_ca)

    def status(s: Served, client: pki.Issued, trusted: pki.Issued) -> Any:
        stub = pb_grpc.FastPathControlStub(s.channel(client, trusted.cert_pem()))
        return stub.GetStatus(pb.GetStatusRequest(), timeout=10)

    with serving(_tls_config(certs), certs) as s:
        assert status(s, old_client, certs.ca).version
        code, _ = code_of(lambda: status(s, new_client, certs.ca))
        assert code == grpc.StatusCode.UNAVAILABLE
        both = [new_ca.cert, certs.ca.cert]
        (certs.directory / "ca.crt").write_bytes(pki.pem_bundle(both))
        assert status(s, new_client, certs.ca).version
        pki.write_tls_dir(certs.directory, both, pki.agent_certificate(new_ca))
        assert status(s, old_client, new_ca).version
        (certs.directory / "ca.crt").write_bytes(new_ca.cert_pem())
        code, _ = code_of(lambda: status(s, old_client, new_ca))
        assert code == grpc.StatusCode.UNAVAILABLE
        # A broken update is not taken: the agent goes on with what it had.
        (certs.directory / "tls.key").write_bytes(pki.make_ca().key_pem())
        assert status(s, new_client, new_ca).version


def test_bad_tls_files_are_refused_at_start_naming_the_variable(certs: Pki) -> None:
    (certs.directory / "other.key").write_bytes(pki.make_ca().key_pem())
    (certs.directory / "junk").write_bytes(b"junk")
    for change, named in (
        ({"tls_key": certs.directory / "other.key"}, "FASTPATH_TLS_KEY: .* is not the key of"),
        ({"tls_cert": certs.directory / "junk"}, "FASTPATH_TLS_CERT: .* is not a PEM certificate"),
        ({"tls_client_ca": certs.directory / "junk"}, "FASTPATH_TLS_CLIENT_CA: .* not a PEM"),
        ({"tls_key": certs.directory / "missing"}, "FASTPATH_TLS_KEY: cannot read"),
    ):
        with pytest.raises(ConfigError, match=named):
            server_credentials(_tls_config(certs, **change))
