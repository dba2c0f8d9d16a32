"""Smoke test of the packaged API: start the `api` PEX (gunicorn) on SQLite in a temporary
directory, check health, readiness, login, a users call and a rules call, stop it.

Used by `make smoke-test` (prints each check) and by smoke_test.py under `pants test`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ADMIN_PASSWORD = "smoke-admin-password"  # noqa: S105 - a throw-away instance


def _wait_for_port(server: subprocess.Popen[bytes], log_path: Path, timeout: float = 90) -> int:
    """The port gunicorn bound (it binds 127.0.0.1:0 and logs "Listening at: ...:PORT")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(rb"Listening at: http://127\.0\.0\.1:(\d+)", log_path.read_bytes())
        if found:
            return int(found.group(1))
        if server.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"server did not start: {log_path.read_text()[-3000:]}")


def _call(
    url: str, method: str = "GET", body: Any = None, token: str | None = None
) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - local URL
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            raw = response.read()
            is_json = response.headers.get("Content-Type", "").startswith("application/json")
            body = json.loads(raw) if raw and is_json else raw.decode()
            return response.status, body, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), dict(exc.headers)


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
            base = f"http://127.0.0.1:{_wait_for_port(server, log_path)}"
            deadline = time.monotonic() + 60
            while True:  # the master is listening; wait for a worker to answer
                try:
                    status, body, headers = _call(f"{base}/healthz")
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(
                            f"server did not answer: {log_path.read_text()[-2000:]}"
                        ) from None
                    time.sleep(0.1)
            assert status == 200 and body == {"status": "ok"}, (status, body)
            assert headers.get("X-Request-ID"), headers
            say(f"ok  GET /healthz -> 200 {body} (server up in {time.monotonic() - started:.1f} s)")
            status, body, _ = _call(f"{base}/readyz")
            assert status == 200, (status, body)
            say("ok  GET /readyz -> 200 (SQLite reachable)")
            status, body, _ = _call(
                f"{base}/api/v1/auth/login",
                "POST",
                {"email": "admin@example.com", "password": "wrong password!"},
            )
            assert status == 401 and body["error"]["code"] == "invalid_credentials", body
            say("ok  POST /api/v1/auth/login with a wrong password -> 401 invalid_credentials")
            status, body, _ = _call(
                f"{base}/api/v1/auth/login",
                "POST",
                {"email": "admin@example.com", "password": ADMIN_PASSWORD},
            )
            assert status == 200 and body["user"]["role"] == "admin", (status, body)
            token = body["access_token"]
            say("ok  POST /api/v1/auth/login as the ADMIN_PASSWORD admin -> 200 with tokens")
            status, body, _ = _call(f"{base}/api/v1/users", token=token)
            assert status == 200 and body["total"] == 1, (status, body)
            say(f"ok  GET /api/v1/users -> 200, total {body['total']}")
            rule = {"name": "smoke", "source_cidr": "203.0.113.0/24", "action": "drop"}
            status, body, headers = _call(f"{base}/api/v1/rules", "POST", rule, token)
            assert status == 201 and headers.get("ETag") == '"1"', (status, body)
            say(f"ok  POST /api/v1/rules -> 201, id {body['id']}, ETag {headers['ETag']}")
            status, body, _ = _call(f"{base}/api/v1/rules", token=token)
            assert status == 200 and body["total"] == 1, (status, body)
            say("ok  GET /api/v1/rules -> 200, the rule is listed")
            status, text, _ = _call(f"{base}/metrics")
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
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                raise AssertionError("server did not stop within 30 s of SIGTERM") from None
        say(
            f"ok  server stopped (exit {server.returncode}); smoke test took "
            f"{time.monotonic() - started:.1f} s"
        )


def main() -> None:
    pex = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/src.python.myapp.api/api.pex")
    try:
        run_smoke(pex)
    except AssertionError as exc:
        sys.exit(f"smoke-test FAILED: {exc}")
    print("smoke-test: all checks passed")


if __name__ == "__main__":
    main()
