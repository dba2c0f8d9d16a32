"""Smoke test of the packaged API: start the `api` PEX (gunicorn) on SQLite in a temporary
directory, check health, readiness, login, a users call and a rules call, stop it.

Used by `make smoke-test` (``python3 -m api_smoke.smoke`` with tests/python on the path; prints
each check) and by smoke_test.py under `pants test`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from api_smoke.served import ServerDidNotStart, call, stop, wait_for_port, wait_until_answering

ADMIN_PASSWORD = "smoke-admin-password"  # noqa: S105 - a throw-away instance


def raw_request(base: str, raw: bytes) -> tuple[int, bytes, dict[str, str]]:
    """Send `raw` bytes as they are (requests a client library would refuse to write); the
    answer's status, body and lower-cased headers."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}
    return int(status_line.split()[1]), body, headers


def run_smoke(pex: Path, say: Any = print) -> None:
    """Raise AssertionError on the first failed check; `say` reports each passed one."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="myapp-smoke-") as tmp:
        env = {
            **os.environ,
            "APP_ENV": "production",
            "DATA_DIR": tmp,
            "JWT_SECRET": uuid.uuid4().hex * 2,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
            "BCRYPT_ROUNDS": "12",
            "API_BIND": "127.0.0.1:0",  # the kernel picks a free port: no race with others
            "WEB_CONCURRENCY": "2",
        }
        env.pop("DATABASE_URL", None)
        env.pop("DB_TYPE", None)
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen([sys.executable, str(pex)], env=env, stdout=log, stderr=log)
        try:
            base = f"http://127.0.0.1:{wait_for_port(server, log_path)}"
            status, body, headers = wait_until_answering(server, f"{base}/healthz", log_path)
            assert status == 200 and body == {"status": "ok"}, (status, body)
            assert headers.get("X-Request-ID"), headers
            say(f"ok  GET /healthz -> 200 {body} (server up in {time.monotonic() - started:.1f} s)")
            status, body, _ = call(f"{base}/readyz")
            assert status == 200, (status, body)
            say("ok  GET /readyz -> 200 (SQLite reachable)")
            status, body, headers = raw_request(
                base, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n"
            )
            assert status == 431 and headers.get("content-type") == "application/json", headers
            assert json.loads(body)["error"]["code"] == "request_header_fields_too_large", body
            say("ok  an oversized header -> 431 from gunicorn itself, in the API's JSON shape")
            status, body, _ = call(
                f"{base}/api/v1/auth/login",
                "POST",
                {"email": "admin@example.com", "password": "wrong password!"},
            )
            assert status == 401 and body["error"]["code"] == "invalid_credentials", body
            say("ok  POST /api/v1/auth/login with a wrong password -> 401 invalid_credentials")
            status, body, _ = call(
                f"{base}/api/v1/auth/login",
                "POST",
                {"email": "admin@example.com", "password": ADMIN_PASSWORD},
            )
            assert status == 200 and body["user"]["role"] == "admin", (status, body)
            token = body["access_token"]
            say("ok  POST /api/v1/auth/login as the ADMIN_PASSWORD admin -> 200 with tokens")
            status, body, _ = call(f"{base}/api/v1/users", token=token)
            assert status == 200 and body["total"] == 1, (status, body)
            say(f"ok  GET /api/v1/users -> 200, total {body['total']}")
            rule = {"name": "smoke", "source_cidr": "203.0.113.0/24", "action": "drop"}
            status, body, headers = call(f"{base}/api/v1/rules", "POST", rule, token)
            assert status == 201 and headers.get("ETag") == '"1"', (status, body)
            say(f"ok  POST /api/v1/rules -> 201, id {body['id']}, ETag {headers['ETag']}")
            status, body, _ = call(f"{base}/api/v1/rules", token=token)
            assert status == 200 and body["total"] == 1, (status, body)
            say("ok  GET /api/v1/rules -> 200, the rule is listed")
            status, text, _ = call(f"{base}/metrics")
            assert status == 200 and 'route="/api/v1/rules"' in text, text[:500]
            say("ok  GET /metrics -> 200, request counters of both workers aggregated")
            lines = [
                json.loads(line)
                for line in log_path.read_text().splitlines()
                if line.startswith("{")
            ]
            access = [line for line in lines if line.get("path") == "/api/v1/rules"]
            assert access and all(len(line.get("request_id", "")) == 32 for line in access), lines[
                -3:
            ]
            say("ok  server log is JSON lines with request ids")
        finally:
            exit_code = stop(server)
        say(
            f"ok  server stopped (exit {exit_code}); smoke test took "
            f"{time.monotonic() - started:.1f} s"
        )


def main() -> None:
    pex = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/src.python.myapp.api/api.pex")
    try:
        run_smoke(pex)
    except (AssertionError, ServerDidNotStart) as exc:
        sys.exit(f"smoke-test FAILED: {exc}")
    print("smoke-test: all checks passed")


if __name__ == "__main__":
    main()
