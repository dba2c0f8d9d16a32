"""Configuration: production refuses defaults and names the variable; URLs map to PyDAL URIs."""

from __future__ import annotations

from pathlib import Path

import pytest

from myapp.api.config import Config, ConfigError, pydal_uri

SECRET = "s" * 40
PRODUCTION = {"APP_ENV": "production", "JWT_SECRET": SECRET, "ADMIN_PASSWORD": "a real admin pw!"}


def test_production_is_the_default() -> None:
    """An image started without APP_ENV must not run on the development secrets."""
    with pytest.raises(ConfigError, match="JWT_SECRET is required when APP_ENV=production"):
        Config.from_env({})
    assert Config.from_env({k: v for k, v in PRODUCTION.items() if k != "APP_ENV"}).production


def test_development_defaults() -> None:
    config = Config.from_env({"APP_ENV": "development"})
    assert config.app_env == "development" and not config.production
    assert config.admin_email == "admin@example.com" and config.admin_password == "admin123456!"
    assert config.db_kind == "sqlite" and config.db_uri.endswith("/data/myapp.db")
    assert config.log_format == "text" and config.fastpath_addr is None


def test_production_is_accepted_with_real_secrets() -> None:
    config = Config.from_env(PRODUCTION)
    assert config.production and config.log_format == "json" and config.bcrypt_rounds == 12


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"JWT_SECRET": None}, "JWT_SECRET"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"BCRYPT_ROUNDS": "10"}, "BCRYPT_ROUNDS"),
        ({"ADMIN_PASSWORD": "admin123456!"}, "ADMIN_PASSWORD"),
        ({"ADMIN_PASSWORD": "short"}, "ADMIN_PASSWORD"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"DATABASE_URL": "oracle://x"}, "DATABASE_URL"),
        ({"DB_TYPE": "postgres"}, "DB_HOST"),
        ({"DB_TYPE": "mssql"}, "DB_TYPE"),
        ({"DB_POOL_SIZE": "lots"}, "DB_POOL_SIZE"),
        ({"FASTPATH_ADDR": "nohostport"}, "FASTPATH_ADDR"),
        ({"FASTPATH_ADDR": "fastpath:50051,"}, "FASTPATH_ADDR"),
        ({"FASTPATH_ADDR": "fastpath:50051;other:1"}, "FASTPATH_ADDR"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"SESSION_MAX_SECONDS": "60"}, "SESSION_MAX_SECONDS"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str | None], variable: str) -> None:
    merged = {k: v for k, v in {**PRODUCTION, **env}.items() if v is not None}
    with pytest.raises(ConfigError, match=variable):
        Config.from_env(merged)


def test_admin_password_may_be_absent_when_an_admin_exists() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "ADMIN_PASSWORD"}
    assert Config.from_env(env).admin_password is None  # start-up checks the database


def test_database_urls() -> None:
    assert pydal_uri("postgres://u:p@db:5432/app") == "postgres:psycopg2://u:p@db:5432/app"
    assert pydal_uri("postgresql://u@db/app") == "postgres:psycopg2://u@db/app"
    assert pydal_uri("mysql://root@127.0.0.1:3306/app").startswith("mysql:pymysql://root@")
    assert pydal_uri("sqlite:////tmp/x.db") == "sqlite:///tmp/x.db"
    assert pydal_uri("sqlite:///rel/x.db") == f"sqlite://{Path('rel/x.db').resolve()}"
    parts = Config.from_env(
        {
            "APP_ENV": "development",
            "DB_TYPE": "mariadb",
            "DB_HOST": "db",
            "DB_USER": "me",
            "DB_PASSWORD": "p@ss/word",
            "DB_NAME": "prod",
        }
    )
    assert parts.database_url == "mysql://me:p%40ss%2Fword@db:3306/prod"
    assert parts.db_kind == "mysql"
