"""The gRPC server: FastPathControl plus grpc.health.v1 (and reflection when turned on).

With TLS configured it serves only mutual TLS and checks each call's identity (`auth.py`);
without, it is plaintext, which `Config` allows on a loopback bind only.
"""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fastpath.v1 import fastpath_pb2, fastpath_pb2_grpc
from myapp.fastpath.config import Config
from myapp.fastpath.control.auth import AuthorizationInterceptor, server_credentials

SERVICE_NAME = fastpath_pb2.DESCRIPTOR.services_by_name["FastPathControl"].full_name


@dataclass
class ControlServer:
    """The started server, the port it listens on (config may say 0) and its health service."""

    server: grpc.Server
    port: int
    health: health.HealthServicer

    def stop(self, grace: float) -> None:
        # Tell load balancers first, then let in-flight calls finish.
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait(grace + 1)


def build_server(
    config: Config,
    servicers: list[fastpath_pb2_grpc.FastPathControlServicer],
    credentials: grpc.ServerCredentials | None = None,
) -> ControlServer:
    """The started server; with TLS configured, `credentials` (default: read from the files)."""
    interceptors: list[grpc.ServerInterceptor] = []
    if config.tls:
        credentials = credentials or server_credentials(config)
        interceptors.append(AuthorizationInterceptor(config.writers, config.readers))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), interceptors=interceptors)
    for servicer in servicers:
        fastpath_pb2_grpc.add_FastPathControlServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if config.grpc_reflection:
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
    host = f"[{config.bind}]" if ":" in config.bind else config.bind
    address = f"{host}:{config.grpc_port}"
    if credentials is not None:
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {host}:{config.grpc_port} for gRPC")
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return ControlServer(server, port, health_servicer)
