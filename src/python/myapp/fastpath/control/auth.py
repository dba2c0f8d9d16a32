"""Who may call what on the control port: mutual TLS credentials and a per-method check.

The caller's identity is the URI SAN of the client certificate the TLS handshake verified
(taken from the call's auth context, never from request metadata). Writers may call every
method; readers only the read-only ones; any other identity gets PERMISSION_DENIED. Health (and
reflection, when turned on) answers every client the handshake let in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from myapp.common.pki import uri_sans
from myapp.fastpath.config import Config, ConfigError

CONTROL_SERVICE = "fastpath.v1.FastPathControl"
READER_METHODS = frozenset({"GetStatus", "GetStats", "ListRules", "StreamStats", "StreamSamples"})
# Open to any certificate the CA signed: probes and tooling, which reveal nothing about rules.
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")

log = logging.getLogger(__name__)


class CertificateFiles:
    """The agent's certificate, key and client CA bundle, read again when one of them changes.

    A Kubernetes Secret volume is updated in place (all files at once), so a renewed
    certificate or a CA joining the bundle takes effect at the next handshake, without a
    restart. A broken update is logged and the files in use are kept.
    """

    def __init__(self, config: Config) -> None:
        if not (config.tls_cert and config.tls_key and config.tls_client_ca):
            raise ConfigError("FASTPATH_TLS_CERT, FASTPATH_TLS_KEY, FASTPATH_TLS_CLIENT_CA needed")
        self.files = {
            "FASTPATH_TLS_CERT": config.tls_cert,
            "FASTPATH_TLS_KEY": config.tls_key,
            "FASTPATH_TLS_CLIENT_CA": config.tls_client_ca,
        }
        self._lock = threading.Lock()
        self._contents = self._read_all()
        self.initial = self.load(self._contents)

    def _read_all(self) -> tuple[bytes, bytes, bytes]:
        # A few kB per handshake (the API keeps its connections): cheaper than being wrong
        # about a coarse mtime. A Secret volume swaps all its files at once.
        cert, key, bundle = (_read(path, name) for name, path in self.files.items())
        return cert, key, bundle

    def load(self, contents: tuple[bytes, bytes, bytes]) -> grpc.ServerCertificateConfiguration:
        """Check the three files' contents; ConfigError naming the variable of a bad one."""
        cert_pem, key_pem, bundle_pem = contents
        # grpc would report a bad file only as failed handshakes: check each one here.
        cert_path, key_path, bundle_path = self.files.values()
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as err:
            raise ConfigError(
                f"FASTPATH_TLS_CERT: {cert_path} is not a PEM certificate: {err}"
            ) from None
        try:
            key = serialization.load_pem_private_key(key_pem, None)
        except (ValueError, TypeError) as err:
            raise ConfigError(
                f"FASTPATH_TLS_KEY: {key_path} is not an unencrypted PEM key: {err}"
            ) from None
        if key.public_key() != cert.public_key():
            raise ConfigError(f"FASTPATH_TLS_KEY: {key_path} is not the key of {cert_path}")
        try:
            if not x509.load_pem_x509_certificates(bundle_pem):
                raise ValueError("no certificate found")
        except ValueError as err:
            raise ConfigError(
                f"FASTPATH_TLS_CLIENT_CA: {bundle_path} is not a PEM bundle: {err}"
            ) from None
        return grpc.ssl_server_certificate_configuration(
            [(key_pem, cert_pem)], root_certificates=bundle_pem
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc's per-handshake question: a new configuration, or None to keep the current."""
        with self._lock:
            try:
                contents = self._read_all()
                if contents == self._contents:
                    return None
                self._contents = contents
                configuration = self.load(contents)
            except ConfigError as err:
                log.error("TLS files changed but are not usable, keeping the previous: %s", err)
                return None
        log.info("TLS files changed: new handshakes use them")
        return configuration


def server_credentials(config: Config) -> grpc.ServerCredentials:
    """Mutual TLS that requires a client certificate from the FASTPATH_TLS_CLIENT_CA bundle,
    following changes of the files (see `CertificateFiles`)."""
    files = CertificateFiles(config)
    return grpc.dynamic_ssl_server_credentials(
        files.initial, files.fetch, require_client_authentication=True
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
