from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from myapp.common import pki


def _verify_server(leaf: x509.Certificate, trusted: list[x509.Certificate], name: str) -> None:
    verifier = PolicyBuilder().store(Store(trusted)).build_server_verifier(x509.DNSName(name))
    verifier.verify(leaf, [])


def _verify_client(leaf: x509.Certificate, trusted: list[x509.Certificate]) -> list[str]:
    verified = PolicyBuilder().store(Store(trusted)).build_client_verifier().verify(leaf, [])
    return [str(uri.value) for uri in verified.subjects or []]


def test_the_agent_certificate_chains_to_the_ca_and_names_every_address() -> None:
    ca = pki.make_ca()
    agent = pki.agent_certificate(ca)
    for name in pki.AGENT_DNS_NAMES:
        _verify_server(agent.cert, [ca.cert], name)
    sans = agent.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert pki.uri_sans(agent.cert) == [pki.AGENT_IDENTITY]
    with pytest.raises(VerificationError):
        _verify_server(agent.cert, [ca.cert], "evil.example")
    # A server certificate is not a client certificate.
    with pytest.raises(VerificationError):
        _verify_client(agent.cert, [ca.cert])


def test_a_client_certificate_carries_its_identity_and_only_its_ca_accepts_it() -> None:
    ca, other = pki.make_ca(), pki.make_ca("another CA")
    api = pki.client_certificate(ca, pki.API_IDENTITY)
    assert _verify_client(api.cert, [ca.cert]) == [pki.API_IDENTITY]
    assert pki.uri_sans(api.cert) == [pki.API_IDENTITY]
    assert api.cert.public_key() == api.key.public_key()
    with pytest.raises(VerificationError):
        _verify_client(api.cert, [other.cert])


def test_validity_arguments_make_expired_certificates() -> None:
    ca = pki.make_ca()
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10)
    expired = pki.client_certificate(ca, pki.API_IDENTITY, not_before=past, days=1)
    assert expired.cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC)
    with pytest.raises(VerificationError):
        _verify_client(expired.cert, [ca.cert])


def test_a_certificate_without_a_name_or_a_purpose_is_refused() -> None:
    ca = pki.make_ca()
    with pytest.raises(pki.PkiError, match="SAN"):
        pki.issue(ca, "nameless", client=True)
    with pytest.raises(pki.PkiError, match="server, a client"):
        pki.issue(ca, "aimless", uris=["spiffe://myapp/x"])


def test_dev_certs_cli_writes_one_directory_per_service(tmp_path: Path) -> None:
    assert pki.main(["dev-certs", str(tmp_path)]) == 0
    bundle = x509.load_pem_x509_certificates((tmp_path / "fastpath" / "ca.crt").read_bytes())
    for service, identity in (
        ("fastpath", pki.AGENT_IDENTITY),
        ("flask-backend", pki.API_IDENTITY),
        ("monitoring", pki.MONITORING_IDENTITY),
    ):
        directory = tmp_path / service
        assert (directory / "ca.crt").read_bytes() == pki.pem_bundle(bundle)
        cert = x509.load_pem_x509_certificate((directory / "tls.crt").read_bytes())
        assert pki.uri_sans(cert) == [identity]
        assert stat.S_IMODE((directory / "tls.key").stat().st_mode) == 0o600
    _verify_server(
        x509.load_pem_x509_certificate((tmp_path / "fastpath" / "tls.crt").read_bytes()),
        bundle,
        "localhost",
    )


def _decoded(secret: dict[str, Any], key: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(base64.b64decode(secret["data"][key]))


def _by_name(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert listing["kind"] == "List"
    return {item["metadata"]["name"]: item for item in listing["items"]}


def _run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert pki.main(["k8s-secrets", *args]) == 0
    listing = json.loads(capsys.readouterr().out)
    (tmp_path / "ca.json").write_text(json.dumps(_by_name(listing)[pki.K8S_CA]))
    return _by_name(listing)


def test_k8s_secrets_keep_the_ca_and_rotate_it_in_three_steps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = str(tmp_path / "ca.json")
    first = _run_cli(tmp_path, capsys)
    assert {(s["metadata"]["namespace"], s["type"]) for s in first.values()} == {
        ("myapp-fastpath", "kubernetes.io/tls"),
        ("myapp", "kubernetes.io/tls"),
    }
    assert first[pki.K8S_API_TLS]["metadata"]["namespace"] == "myapp"
    (old_ca,) = _decoded(first[pki.K8S_CA], "tls.crt")
    for name in (pki.K8S_AGENT_TLS, pki.K8S_API_TLS):
        assert _decoded(first[name], "ca.crt") == [old_ca]
    _verify_server(_decoded(first[pki.K8S_AGENT_TLS], "tls.crt")[0], [old_ca], "fastpath")
    assert _verify_client(_decoded(first[pki.K8S_API_TLS], "tls.crt")[0], [old_ca]) == [
        pki.API_IDENTITY
    ]

    again = _run_cli(tmp_path, capsys, "--existing-ca", existing)
    assert _decoded(again[pki.K8S_CA], "tls.crt") == [old_ca]
    assert again[pki.K8S_API_TLS]["data"]["tls.crt"] != first[pki.K8S_API_TLS]["data"]["tls.crt"]

    # Step 1: a new CA in every bundle, leaves still from the old one (trusted by every peer).
    rotating = _run_cli(tmp_path, capsys, "--existing-ca", existing, "--rotate-ca")
    (new_ca,) = _decoded(rotating[pki.K8S_CA], "tls.crt")
    assert new_ca != old_ca
    for name in (pki.K8S_CA, pki.K8S_AGENT_TLS, pki.K8S_API_TLS):
        assert _decoded(rotating[name], "ca.crt") == [new_ca, old_ca]
    _verify_client(_decoded(rotating[pki.K8S_API_TLS], "tls.crt")[0], [old_ca])

    # Step 2: leaves from the new CA, both still trusted.
    reissued = _run_cli(tmp_path, capsys, "--existing-ca", existing)
    _verify_server(_decoded(reissued[pki.K8S_AGENT_TLS], "tls.crt")[0], [new_ca], "fastpath")
    _verify_client(_decoded(reissued[pki.K8S_API_TLS], "tls.crt")[0], [new_ca])
    assert _decoded(reissued[pki.K8S_API_TLS], "ca.crt") == [new_ca, old_ca]

    # Step 3: the old CA leaves the bundles.
    done = _run_cli(tmp_path, capsys, "--existing-ca", existing, "--drop-old-ca")
    for name in (pki.K8S_AGENT_TLS, pki.K8S_API_TLS):
        assert _decoded(done[name], "ca.crt") == [new_ca]
    _verify_client(_decoded(done[pki.K8S_API_TLS], "tls.crt")[0], [new_ca])


def test_k8s_secrets_refuse_a_broken_ca_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"data": {"tls.crt": base64.b64encode(b"junk").decode()}}))
    assert pki.main(["k8s-secrets", "--existing-ca", str(broken)]) == 2
    assert "fastpath-ca needs PEM tls.crt, tls.key and ca.crt" in capsys.readouterr().err
    mismatched = pki.k8s_secrets(None)["items"][0]
    mismatched["data"]["tls.key"] = base64.b64encode(pki.make_ca().key_pem()).decode()
    with pytest.raises(pki.PkiError, match="not the key of tls.crt"):
        pki.ca_state_from_secret(mismatched)
    with pytest.raises(pki.PkiError, match="needs the existing"):
        pki.k8s_secrets(None, drop_old_ca=True)


def test_client_cert_cli_issues_an_identity_from_the_kept_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = _run_cli(tmp_path, capsys)
    (ca,) = _decoded(secrets[pki.K8S_CA], "tls.crt")
    existing = str(tmp_path / "ca.json")
    out = tmp_path / "reader"
    assert (
        pki.main(["client-cert", "--existing-ca", existing, pki.MONITORING_IDENTITY, str(out)]) == 0
    )
    reader = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    assert _verify_client(reader, [ca]) == [pki.MONITORING_IDENTITY]
    assert x509.load_pem_x509_certificates((out / "ca.crt").read_bytes()) == [ca]
    assert pki.main(["client-cert", "--existing-ca", existing, "monitoring", str(out)]) == 2
    assert "is not a URI" in capsys.readouterr().err
