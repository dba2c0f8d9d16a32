"""A real webhook receiver on loopback for the connector's tests."""

from __future__ import annotations

import contextlib
import ipaddress
import queue
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from myapp.connector.config import Webhook

# Test receivers listen on loopback, which the egress rules refuse unless allowed.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers with the scripted (status, headers) in order, then 200; records every request."""

    url: str
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: queue.Queue[Received] = field(default_factory=queue.Queue)
    server_names: list[str | None] = field(default_factory=list)  # SNI of each TLS handshake

    def next(self, timeout: float = 10.0) -> Received:
        return self.requests.get(timeout=timeout)

    def webhook(self, secret: str, name: str = "receiver", path: str = "/hook") -> Webhook:
        """This receiver as a configured webhook (at `path`) signed with `secret`."""
        return Webhook(name, self.url.replace("/hook", path), secret)


@contextlib.contextmanager
def receiving(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A receiver on an ephemeral loopback port (HTTPS with `tls`); it records requests of every
    method (a redirected POST may come back as a GET) and the TLS server names asked for."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, headers = state.script.pop(0) if state.script else (200, {})
            # Recorded before answering: a sender that got its answer may count on it being here.
            state.requests.put(Received(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_HEAD = do_POST  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    if tls is not None:

        def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            state.server_names.append(name)

        tls.sni_callback = record_sni
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        state.url = state.url.replace("http:", "https:")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as state:
        yield state
