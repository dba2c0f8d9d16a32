"""Rules overlapping FASTPATH_PROTECTED_PREFIXES: refused (422 naming the field and the prefix),
unless an admin overrides (a maintainer's override is a 403); overrides are audited."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from myapp.api.conftest import Session, make_config, running_app
from myapp.api.testdb import TestDatabase
from myapp.common.prefixes import parse_prefixes


@pytest.fixture(scope="module")
def app(backend: TestDatabase) -> Iterator[Flask]:
    protected = parse_prefixes("10.0.0.0/8,fd00::/8")
    with running_app(make_config(backend, fastpath_protected_prefixes=protected)) as application:
        yield application


def _create(client: FlaskClient, session: Session, cidr: str, **extra: Any) -> Any:
    body = {"name": f"r {cidr}", "source_cidr": cidr, "action": "drop", **extra}
    return client.post("/api/v1/rules", headers=session.headers, json=body)


def _audit(client: FlaskClient, admin: Session, rule_id: int) -> list[dict[str, Any]]:
    query = f"/api/v1/audit?object_type=rule&q={rule_id}&sort=id"
    items = client.get(query, headers=admin.headers).get_json()["items"]
    return [e for e in items if e["object_id"] == str(rule_id)]  # q also matches 10, 11...


@pytest.mark.parametrize(
    ("cidr", "prefix"),
    [
        ("0.0.0.0/0", "10.0.0.0/8"),  # covers it
        ("10.20.0.0/16", "10.0.0.0/8"),  # lies inside
        ("::/0", "fd00::/8"),
        ("fd00:1::/32", "fd00::/8"),
    ],
)
def test_overlapping_rules_are_refused_naming_field_and_prefix(
    client: FlaskClient, login_as: Callable[[str], Session], cidr: str, prefix: str
) -> None:
    for role in ("maintainer", "admin"):
        response = _create(client, login_as(role), cidr)
        assert response.status_code == 422, response.get_json()
        error = response.get_json()["error"]
        assert (
            error["message"]
            == f"Rule 'r {cidr}': source_cidr {cidr} overlaps the protected prefix {prefix}"
        )
        assert prefix in error["details"]["fields"]["source_cidr"]
        assert '"override": true' in error["details"]["fields"]["source_cidr"]
        assert error["details"]["protected_prefix"] == prefix


def test_disjoint_rules_need_no_override(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    assert _create(client, login_as("maintainer"), "11.0.0.0/8").status_code == 201
    assert _create(client, login_as("maintainer"), "2001:db8::/32").status_code == 201


def test_only_an_admin_may_override_and_it_is_audited(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    maintainer, admin = login_as("maintainer"), login_as("admin")
    refused = _create(client, maintainer, "0.0.0.0/0", override=True)
    assert refused.status_code == 403
    assert "Only an admin may override the protected prefix 10.0.0.0/8" in (
        refused.get_json()["error"]["message"]
    )
    created = _create(client, admin, "0.0.0.0/0", override=True)
    assert created.status_code == 201, created.get_json()
    rule = created.get_json()
    assert "override" not in rule
    entries = _audit(client, admin, rule["id"])
    assert [(e["action"], e["details"].get("override")) for e in entries] == [
        ("rule.create", {"protected_prefix": "10.0.0.0/8"})
    ]

    # A rule on a protected range stays an admin's: a maintainer's edit is refused even when it
    # does not touch the prefix.
    path = f"/api/v1/rules/{rule['id']}"
    rename = {"name": "renamed", "revision": rule["revision"]}
    response = client.patch(path, headers=maintainer.headers, json=rename)
    assert response.status_code == 422
    response = client.patch(path, headers=maintainer.headers, json={**rename, "override": True})
    assert response.status_code == 403
    response = client.patch(path, headers=admin.headers, json={**rename, "override": True})
    assert response.status_code == 200, response.get_json()
    assert _audit(client, admin, rule["id"])[-1]["details"]["override"] == {
        "protected_prefix": "10.0.0.0/8"
    }


def test_an_update_onto_a_protected_prefix_is_refused(
    client: FlaskClient, login_as: Callable[[str], Session]
) -> None:
    maintainer = login_as("maintainer")
    rule = _create(client, maintainer, "172.16.0.0/12").get_json()
    path = f"/api/v1/rules/{rule['id']}"
    body = {"name": "moved", "source_cidr": "10.9.0.0/16", "action": "drop"}
    response = client.put(path, headers={**maintainer.headers, "If-Match": '"1"'}, json=body)
    assert response.status_code == 422
    assert response.get_json()["error"]["details"]["protected_prefix"] == "10.0.0.0/8"
    assert client.get(path, headers=maintainer.headers).get_json()["source_cidr"] == "172.16.0.0/12"
