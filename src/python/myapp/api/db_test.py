"""Start-up migration: from many processes at once (replicas without shared PyDAL metadata), and
of an existing database to a newer schema."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from myapp.api.app import prepare_database
from myapp.api.config import Config, ConfigError
from myapp.api.db import (
    _metadata_dir,
    dispose,
    is_transaction_conflict,
    migrate_schema,
    open_db,
    table_metadata_path,
    utcnow,
)
from myapp.api.testdb import TestDatabase

STARTERS = 4


def _start(config: Config) -> str:
    prepare_database(config)
    return "ok"


def test_concurrent_start_up_migrates_once(backend: TestDatabase, tmp_path: Path) -> None:
    base = Config(database_url=backend.url, bcrypt_rounds=4, testing=True)
    if backend.kind == "sqlite":  # the file is shared; metadata directories are not
        base = base.with_overrides(database_url=f"sqlite:///{tmp_path / 'shared.db'}")
    configs = [base.with_overrides(data_dir=tmp_path / f"replica{i}") for i in range(STARTERS)]
    with ProcessPoolExecutor(STARTERS, mp_context=multiprocessing.get_context("fork")) as pool:
        assert list(pool.map(_start, configs)) == ["ok"] * STARTERS
    # A later start with an existing metadata directory (the ALTER path) is a no-op too.
    prepare_database(configs[0])
    db = open_db(configs[0], pool_size=0)
    try:
        assert db(db.app_user.role == "admin").count() == 1
        assert db(db.fw_rule).count() == 0
    finally:
        dispose(db)


def test_production_needs_admin_password_only_without_an_admin(tmp_path: Path) -> None:
    config = Config(
        app_env="production",
        admin_password=None,
        database_url=f"sqlite:///{tmp_path / 'prod.db'}",
        data_dir=tmp_path,
        bcrypt_rounds=4,
        testing=True,
    )
    with pytest.raises(ConfigError, match="ADMIN_PASSWORD"):
        prepare_database(config)
    prepare_database(config.with_overrides(admin_password="first admin password"))
    prepare_database(config)  # an admin exists now: no password needed


def test_a_column_added_in_a_newer_version_reaches_an_existing_database(
    backend: TestDatabase, tmp_path: Path
) -> None:
    config = Config(database_url=backend.url, data_dir=tmp_path, bcrypt_rounds=4, testing=True)
    migrate_schema(config)
    db = open_db(config, pool_size=0)
    try:
        # Turn the database and PyDAL's record of it back into an older version's: no column.
        db.executesql("ALTER TABLE refresh_token DROP COLUMN session_expires_at")
        db.commit()
        record = table_metadata_path(db, config, _metadata_dir(config), "refresh_token")
        fields = pickle.loads(record.read_bytes())  # noqa: S301 - PyDAL's own file
        del fields["session_expires_at"]
        record.write_bytes(pickle.dumps(fields))
    finally:
        dispose(db)
    migrate_schema(config)  # the newer version starts
    db = open_db(config, pool_size=0)
    try:
        rows = db.executesql("SELECT COUNT(session_expires_at) FROM refresh_token")
        assert [tuple(row) for row in rows] == [(0,)]
    finally:
        dispose(db)


def test_a_deadlock_is_recognised_as_a_conflict(backend: TestDatabase, tmp_path: Path) -> None:
    """Two transactions locking two rows in opposite orders: the database aborts one, and
    is_transaction_conflict says so (the API answers 409 "retry" instead of 503 "outage")."""
    if backend.kind == "sqlite":
        pytest.skip("SQLite has one writer at a time: no deadlock to detect")
    config = Config(database_url=backend.url, data_dir=tmp_path, bcrypt_rounds=4, testing=True)
    migrate_schema(config)
    setup = open_db(config, pool_size=0)
    ids = [
        setup.login_failure.insert(throttle_key=f"deadlock:{n}", failures=0, window_end=utcnow())
        for n in (1, 2)
    ]
    setup.commit()
    dispose(setup)
    both_locked_one = threading.Barrier(2)
    errors: list[BaseException] = []

    def lock(first: int, second: int) -> None:
        db = open_db(config, pool_size=0, autocommit=False)
        try:
            table = db.login_failure
            db(table.id == first).update(failures=1)
            both_locked_one.wait(timeout=30)
            db(table.id == second).update(failures=2)
            db.commit()
        except Exception as exc:  # the one the database picks as the victim
            errors.append(exc)
            db.rollback()
        finally:
            dispose(db)

    threads = [threading.Thread(target=lock, args=order) for order in (ids, ids[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(errors) == 1, errors
    assert is_transaction_conflict(errors[0]), repr(errors[0])
    assert not is_transaction_conflict(ValueError("not a database error"))
