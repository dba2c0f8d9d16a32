"""The API's side of the agents' mutual TLS: its settings, and that it checks whom it talks to
(a real TLS gRPC server on loopback stands in for an agent; the full path is in
tests/python/fastpath_api)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from fastpath.v1 import fastpath_pb2 as pb
from fastpath.v1 import fastpath_pb2_grpc as pb_grpc
from myapp.api.config import Config, ConfigError, FastPathTls
from myapp.api.fastpath.client import (
    AgentFleet,
    ChannelCredentials,
    FastPathClient,
    FastPathUnavailable,
)
from myapp.common import pki

PRODUCTION = {
    "APP_ENV": "production",
    "JWT_SECRET": "x" * 40,
    "ADMIN_PASSWORD": "a real admin pw!",
}
TLS_VARIABLES = ("FASTPATH_TLS_CA", "FASTPATH_TLS_CERT", "FASTPATH_TLS_KEY")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return pki.write_dev_certs(tmp_path_factory.mktemp("pki"))


def _tls_env(directory: Path) -> dict[str, str]:
    return {
        "FASTPATH_TLS_CA": str(directory / "ca.crt"),
        "FASTPATH_TLS_CERT": str(directory / "tls.crt"),
        "FASTPATH_TLS_KEY": str(directory / "tls.key"),
    }


def test_production_refuses_a_remote_agent_without_tls_naming_the_variables() -> None:
    addr = "fastpath.myapp-fastpath.svc.cluster.local:50051"
    with pytest.raises(ConfigError) as err:
        Config.from_env({**PRODUCTION, "FASTPATH_ADDR": addr})
    assert all(name in str(err.value) for name in TLS_VARIABLES) and addr in str(err.value)
    # Loopback agents serve plaintext, and development may try anything.
    for env in (
        {**PRODUCTION, "FASTPATH_ADDR": "127.0.0.1:50051,[::1]:50051,localhost:1"},
        {"APP_ENV": "development", "FASTPATH_ADDR": addr},
    ):
        assert Config.from_env(env).fastpath_tls is None


def test_tls_settings_are_all_or_none_and_the_server_name_has_a_default(
    certs: dict[str, Path],
) -> None:
    env = {**PRODUCTION, "FASTPATH_ADDR": "10.0.0.7:50051", **_tls_env(certs["flask-backend"])}
    tls = Config.from_env(env).fastpath_tls
    assert tls == FastPathTls(
        certs["flask-backend"] / "ca.crt",
        certs["flask-backend"] / "tls.crt",
        certs["flask-backend"] / "tls.key",
        "fastpath.myapp-fastpath.svc",
    )
    named = Config.from_env({**env, "FASTPATH_TLS_SERVER_NAME": "localhost"}).fastpath_tls
    assert named is not None and named.server_name == "localhost"
    with pytest.raises(ConfigError, match="^FASTPATH_TLS_KEY missing"):
        Config.from_env({**env, "FASTPATH_TLS_KEY": ""})
    with pytest.raises(ConfigError, match="FASTPATH_TLS_CA: no such file"):
        Config.from_env({**env, "FASTPATH_TLS_CA": "/nonexistent/ca.crt"})


class _Agent(pb_grpc.FastPathControlServicer):
    def GetStatus(self, request: pb.GetStatusRequest, context: grpc.ServicerContext) -> pb.Status:
        return pb.Status(version="stand-in", rule_count=7)


@contextmanager
def _tls_agent(server: pki.Issued, ca: pki.Issued) -> Iterator[int]:
    """A TLS gRPC server on loopback presenting `server`, requiring clients of `ca`."""
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    # Only GetStatus is served; the generated base answers the rest UNIMPLEMENTED.
    pb_grpc.add_FastPathControlServicer_to_server(_Agent(), grpc_server)  # type: ignore[abstract]
    credentials = grpc.ssl_server_credentials(
        [(server.key_pem(), server.cert_pem())],
        root_certificates=ca.cert_pem(),
        require_client_auth=True,
    )
    port = grpc_server.add_secure_port("127.0.0.1:0", credentials)
    grpc_server.start()
    try:
        yield port
    finally:
        grpc_server.stop(None)


def _client(port: int, ca: pki.Issued, server_name: str) -> FastPathClient:
    api = pki.client_certificate(ca, pki.API_IDENTITY)
    tls = ChannelCredentials(ca.cert_pem(), api.key_pem(), api.cert_pem(), server_name)
    return FastPathClient(f"127.0.0.1:{port}", timeout=5, tls=tls)


def test_the_client_talks_to_an_agent_of_its_ca_under_the_configured_name() -> None:
    ca = pki.make_ca()
    with _tls_agent(pki.agent_certificate(ca), ca) as port:
        client = _client(port, ca, "fastpath.myapp-fastpath.svc")
        assert client.status()["rule_count"] == 7
        client.close()
        # Another name than the certificate's: refused, as a redirected connection would be.
        client = _client(port, ca, "postgres.myapp.svc")
        with pytest.raises(FastPathUnavailable):
            client.status()
        client.close()


def test_the_client_refuses_an_agent_certificate_from_another_ca() -> None:
    ca, rogue = pki.make_ca(), pki.make_ca("rogue")
    with _tls_agent(pki.agent_certificate(rogue), ca) as port:
        client = _client(port, ca, "fastpath.myapp-fastpath.svc")
        with pytest.raises(FastPathUnavailable):
            client.status()
        client.close()


def test_the_fleet_takes_renewed_files_at_its_next_refresh(tmp_path: Path) -> None:
    # The agent accepts clients of the new CA only; the API still holds an old-CA certificate.
    old_ca, new_ca = pki.make_ca("old"), pki.make_ca("new")
    files = pki.write_tls_dir(
        tmp_path, [new_ca.cert], pki.client_certificate(old_ca, pki.API_IDENTITY)
    )
    tls = ChannelCredentials.from_files(
        files / "ca.crt", files / "tls.crt", files / "tls.key", "localhost"
    )
    assert tls.reloaded() is tls
    with _tls_agent(pki.agent_certificate(new_ca), new_ca) as port:
        fleet = AgentFleet(f"127.0.0.1:{port}", timeout=5, tls=tls)
        try:
            fleet.refresh()
            (refused,) = fleet.each(lambda client: client.status()).values()
            assert isinstance(refused, FastPathUnavailable)
            pki.write_tls_dir(
                tmp_path, [new_ca.cert], pki.client_certificate(new_ca, pki.API_IDENTITY)
            )
            fleet.refresh()
            (status,) = fleet.each(lambda client: client.status()).values()
            assert isinstance(status, dict) and status["rule_count"] == 7, status
        finally:
            fleet.close()
