"""Fast-path agent entry point: wire the agent, gRPC and HTTP, then wait for SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from myapp.fastpath.agent import Agent, PrivilegeError
from myapp.fastpath.config import Config, ConfigError
from myapp.fastpath.control.auth import server_credentials
from myapp.fastpath.control.server import build_server
from myapp.fastpath.control.service import FastPathService
from myapp.fastpath.loader.attach import AttachError
from myapp.fastpath.loader.libbpf import BpfError
from myapp.fastpath.metrics import build_http_server

log = logging.getLogger("myapp.fastpath")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = Config.from_env()
        # Bad TLS files are found before anything is attached.
        credentials = server_credentials(config) if config.tls else None
        agent = Agent.start(config)
    except (ConfigError, PrivilegeError, AttachError, BpfError) as err:
        print(f"fastpath: {err}", file=sys.stderr)
        sys.exit(2)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        control = build_server(config, [FastPathService(agent, stopping)], credentials)
        http = build_http_server(config, agent)
    except BaseException:
        agent.close()
        raise
    log.info(
        "attached to %s (%s), maps %s under %s, gRPC :%d, HTTP :%d, control port %s",
        ",".join(f"{i.name}/{i.mode}" for i in agent.interfaces()),
        "adopted" if agent.datapath.adopted else "created",
        len(agent.table.rules),
        config.bpffs,
        control.port,
        http.server_address[1],
        "mutual TLS" if config.tls else "plaintext (loopback only)",
    )
    # With a timeout: a signal the kernel delivers to one of gRPC's threads does not interrupt
    # the main thread's wait, whose Python handler then runs only at its next wake-up (an
    # untimed wait could sleep through SIGTERM for good).
    while not stopping.wait(0.5):
        pass
    log.info(
        "stopping: %s",
        "detaching" if config.detach_on_exit else "the program stays attached for the next agent",
    )
    control.stop(grace=5)
    http.shutdown()
    agent.close()


if __name__ == "__main__":
    main()
