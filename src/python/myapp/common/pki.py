"""A small certificate authority for the fast path's mutual TLS (ECDSA P-256, `cryptography`).

Identities are URI SANs (``spiffe://myapp/<service>``): the agent's server certificate carries
``spiffe://myapp/fastpath`` plus the DNS names and address it is dialled by; each client (the API,
monitoring) carries its own URI, which the agent checks against its allow-lists.

CLI (``python -m myapp.common.pki`` or ``./pants run src/python/myapp/common:pki --``):

- ``dev-certs DIR``: a CA and the agent, API and monitoring certificates, each service in
  ``DIR/<service>/{ca.crt,tls.crt,tls.key}`` (the cert-manager layout the Secrets use).
- ``k8s-secrets [--existing-ca FILE] [--rotate-ca | --drop-old-ca]``: the Secrets
  ``fastpath-ca``, ``fastpath-tls`` and ``flask-backend-fastpath-tls`` as a JSON ``List`` for
  ``kubectl apply -f -``; FILE is the current ``fastpath-ca`` Secret (``kubectl get -o json``),
  whose CA is kept. Rotation: see the fast path's README.
- ``client-cert --existing-ca FILE IDENTITY DIR``: a client certificate for IDENTITY (e.g.
  ``spiffe://myapp/monitoring``) from that CA, in ``DIR/{ca.crt,tls.crt,tls.key}``.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

AGENT_IDENTITY = "spiffe://myapp/fastpath"
API_IDENTITY = "spiffe://myapp/flask-backend"
MONITORING_IDENTITY = "spiffe://myapp/monitoring"
# Every name the agents are dialled by: the Service's short and full names (the API checks
# FASTPATH_TLS_SERVER_NAME, default fastpath.myapp-fastpath.svc, as it dials pod IPs), and
# localhost for development.
AGENT_DNS_NAMES = (
    "fastpath",
    "fastpath.myapp-fastpath",
    "fastpath.myapp-fastpath.svc",
    "fastpath.myapp-fastpath.svc.cluster.local",
    "localhost",
)
AGENT_IPS = ("127.0.0.1",)

FASTPATH_NAMESPACE = "myapp-fastpath"
API_NAMESPACE = "myapp"
K8S_CA = "fastpath-ca"
K8S_AGENT_TLS = "fastpath-tls"
K8S_API_TLS = "flask-backend-fastpath-tls"

CA_DAYS = 3650
LEAF_DAYS = 365


class PkiError(ValueError):
    """Input that cannot make a certificate (a bad Secret, a CA without its key...)."""


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _validity(
    not_before: datetime.datetime | None, days: float
) -> tuple[datetime.datetime, datetime.datetime]:
    # Back-dated a little so a peer whose clock is slightly behind accepts a fresh certificate.
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    return start, start + datetime.timedelta(days=days)


def _key_usage(signs_certificates: bool) -> x509.KeyUsage:
    """ECDSA keys sign: handshakes (every certificate) and, for a CA, certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(
    common_name: str = "myapp fast-path CA",
    *,
    days: float = CA_DAYS,
    not_before: datetime.datetime | None = None,
) -> Issued:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start, end = _validity(not_before, days)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(
    ca: Issued,
    common_name: str,
    *,
    uris: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    ips: Iterable[str] = (),
    server: bool = False,
    client: bool = False,
    days: float = LEAF_DAYS,
    not_before: datetime.datetime | None = None,
) -> Issued:
    """A leaf certificate signed by `ca` with the given SANs and extended key usages."""
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    sans += [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if not sans:
        raise PkiError(f"certificate {common_name!r} needs at least one SAN")
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    if not usages:
        raise PkiError(f"certificate {common_name!r} must be for a server, a client or both")
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity(not_before, days)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def agent_certificate(ca: Issued, **validity: Any) -> Issued:
    """The agent's server certificate: its identity, the Service's DNS names and 127.0.0.1."""
    return issue(
        ca,
        "fastpath",
        uris=[AGENT_IDENTITY],
        dns_names=AGENT_DNS_NAMES,
        ips=AGENT_IPS,
        server=True,
        **validity,
    )


def client_certificate(ca: Issued, identity: str, **validity: Any) -> Issued:
    """A client certificate whose identity is the URI SAN `identity` (spiffe://myapp/<name>)."""
    return issue(
        ca, identity.rsplit("/", 1)[-1] or identity, uris=[identity], client=True, **validity
    )


def uri_sans(cert: x509.Certificate) -> list[str]:
    """The URI SANs of `cert` (empty when it has no SAN extension)."""
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(uri) for uri in extension.value.get_values_for_type(x509.UniformResourceIdentifier)]


def pem_bundle(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def _without_duplicates(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    seen: list[x509.Certificate] = []
    for cert in certs:
        if cert not in seen:
            seen.append(cert)
    return seen


def write_tls_dir(directory: Path, trusted: Sequence[x509.Certificate], issued: Issued) -> Path:
    """`directory`/{ca.crt,tls.crt,tls.key} (the key readable by the owner only)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_bytes(pem_bundle(trusted))
    (directory / "tls.crt").write_bytes(issued.cert_pem())
    key_path = directory / "tls.key"
    key_path.touch(mode=0o600)
    key_path.write_bytes(issued.key_pem())
    return directory


def write_dev_certs(directory: Path) -> dict[str, Path]:
    """A fresh CA and one TLS directory per service: fastpath, flask-backend, monitoring."""
    ca = make_ca()
    made = {
        "fastpath": agent_certificate(ca),
        "flask-backend": client_certificate(ca, API_IDENTITY),
        "monitoring": client_certificate(ca, MONITORING_IDENTITY),
    }
    return {name: write_tls_dir(directory / name, [ca.cert], leaf) for name, leaf in made.items()}


@dataclass(frozen=True)
class CaState:
    """The signing CA and the trust bundle (the signing CA plus, during a rotation, the old one)."""

    signing: Issued
    bundle: tuple[x509.Certificate, ...]


def ca_state_from_secret(secret: dict[str, Any]) -> CaState:
    """The CA kept in a `fastpath-ca` Secret (as `kubectl get secret -o json` prints it)."""
    data = secret.get("data") or {}
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
        key = serialization.load_pem_private_key(base64.b64decode(data["tls.key"]), None)
        bundle = x509.load_pem_x509_certificates(
            base64.b64decode(data.get("ca.crt") or data["tls.crt"])
        )
    except (KeyError, ValueError) as err:
        raise PkiError(f"Secret {K8S_CA} needs PEM tls.crt, tls.key and ca.crt: {err}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise PkiError(f"Secret {K8S_CA}: tls.key is not the key of tls.crt")
    return CaState(Issued(cert, key), tuple(_without_duplicates([cert, *bundle])))


def _secret(name: str, namespace: str, files: dict[str, bytes], secret_type: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "myapp"},
        },
        "type": secret_type,
        "data": {key: base64.b64encode(value).decode() for key, value in sorted(files.items())},
    }


def k8s_secrets(
    existing: CaState | None, *, rotate_ca: bool = False, drop_old_ca: bool = False
) -> dict[str, Any]:
    """The three Secrets as a `v1 List`: the CA (kept unless rotating) and two fresh leaves.

    - no flag: the CA and its bundle are kept (made on the first run); leaves from the CA.
    - rotate_ca: a new signing CA; the bundle holds old and new; the leaves are still issued by
      the old CA, so peers that have not restarted yet keep trusting them.
    - drop_old_ca: the bundle shrinks to the signing CA (run once every leaf is from it).
    """
    if rotate_ca and drop_old_ca:
        raise PkiError("--rotate-ca and --drop-old-ca are two steps: run them separately")
    if existing is None:
        if drop_old_ca:
            raise PkiError(f"--drop-old-ca needs the existing {K8S_CA} Secret")
        first = make_ca()
        existing = CaState(first, (first.cert,))
    signing, issuer, bundle = existing.signing, existing.signing, list(existing.bundle)
    if rotate_ca:
        signing = make_ca()
        bundle = _without_duplicates([signing.cert, *bundle])
    if drop_old_ca:
        bundle = [signing.cert]
    trust = pem_bundle(bundle)
    agent = agent_certificate(issuer)
    api = client_certificate(issuer, API_IDENTITY)
    tls = "kubernetes.io/tls"
    items = [
        _secret(
            K8S_CA,
            FASTPATH_NAMESPACE,
            {"ca.crt": trust, "tls.crt": signing.cert_pem(), "tls.key": signing.key_pem()},
            tls,
        ),
        _secret(
            K8S_AGENT_TLS,
            FASTPATH_NAMESPACE,
            {"ca.crt": trust, "tls.crt": agent.cert_pem(), "tls.key": agent.key_pem()},
            tls,
        ),
        _secret(
            K8S_API_TLS,
            API_NAMESPACE,
            {"ca.crt": trust, "tls.crt": api.cert_pem(), "tls.key": api.key_pem()},
            tls,
        ),
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pki", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev-certs", help="a CA and every service's certificate in DIR")
    dev.add_argument("directory", type=Path)
    k8s = commands.add_parser("k8s-secrets", help="the TLS Secrets as JSON for kubectl apply")
    k8s.add_argument("--existing-ca", type=Path, help="the current fastpath-ca Secret (JSON)")
    step = k8s.add_mutually_exclusive_group()
    step.add_argument("--rotate-ca", action="store_true", help="start a CA rotation")
    step.add_argument("--drop-old-ca", action="store_true", help="finish a CA rotation")
    client = commands.add_parser("client-cert", help="a client certificate from a fastpath-ca")
    client.add_argument("--existing-ca", type=Path, required=True, help="fastpath-ca (JSON)")
    client.add_argument("identity", help="its URI SAN, e.g. spiffe://myapp/monitoring")
    client.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "dev-certs":
            for name, path in write_dev_certs(args.directory).items():
                print(f"{name}: {path}")
            return 0
        if args.command == "client-cert":
            if "://" not in args.identity:
                raise PkiError(f"identity {args.identity!r} is not a URI (spiffe://myapp/<name>)")
            ca = ca_state_from_secret(json.loads(args.existing_ca.read_text()))
            leaf = client_certificate(ca.signing, args.identity)
            print(write_tls_dir(args.directory, ca.bundle, leaf))
            return 0
        existing = None
        if args.existing_ca is not None:
            existing = ca_state_from_secret(json.loads(args.existing_ca.read_text()))
        secrets = k8s_secrets(existing, rotate_ca=args.rotate_ca, drop_old_ca=args.drop_old_ca)
    except (PkiError, OSError, json.JSONDecodeError) as err:
        print(f"pki: {err}", file=sys.stderr)
        return 2
    json.dump(secrets, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
