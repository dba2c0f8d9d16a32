"""seed-mock-data adds users of each role, rules and audit entries, once."""

from __future__ import annotations

from flask import Flask

from myapp.api.seed import MOCK_RULES, MOCK_USERS, seed_mock_data


def test_seed_is_idempotent(app: Flask) -> None:
    with app.app_context():
        first = seed_mock_data()
        assert len(first) == len(MOCK_USERS) + len(MOCK_RULES)
        assert seed_mock_data() == []
        db = app.extensions["myapp"].db
        roles = {
            row.role for row in db(db.app_user.email.belongs([u[0] for u in MOCK_USERS])).select()
        }
        assert roles == {"admin", "maintainer", "viewer"}
        assert db(db.fw_rule.created_by == "seed-mock-data").count() == len(MOCK_RULES)
        assert db(db.audit_log.action == "rule.create").count() >= len(MOCK_RULES)
        assert db(db.audit_log.action == "user.create").count() >= len(MOCK_USERS)
