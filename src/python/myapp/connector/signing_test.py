from __future__ import annotations

import hashlib
import hmac

from myapp.connector.signing import sign, verify


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("key", 1700000000, b"{}") == f"sha256={expected}"


def test_verify_accepts_fresh_and_refuses_tampered_stale_or_wrong_key() -> None:
    sig = sign("key", 1000, b"body")
    assert verify("key", 1000, b"body", sig, now=1010)
    assert not verify("key", 1000, b"body!", sig, now=1010)
    assert not verify("other", 1000, b"body", sig, now=1010)
    assert not verify("key", 1000, b"body", sig, now=1000 + 301)
    assert not verify("key", 1001, b"body", sig, now=1010)
