"""The API's gunicorn workers share keep-alive connections evenly (real gunicorn, real sockets)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from myapp.api import server as _server_module  # noqa: F401 - run by the server subprocess
from myapp.api.workers import ConnectionTable


def pid_app(_environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """A WSGI app answering with the pid of the worker that served the request."""
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


_SERVER = textwrap.dedent(
    """
    import sys
    from myapp.api.server import GunicornServer, worker_options
    from myapp.api.workers_test import pid_app

    threads = int(sys.argv[1])
    options = {"bind": "127.0.0.1:0", "workers": 2, "keepalive": 30, **worker_options(threads)}
    GunicornServer(lambda: pid_app, options).run()
    """
)


@contextlib.contextmanager
def _gunicorn(tmp_path: Path, threads: int) -> Iterator[int]:
    """The API's gunicorn set-up (2 workers of `threads` threads) serving `pid_app`; its port."""
    log_path = tmp_path / "gunicorn.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(threads)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None or len(re.findall(rb"Booting worker", log_path.read_bytes())) < 2:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            found = re.search(rb"Listening at: http://127\.0\.0\.1:(\d+)", log_path.read_bytes())
            port = int(found.group(1)) if found else None
            time.sleep(0.05)
        time.sleep(0.5)  # both workers in their event loops
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    with _gunicorn(tmp_path, threads=2) as port:
        yield port


def _served_by(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/")
    response = connection.getresponse()
    assert response.status == 200
    return int(response.read())


def test_keep_alive_connections_are_shared_evenly_between_workers(server: int) -> None:
    # Plain gthread leaves this to whichever worker wakes first (measured: 29/3, 32/0 splits).
    connections = [http.client.HTTPConnection("127.0.0.1", server, timeout=10) for _ in range(8)]
    try:
        pids = [_served_by(connection) for connection in connections]
        assert sorted(Counter(pids).values()) == [4, 4], pids
        # The connections stay with their workers.
        assert [_served_by(connection) for connection in connections] == pids
    finally:
        for connection in connections:
            connection.close()


def test_closed_connections_free_their_worker_for_new_ones(server: int) -> None:
    first = [http.client.HTTPConnection("127.0.0.1", server, timeout=10) for _ in range(4)]
    pids = [_served_by(connection) for connection in first]
    assert sorted(Counter(pids).values()) == [2, 2], pids
    for connection in first:
        connection.close()
    time.sleep(1.0)  # the workers notice the closes (generous: CI runs tests side by side)
    second = [http.client.HTTPConnection("127.0.0.1", server, timeout=10) for _ in range(4)]
    try:
        again = [_served_by(connection) for connection in second]
        assert sorted(Counter(again).values()) == [2, 2], again
    finally:
        for connection in second:
            connection.close()


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_an_unbalanced_idle_server_wakes_no_one_and_new_connections_fill_the_gap(
    server: int,
) -> None:
    connections = [http.client.HTTPConnection("127.0.0.1", server, timeout=10) for _ in range(6)]
    pids = [_served_by(connection) for connection in connections]
    emptied, busy = sorted(set(pids))
    for connection, pid in zip(connections, pids, strict=True):
        if pid == emptied:
            connection.close()
    time.sleep(1.0)  # 0 connections on one worker, 3 idle ones on the other
    before = {pid: _cpu_ticks(pid) for pid in (emptied, busy)}
    time.sleep(1.0)
    # A worker spinning on the backlog would burn ~100 ticks a second; idle ones use none.
    assert all(_cpu_ticks(pid) - before[pid] <= 3 for pid in before), before
    newcomers = [http.client.HTTPConnection("127.0.0.1", server, timeout=10) for _ in range(3)]
    try:
        assert [_served_by(connection) for connection in newcomers] == [emptied] * 3
    finally:
        for connection in connections + newcomers:
            connection.close()


def test_table_slots_are_shared_with_forked_workers_and_reused() -> None:
    table = ConnectionTable(slots=3)
    first, second = table.claim(), table.claim()
    assert (first, second) == (0, 1)
    pid = os.fork()
    if pid == 0:  # a "worker": publish 5 connections, leave without pytest's teardown
        table.holds_fewest(second, 5)
        os._exit(0)
    os.waitpid(pid, 0)
    assert table.counts[second] == 5  # seen by the parent: the memory is shared
    assert table.holds_fewest(first, 5)  # a tie still accepts
    assert not table.holds_fewest(first, 6)
    table.release(second)
    assert table.holds_fewest(first, 6)  # the exited worker no longer counts
    assert table.claim() == 1
    assert table.claim() == 2
    with pytest.raises(RuntimeError, match="more than 3 workers"):
        table.claim()


# What gunicorn refuses before the app sees the request, and the status it picks.
_UNPARSABLE = [
    pytest.param(b"GARBAGE\r\n\r\n", 400, "bad_request", id="malformed-request-line"),
    pytest.param(
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        414,
        "uri_too_long",
        id="request-line-too-long",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
        431,
        "request_header_fields_too_large",
        id="header-too-large",
    ),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % index for index in range(150))
        + b"\r\n",
        431,
        "request_header_fields_too_large",
        id="too-many-headers",
    ),
]


@pytest.fixture(scope="module", params=[1, 4], ids=["sync", "gthread"])
def error_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    with _gunicorn(tmp_path_factory.mktemp("errors"), threads=request.param) as port:
        yield port


@pytest.mark.parametrize(("raw", "status", "code"), _UNPARSABLE)
def test_the_servers_own_errors_are_json(
    error_server: int, raw: bytes, status: int, code: str
) -> None:
    with socket.create_connection(("127.0.0.1", error_server), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} "), answer[:300]
    headers = {
        name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])
    }
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"], error
