"""Writing audit entries (in the caller's transaction: the entry commits with the change)."""

from __future__ import annotations

from typing import Any

from flask import g, has_request_context, request

from myapp.api.auth.principal import current_actor
from myapp.api.db import utcnow
from myapp.api.state import db, state


def client_ip() -> str | None:
    """The client address as the WSGI server saw it (put a trusted proxy's fix-up in front)."""
    return request.remote_addr if has_request_context() else None


def record(
    action: str,
    object_type: str | None = None,
    object_id: Any = None,
    details: dict[str, Any] | None = None,
    *,
    actor_id: int | None = None,
    actor_email: str | None = None,
) -> None:
    """Insert one audit entry; the actor defaults to the authenticated caller."""
    if actor_id is None and actor_email is None and has_request_context():
        actor_id, actor_email = current_actor()
    entry: dict[str, Any] = {
        "created_at": utcnow(),
        "actor_id": actor_id,
        "actor_email": actor_email,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "details": details or {},
        "request_id": g.get("request_id") if has_request_context() else None,
        "ip": client_ip(),
    }
    d = db()
    entry_id = d.audit_log.insert(**entry)
    forwarder = state().events
    if forwarder is not None:
        # Queued for the connector in the same transaction: it leaves only if this commits.
        d.event_outbox.insert(audit_id=entry_id)
        if has_request_context():
            g.wake_forwarder = True  # at the end of the request, once it has committed
        else:
            # A CLI command: wake it now; a row still in an open transaction is found by a
            # later poll (every few seconds), here or in any API process.
            forwarder.wake()
