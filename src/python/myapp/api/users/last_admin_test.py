"""The last active admin under concurrency, on every backend.

Two admins stepping down at the same moment (demoting each other, or each themselves): each
request alone sees another active admin, so without locking both would succeed and leave none.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from myapp.api.conftest import TEST_PASSWORD, Session, all_at_once, login


def _active_admins(app: Flask) -> set[int]:
    d = app.extensions["myapp"].db
    with app.app_context():
        rows = d((d.app_user.role == "admin") & (d.app_user.active == True)).select(  # noqa: E712
            d.app_user.id
        )
        d.commit()
    return {row.id for row in rows}


@pytest.mark.parametrize("who_demotes_whom", ["each other", "themselves"])
def test_two_admins_stepping_down_at_once_leave_one(
    app: Flask,
    client: FlaskClient,
    base_url: str,
    login_as: Callable[[str], Session],
    who_demotes_whom: str,
) -> None:
    first = login_as("admin")
    created = client.post(
        "/api/v1/users",
        headers=first.headers,
        json={
            "email": f"second-admin-{who_demotes_whom.replace(' ', '-')}@example.com",
            "password": TEST_PASSWORD,
            "full_name": "Second Admin",
            "role": "admin",
        },
    )
    assert created.status_code == 201, created.get_json()
    second = login(client, created.get_json()["email"], TEST_PASSWORD)
    ids = {first.user["id"]: first, second.user["id"]: second}
    assert _active_admins(app) == set(ids)
    a, b = ids
    targets = (b, a) if who_demotes_whom == "each other" else (a, b)

    def demote(session: Session, target: int) -> Callable[[], requests.Response]:
        url = f"{base_url}/api/v1/users/{target}"
        return lambda: requests.patch(
            url, headers=session.headers, json={"role": "viewer"}, timeout=60
        )

    responses = all_at_once([demote(first, targets[0]), demote(second, targets[1])])
    outcomes = sorted((r.status_code, r.json().get("error", {}).get("code")) for r in responses)
    # The loser is told it would remove the last admin; or, demoted by the other one first,
    # that its token is no longer an admin's. Never both 200, never a 5xx.
    assert outcomes[0] == (200, None), outcomes
    assert outcomes[1] in ((409, "last_admin"), (401, "invalid_token")), outcomes
    if who_demotes_whom == "themselves":
        assert outcomes[1] == (409, "last_admin"), outcomes
    (survivor,) = _active_admins(app)

    # Back to one admin, the module's own, for the next case.
    demoted = a if survivor == b else b
    promoted = client.patch(
        f"/api/v1/users/{demoted}", headers=ids[survivor].headers, json={"role": "admin"}
    )
    assert promoted.status_code == 200, promoted.get_json()
    removed = client.delete(f"/api/v1/users/{b}", headers=login_as("admin").headers)
    assert removed.status_code == 204, removed.get_json()
    assert _active_admins(app) == {a}
