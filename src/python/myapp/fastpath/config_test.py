"""Configuration comes from the environment; bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from myapp.fastpath.config import Config, ConfigError
from myapp.fastpath.shared import Policy


def test_defaults_and_overrides() -> None:
    cfg = Config.from_env({"FASTPATH_INTERFACES": "eth0, eth1", "FASTPATH_BIND": "127.0.0.1"})
    assert cfg.interfaces == ("eth0", "eth1")
    assert (cfg.mode, cfg.grpc_port, cfg.http_port) == ("auto", 50051, 8080)
    assert cfg.bpffs == Path("/sys/fs/bpf/myapp-fastpath")
    assert cfg.default_policy is None and cfg.xsk_queues == ()
    cfg = Config.from_env(
        {
            "FASTPATH_INTERFACES": "veth0",
            "FASTPATH_BIND": "::1",
            "FASTPATH_MODE": "GENERIC",
            "FASTPATH_BPFFS": "/sys/fs/bpf/x",
            "FASTPATH_GRPC_PORT": "0",
            "FASTPATH_DEFAULT_POLICY": "deny",
            "FASTPATH_XSK_QUEUES": "1,0",
            "FASTPATH_DROP_MALFORMED": "true",
            "FASTPATH_PROTECTED_PREFIXES": "10.0.0.0/8, fd00::/8",
        }
    )
    assert (cfg.mode, cfg.grpc_port, cfg.default_policy) == ("generic", 0, Policy.DENY)
    assert [str(n) for n in cfg.protected_prefixes] == ["10.0.0.0/8", "fd00::/8"]
    assert cfg.xsk_queues == (0, 1) and cfg.drop_malformed


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "FASTPATH_INTERFACES"),
        ({"FASTPATH_MODE": "turbo"}, "FASTPATH_MODE"),
        ({"FASTPATH_BPFFS": "relative/dir"}, "FASTPATH_BPFFS"),
        ({"FASTPATH_GRPC_PORT": "70000"}, "FASTPATH_GRPC_PORT"),
        ({"FASTPATH_HTTP_PORT": "http"}, "FASTPATH_HTTP_PORT"),
        ({"FASTPATH_DEFAULT_POLICY": "maybe"}, "FASTPATH_DEFAULT_POLICY"),
        ({"FASTPATH_XSK_QUEUES": "a"}, "FASTPATH_XSK_QUEUES"),
        ({"FASTPATH_XSK_FRAMES": "1000"}, "FASTPATH_XSK_FRAMES"),
        ({"FASTPATH_DROP_MALFORMED": "perhaps"}, "FASTPATH_DROP_MALFORMED"),
        ({"FASTPATH_PROTECTED_PREFIXES": "10.0.0.1"}, "FASTPATH_PROTECTED_PREFIXES"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    base = {"FASTPATH_BIND": "127.0.0.1"}
    if named != "FASTPATH_INTERFACES":
        base["FASTPATH_INTERFACES"] = "eth0"
    with pytest.raises(ConfigError, match=named):
        Config.from_env({**base, **env})
