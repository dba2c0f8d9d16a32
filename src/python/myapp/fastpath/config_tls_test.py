"""The control port's TLS settings: all three files or none, and none only on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from myapp.common import pki
from myapp.fastpath.config import TLS_VARIABLES, Config, ConfigError

BASE = {"FASTPATH_INTERFACES": "eth0"}


@pytest.fixture
def tls_env(tmp_path: Path) -> dict[str, str]:
    ca = pki.make_ca()
    directory = pki.write_tls_dir(tmp_path, [ca.cert], pki.agent_certificate(ca))
    return {
        "FASTPATH_TLS_CERT": str(directory / "tls.crt"),
        "FASTPATH_TLS_KEY": str(directory / "tls.key"),
        "FASTPATH_TLS_CLIENT_CA": str(directory / "ca.crt"),
    }


@pytest.mark.parametrize("app_env", ["production", "development", "", None])
def test_a_network_bind_without_tls_refuses_to_start_naming_the_variables(
    app_env: str | None,
) -> None:
    """The agent has no development mode to fall back on: unset APP_ENV (the image's default)
    included, a network bind needs its TLS files."""
    env = {**BASE, "FASTPATH_BIND": "0.0.0.0"}  # noqa: S104
    if app_env is not None:
        env["APP_ENV"] = app_env
    with pytest.raises(ConfigError) as err:
        Config.from_env(env)
    assert all(name in str(err.value) for name in TLS_VARIABLES)
    assert "'0.0.0.0'" in str(err.value)


@pytest.mark.parametrize("bind", ["127.0.0.1", "::1", "localhost", "127.0.0.53"])
def test_plaintext_is_allowed_on_loopback(bind: str) -> None:
    config = Config.from_env({**BASE, "APP_ENV": "production", "FASTPATH_BIND": bind})
    assert not config.tls and not config.grpc_reflection


def test_tls_settings_and_identities(tls_env: dict[str, str]) -> None:
    config = Config.from_env({**BASE, **tls_env, "APP_ENV": "production"})
    assert config.tls and config.tls_client_ca == Path(tls_env["FASTPATH_TLS_CLIENT_CA"])
    assert config.writers == {pki.API_IDENTITY}
    assert config.readers == {pki.MONITORING_IDENTITY}
    config = Config.from_env(
        {
            **BASE,
            **tls_env,
            "FASTPATH_WRITERS": "spiffe://myapp/flask-backend, spiffe://myapp/ops",
            "FASTPATH_READERS": "",
            "FASTPATH_GRPC_REFLECTION": "true",
        }
    )
    assert config.writers == {pki.API_IDENTITY, "spiffe://myapp/ops"}
    assert config.readers == frozenset() and config.grpc_reflection


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"FASTPATH_TLS_KEY": ""}, "FASTPATH_TLS_KEY missing"),
        (
            {"FASTPATH_TLS_CERT": "", "FASTPATH_TLS_CLIENT_CA": ""},
            "FASTPATH_TLS_CERT, FASTPATH_TLS_CLIENT_CA missing",
        ),
        ({"FASTPATH_TLS_CLIENT_CA": "/nonexistent/ca.crt"}, "FASTPATH_TLS_CLIENT_CA: no such file"),
        ({"FASTPATH_WRITERS": "flask-backend"}, "FASTPATH_WRITERS: 'flask-backend' is not a URI"),
        ({"FASTPATH_GRPC_REFLECTION": "sometimes"}, "FASTPATH_GRPC_REFLECTION"),
    ],
)
def test_bad_tls_settings_name_the_variable(
    tls_env: dict[str, str], change: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        Config.from_env({**BASE, **tls_env, "FASTPATH_BIND": "127.0.0.1", **change})
