"""The connector's entry point: gunicorn (not a development server), stopped gracefully."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from myapp.connector import main as _main_module  # noqa: F401 - run by the subprocess
from myapp.connector.conftest import Receiver

TOKEN = "ingest-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def connector(tmp_path: Path, receiver: Receiver) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    hooks = [{"name": "receiver", "url": receiver.url, "secret": "s" * 32}]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "APP_ENV": "development",
        "CONNECTOR_HOST": "127.0.0.1",
        "CONNECTOR_PORT": str(port),
        "CONNECTOR_WEBHOOKS": json.dumps(hooks),
        "CONNECTOR_ALLOWED_NETWORKS": "127.0.0.0/8",
        "CONNECTOR_INGEST_TOKEN": TOKEN,
        "CONNECTOR_RETRY_BASE_SECONDS": "20",  # a failed attempt waits long: SIGTERM cuts it
    }
    log_path = tmp_path / "connector.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "myapp.connector.main"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        print(log_path.read_text())


def _post_event(base: str) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310 - loopback URL built above
        f"{base}/api/v1/events",
        data=b'{"action": "rule.create", "id": 1}',
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
            return resp.status, resp.headers.get("Server", "")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Server", "")


def test_served_by_gunicorn_and_delivering(
    connector: tuple[subprocess.Popen[bytes], str], receiver: Receiver
) -> None:
    _, base = connector
    status, server = _post_event(base)
    assert status == 200 and server.startswith("gunicorn"), server
    assert receiver.next().headers["X-Myapp-Event"] == "rule.create"


def test_sigterm_ends_retry_waits_then_exits_cleanly(
    connector: tuple[subprocess.Popen[bytes], str], receiver: Receiver
) -> None:
    process, base = connector
    receiver.script = [(503, {})]  # the first attempt fails; the retry would wait 20 s
    answer: list[int] = []
    sender = threading.Thread(target=lambda: answer.append(_post_event(base)[0]))
    sender.start()
    receiver.next()  # the first attempt arrived; the delivery now waits to retry
    time.sleep(0.2)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    sender.join(timeout=15)
    assert answer == [503]  # the sender keeps the event
    assert process.wait(timeout=15) == 0
    assert time.monotonic() - started < 10
