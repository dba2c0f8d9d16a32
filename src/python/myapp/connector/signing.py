"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"``, as receivers verify them.

Headers on every delivery: ``X-Myapp-Event`` (the audit action), ``X-Myapp-Delivery`` (a UUID,
the same on every retry so receivers can de-duplicate), ``X-Myapp-Timestamp`` (Unix seconds) and
``X-Myapp-Signature: sha256=<hex>``. Signing the timestamp lets a receiver reject replays.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Myapp-Signature"
TIMESTAMP_HEADER = "X-Myapp-Timestamp"
EVENT_HEADER = "X-Myapp-Event"
DELIVERY_HEADER = "X-Myapp-Delivery"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Myapp-Signature`` value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str, timestamp: int, body: bytes, signature: str, *, now: int, tolerance: int = 300
) -> bool:
    """What a receiver does: constant-time compare, and refuse stale or future timestamps."""
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
