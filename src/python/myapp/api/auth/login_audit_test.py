"""What a failed login leaves in the audit log (and so in the webhooks, which forward the stored
entry): the typed e-mail only when it names an account, a keyed hash otherwise, never the
password."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from myapp.api.conftest import Session

SECRET_GUESS = "my-Secret-Passw0rd"  # noqa: S105 - what a user might type


def _failed_logins(app: Flask) -> list[dict]:
    with app.app_context():
        db = app.extensions["myapp"].db
        rows = db(db.audit_log.action == "auth.login_failed").select(orderby=db.audit_log.id)
        return [row.as_dict() for row in rows]


def test_a_failed_login_keeps_only_what_names_an_account(
    app: Flask, client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    admin_email = app.extensions["myapp"].config.admin_email
    before = len(_failed_logins(app))
    attempts = [
        (admin_email, SECRET_GUESS),  # an account: its e-mail is kept
        (SECRET_GUESS, "whatever it was"),  # a password in the e-mail field
        ("nobody@example.com", SECRET_GUESS),  # no such account
    ]
    for email, password in attempts:
        response = client.post(
            "/api/v1/auth/login",
            json={"email": email, "password": password},
            environ_base={"REMOTE_ADDR": "192.0.2.77"},
        )
        assert response.status_code == 401
    known, typo, unknown = _failed_logins(app)[before:]
    assert known["details"] == {"email": admin_email, "reason": "failure"}
    assert known["actor_email"] == admin_email and known["object_id"] is not None
    secret = app.extensions["myapp"].config.jwt_secret.encode()
    key = hmac.new(secret, b"audit typed e-mail", hashlib.sha256).digest()
    for entry, typed in ((typo, SECRET_GUESS.lower()), (unknown, "nobody@example.com")):
        assert entry["actor_email"] is None and entry["object_id"] is None
        assert entry["details"] == {
            "email_hmac": hmac.new(key, typed.encode(), hashlib.sha256).hexdigest()[:32],
            "reason": "failure",
        }
    # Nothing anywhere in the entries (as stored, as listed, as forwarded) holds what was typed
    # as a password, nor the unknown "e-mail".
    listed = client.get(
        "/api/v1/audit",
        headers=login_as("admin").headers,
        query_string={"action": "auth.login_failed", "per_page": 100},
    ).get_json()
    everything = json.dumps([known, typo, unknown], default=str) + json.dumps(listed)
    assert SECRET_GUESS.lower() not in everything.lower() and "whatever it was" not in everything
    assert "nobody@example.com" not in everything
