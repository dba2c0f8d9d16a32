"""Talking to an API server started as a separate process: the smoke test and `make bench-api`.

Standard library only: `scripts/bench-api.py` runs on the system python3 and imports this file
from the source tree (``tests/python`` on ``sys.path``), while the smoke test imports it in its
Pants sandbox.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

_LISTENING = re.compile(rb"Listening at: http://127\.0\.0\.1:(\d+)")


class ServerDidNotStart(RuntimeError):
    """gunicorn exited, or logged no listening address in time; the message holds its log."""


def wait_for_port(server: subprocess.Popen[bytes], log_path: Path, timeout: float = 120) -> int:
    """The port gunicorn bound: it binds 127.0.0.1:0 and logs "Listening at: ...:PORT"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _LISTENING.search(log_path.read_bytes())
        if found:
            return int(found.group(1))
        if server.poll() is not None:
            break
        time.sleep(0.1)
    raise ServerDidNotStart(
        f"server did not start; see {log_path}:\n{log_path.read_text()[-3000:]}"
    )


def wait_until_answering(
    server: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float = 120
) -> Answer:
    """The first answer from `url`: the master listens before its workers can answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(url)
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise ServerDidNotStart(
                    f"server did not answer; see {log_path}:\n{log_path.read_text()[-3000:]}"
                ) from None
            time.sleep(0.1)


def stop(server: subprocess.Popen[bytes], timeout: float = 30) -> int:
    """SIGTERM, then the exit code; killed and an error if it outlives `timeout`."""
    server.send_signal(signal.SIGTERM)
    try:
        return server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise RuntimeError(f"server did not stop within {timeout:g} s of SIGTERM") from None


class Answer(NamedTuple):
    status: int
    body: Any  # parsed JSON for a JSON response, else the text
    headers: dict[str, str]


def call(
    url: str, method: str = "GET", body: Any = None, token: str | None = None, timeout: float = 60
) -> Answer:
    """One JSON request; an HTTP error status is an `Answer` too, not an exception."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - local URL
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return _answer(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return _answer(exc.code, exc.read(), dict(exc.headers))


def _answer(status: int, raw: bytes, headers: dict[str, str]) -> Answer:
    is_json = headers.get("Content-Type", "").startswith("application/json")
    body = json.loads(raw) if raw and is_json else raw.decode(errors="replace")
    return Answer(status, body, headers)
