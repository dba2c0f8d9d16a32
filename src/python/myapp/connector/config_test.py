from __future__ import annotations

import pytest

from myapp.connector.config import ConfigError, ConnectorConfig

SECRET = "s" * 16
TOKEN = "t" * 16


def test_production_is_the_default() -> None:
    with pytest.raises(ConfigError, match="CONNECTOR_WEBHOOK_SECRET is required"):
        ConnectorConfig.from_env({})


def test_defaults_in_development() -> None:
    cfg = ConnectorConfig.from_env({"APP_ENV": "development"})
    assert (cfg.port, cfg.max_attempts, cfg.webhook_urls, cfg.production) == (5050, 6, (), False)


def test_full_production_configuration() -> None:
    cfg = ConnectorConfig.from_env(
        {
            "APP_ENV": "production",
            "CONNECTOR_WEBHOOK_URLS": "https://a.example/hook, http://b.example:8080/x",
            "CONNECTOR_WEBHOOK_SECRET": SECRET,
            "CONNECTOR_INGEST_TOKEN": TOKEN,
            "CONNECTOR_MAX_ATTEMPTS": "3",
            "CONNECTOR_RETRY_BASE_SECONDS": "0.5",
            "CONNECTOR_TIMEOUT_SECONDS": "2",
        }
    )
    assert cfg.webhook_urls == ("https://a.example/hook", "http://b.example:8080/x")
    assert (cfg.max_attempts, cfg.retry_base_seconds, cfg.timeout_seconds) == (3, 0.5, 2.0)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"APP_ENV": "production", "CONNECTOR_INGEST_TOKEN": TOKEN}, "CONNECTOR_WEBHOOK_SECRET"),
        ({"APP_ENV": "production", "CONNECTOR_WEBHOOK_SECRET": SECRET}, "CONNECTOR_INGEST_TOKEN"),
        ({"CONNECTOR_WEBHOOK_SECRET": "short"}, "CONNECTOR_WEBHOOK_SECRET"),
        (
            {"CONNECTOR_WEBHOOK_URLS": "ftp://x/y", "CONNECTOR_WEBHOOK_SECRET": SECRET},
            "CONNECTOR_WEBHOOK_URLS",
        ),
        ({"CONNECTOR_WEBHOOK_URLS": "https://x/y"}, "CONNECTOR_WEBHOOK_SECRET"),
        ({"CONNECTOR_MAX_ATTEMPTS": "0"}, "CONNECTOR_MAX_ATTEMPTS"),
        ({"CONNECTOR_RETRY_BASE_SECONDS": "soon"}, "CONNECTOR_RETRY_BASE_SECONDS"),
        ({"CONNECTOR_TIMEOUT_SECONDS": "600"}, "CONNECTOR_TIMEOUT_SECONDS"),
        ({"CONNECTOR_PORT": "70000"}, "CONNECTOR_PORT"),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        ConnectorConfig.from_env({"APP_ENV": "development", **env})
