"""Who may call what on the control port: mutual TLS credentials and a per-method check.

The caller's identity is the URI SAN of the client certificate the TLS handshake verified
(taken from the call's auth context, never from request metadata). Writers may call every
method; readers only the read-only ones; any other identity gets PERMISSION_DENIED. Health (and
reflection, when turned on) answers every client the handshake let in.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from myapp.common.pki import uri_sans
from myapp.fastpath.config import Config, ConfigError

CONTROL_SERVICE = "fastpath.v1.FastPathControl"
READER_METHODS = frozenset({"GetStatus", "GetStats", "ListRules", "StreamStats", "StreamSamples"})
# Open to any certificate the CA signed: probes and tooling, which reveal nothing about rules.
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")


def server_credentials(config: Config) -> grpc.ServerCredentials:
    """TLS credentials that require a client certificate from the FASTPATH_TLS_CLIENT_CA bundle."""
    if not (config.tls_cert and config.tls_key and config.tls_client_ca):
        raise ConfigError("server_credentials needs FASTPATH_TLS_CERT, _KEY and _CLIENT_CA")
    cert, key, bundle = (
        _read(config.tls_cert, "FASTPATH_TLS_CERT"),
        _read(config.tls_key, "FASTPATH_TLS_KEY"),
        _read(config.tls_client_ca, "FASTPATH_TLS_CLIENT_CA"),
    )
    # grpc reports a bad PEM only as a failed handshake later: check each file now.
    try:
        x509.load_pem_x509_certificate(cert)
    except ValueError as err:
        raise ConfigError(
            f"FASTPATH_TLS_CERT: {config.tls_cert} is not a PEM certificate: {err}"
        ) from None
    try:
        if not x509.load_pem_x509_certificates(bundle):
            raise ValueError("no certificate found")
    except ValueError as err:
        raise ConfigError(
            f"FASTPATH_TLS_CLIENT_CA: {config.tls_client_ca} is not a PEM bundle: {err}"
        ) from None
    if b"PRIVATE KEY-----" not in key:
        raise ConfigError(f"FASTPATH_TLS_KEY: {config.tls_key} is not a PEM private key")
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=bundle, require_client_auth=True
    )


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{variable}: cannot read {path}: {err.strerror}") from None


def peer_identities(context: grpc.ServicerContext) -> list[str]:
    """The URI SANs of the verified client certificate; empty on a plaintext connection."""
    pems = context.auth_context().get("x509_pem_cert") or []
    if not pems:
        return []
    return uri_sans(x509.load_pem_x509_certificate(pems[0]))


class AuthorizationInterceptor(grpc.ServerInterceptor):
    """PERMISSION_DENIED unless the peer's identity may call the method (see module doc)."""

    def __init__(self, writers: frozenset[str], readers: frozenset[str]) -> None:
        self.writers = writers
        self.readers = readers

    def allowed(self, identities: list[str], full_method: str) -> bool:
        service, _, method = full_method.lstrip("/").partition("/")
        if service in OPEN_SERVICES:
            return True
        if any(identity in self.writers for identity in identities):
            return True
        return (
            service == CONTROL_SERVICE
            and method in READER_METHODS
            and any(identity in self.readers for identity in identities)
        )

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method

        def guard(behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Any:
            def checked(request: Any, context: grpc.ServicerContext) -> Any:
                identities = peer_identities(context)
                if not self.allowed(identities, method):
                    who = ", ".join(identities) or "a certificate without a URI SAN"
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{who} may not call {method}")
                return behavior(request, context)

            return checked

        # The handler kinds differ only in which behaviour is set; wrap that one.
        for kind, build in (
            ("unary_unary", grpc.unary_unary_rpc_method_handler),
            ("unary_stream", grpc.unary_stream_rpc_method_handler),
            ("stream_unary", grpc.stream_unary_rpc_method_handler),
            ("stream_stream", grpc.stream_stream_rpc_method_handler),
        ):
            behavior = getattr(handler, kind)
            if behavior is not None:
                return build(
                    guard(behavior),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler
