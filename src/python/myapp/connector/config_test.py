from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from myapp.connector.config import ConfigError, ConnectorConfig, Webhook, redact

TOKEN = "t" * 16
SECRET = "s" * 32


def hooks(*items: dict[str, Any]) -> str:
    return json.dumps(list(items))


PRODUCTION = {"APP_ENV": "production", "CONNECTOR_INGEST_TOKEN": TOKEN}


def test_production_is_the_default() -> None:
    with pytest.raises(ConfigError, match="CONNECTOR_INGEST_TOKEN is required"):
        ConnectorConfig.from_env({})


def test_defaults_in_development() -> None:
    cfg = ConnectorConfig.from_env({"APP_ENV": "development"})
    assert (cfg.port, cfg.max_attempts, cfg.webhooks, cfg.production) == (5050, 6, (), False)
    assert (cfg.allowed_networks, cfg.threads) == ((), 8)


def test_full_production_configuration(tmp_path: Any) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    cfg = ConnectorConfig.from_env(
        {
            **PRODUCTION,
            "CONNECTOR_WEBHOOKS": hooks(
                {"name": "crm", "url": "https://a.example/hook", "secret": SECRET},
                {"name": "siem", "url": "https://b.example:8443/x?k=v", "secret": "x" * 40},
            ),
            "CONNECTOR_ALLOWED_NETWORKS": "10.20.0.0/16, fd00:1::/64",
            "CONNECTOR_CA_BUNDLE": str(bundle),
            "CONNECTOR_MAX_ATTEMPTS": "3",
            "CONNECTOR_RETRY_BASE_SECONDS": "0.5",
            "CONNECTOR_TIMEOUT_SECONDS": "2",
            "CONNECTOR_THREADS": "4",
        }
    )
    assert cfg.webhooks == (
        Webhook("crm", "https://a.example/hook", SECRET),
        Webhook("siem", "https://b.example:8443/x?k=v", "x" * 40),
    )
    assert cfg.allowed_networks == (
        ipaddress.ip_network("10.20.0.0/16"),
        ipaddress.ip_network("fd00:1::/64"),
    )
    assert (cfg.max_attempts, cfg.retry_base_seconds, cfg.timeout_seconds) == (3, 0.5, 2.0)
    assert (cfg.ca_bundle, cfg.threads) == (str(bundle), 4)
    assert SECRET not in repr(cfg)  # secrets stay out of reprs and tracebacks


def test_an_allowed_address_may_be_in_a_url() -> None:
    url = "http://10.1.2.3:8080/hook"
    cfg = ConnectorConfig.from_env(
        {
            "APP_ENV": "development",
            "CONNECTOR_WEBHOOKS": hooks({"name": "lan", "url": url, "secret": "d" * 16}),
            "CONNECTOR_ALLOWED_NETWORKS": "10.1.0.0/16",
        }
    )
    assert [w.url for w in cfg.webhooks] == [url]


def test_development_accepts_http_and_shorter_secrets() -> None:
    cfg = ConnectorConfig.from_env(
        {
            "APP_ENV": "development",
            "CONNECTOR_WEBHOOKS": hooks({"name": "dev", "url": "http://x/y", "secret": "d" * 16}),
        }
    )
    assert cfg.webhooks == (Webhook("dev", "http://x/y", "d" * 16),)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"APP_ENV": "production"}, "CONNECTOR_INGEST_TOKEN is required"),
        ({"CONNECTOR_INGEST_TOKEN": "short"}, "CONNECTOR_INGEST_TOKEN"),
        ({"CONNECTOR_WEBHOOK_URLS": "https://x/y"}, "CONNECTOR_WEBHOOK_URLS is no longer read"),
        ({"CONNECTOR_WEBHOOK_SECRET": SECRET}, "CONNECTOR_WEBHOOK_SECRET is no longer read"),
        ({"CONNECTOR_WEBHOOKS": "not json"}, r"CONNECTOR_WEBHOOKS: Invalid JSON"),
        ({"CONNECTOR_WEBHOOKS": '{"name": "x"}'}, r"CONNECTOR_WEBHOOKS: Input should be"),
        (
            {"CONNECTOR_WEBHOOKS": hooks({"name": "a", "url": "https://x/y"})},
            r"CONNECTOR_WEBHOOKS\[0\]\.secret: Field required",
        ),
        (
            {
                "CONNECTOR_WEBHOOKS": hooks(
                    {"name": "a", "url": "https://x", "secret": SECRET, "x": 1}
                )
            },
            r"CONNECTOR_WEBHOOKS\[0\]\.x: Extra inputs",
        ),
        (
            {"CONNECTOR_WEBHOOKS": hooks({"name": "a b", "url": "https://x", "secret": SECRET})},
            r"CONNECTOR_WEBHOOKS\[0\]\.name",
        ),
        (
            {"CONNECTOR_WEBHOOKS": hooks({"name": "a", "url": "ftp://x/y", "secret": SECRET})},
            "CONNECTOR_WEBHOOKS: webhook a .* needs an http",
        ),
        (
            {"CONNECTOR_WEBHOOKS": hooks({"name": "a", "url": "http://[::1/", "secret": SECRET})},
            "CONNECTOR_WEBHOOKS: webhook a",
        ),
        (
            {"CONNECTOR_WEBHOOKS": hooks({"name": "a", "url": "http://x/", "secret": "short"})},
            "webhook 'a' needs a secret of at least 16 characters",
        ),
        (
            {
                "CONNECTOR_WEBHOOKS": hooks(
                    {"name": "a", "url": "https://x/", "secret": SECRET},
                    {"name": "a", "url": "https://y/", "secret": SECRET + "2"},
                )
            },
            "the name 'a' is used twice",
        ),
        (
            {
                "CONNECTOR_WEBHOOKS": hooks(
                    {"name": "a", "url": "https://x/", "secret": SECRET},
                    {"name": "b", "url": "https://y/", "secret": SECRET},
                )
            },
            "webhooks 'a' and 'b' share a secret",
        ),
        (
            {
                "CONNECTOR_WEBHOOKS": hooks(
                    {"name": "m", "url": "http://169.254.169.254/x", "secret": SECRET}
                )
            },
            r"webhook m \(http://169.254.169.254/x\) points at 169.254.169.254 \(link-local\)",
        ),
        (
            {
                "CONNECTOR_WEBHOOKS": hooks(
                    {"name": "m", "url": "http://[::ffff:10.0.0.1]/", "secret": SECRET}
                )
            },
            r"points at 10.0.0.1 \(private\), which is not in CONNECTOR_ALLOWED_NETWORKS",
        ),
        ({"CONNECTOR_ALLOWED_NETWORKS": "10.0.0.1"}, "CONNECTOR_ALLOWED_NETWORKS"),
        ({"CONNECTOR_ALLOWED_NETWORKS": "10.0.0.1/8"}, "CONNECTOR_ALLOWED_NETWORKS"),
        ({"CONNECTOR_CA_BUNDLE": "/nonexistent/ca.pem"}, "CONNECTOR_CA_BUNDLE"),
        ({"CONNECTOR_MAX_ATTEMPTS": "0"}, "CONNECTOR_MAX_ATTEMPTS"),
        ({"CONNECTOR_RETRY_BASE_SECONDS": "soon"}, "CONNECTOR_RETRY_BASE_SECONDS"),
        ({"CONNECTOR_TIMEOUT_SECONDS": "600"}, "CONNECTOR_TIMEOUT_SECONDS"),
        ({"CONNECTOR_PORT": "70000"}, "CONNECTOR_PORT"),
        ({"CONNECTOR_THREADS": "0"}, "CONNECTOR_THREADS"),
    ],
)
def test_invalid_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        ConnectorConfig.from_env({"APP_ENV": "development", **env})


@pytest.mark.parametrize(
    ("webhook", "named"),
    [
        ({"name": "a", "url": "http://x/y", "secret": SECRET}, r"a \(http://x/y\) needs an https"),
        ({"name": "a", "url": "https://x/y", "secret": "s" * 31}, "at least 32 characters"),
    ],
)
def test_production_requires_https_and_long_secrets(webhook: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        ConnectorConfig.from_env({**PRODUCTION, "CONNECTOR_WEBHOOKS": hooks(webhook)})


def test_errors_do_not_repeat_secrets_or_url_credentials() -> None:
    url = "ftp://bob:pw-in-url@x/y?key=key-in-query"
    with pytest.raises(ConfigError) as info:
        ConnectorConfig.from_env(
            {"APP_ENV": "development", "CONNECTOR_WEBHOOKS": hooks(
                {"name": "a", "url": url, "secret": SECRET}
            )}
        )  # fmt: skip
    assert "pw-in-url" not in str(info.value) and "key-in-query" not in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example/a/b", "https://hooks.example/a/b"),
        (
            "https://u:p@hooks.example:8443/a?token=t#frag",
            "https://***@hooks.example:8443/a?***#***",
        ),
        ("https://token@hooks.example/", "https://***@hooks.example/"),
        ("http://[::1/", "<not a URL>"),
        ("/moved?to=secret", "/moved?***"),  # a relative Location
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown
