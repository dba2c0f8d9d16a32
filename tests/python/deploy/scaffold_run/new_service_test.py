"""A service made by `make new-service` passes its own tests and serves /healthz."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path.cwd()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkout")
    for item in ("k8s", "config", "scripts"):
        shutil.copytree(ROOT / item, root / item)
    shutil.copytree(ROOT / "src" / "python" / "myapp" / "common", root / "src/python/myapp/common")
    (root / "src/python/myapp/__init__.py").write_text("")
    proc = subprocess.run(  # noqa: S603
        [
            sys.executable,
            str(root / "scripts/new-service.py"),
            "--root",
            str(root),
            "--name",
            "ledger",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return root


def test_generated_tests_pass(checkout: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(checkout / "src/python")}
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "src/python/myapp/ledger"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout


def test_generated_server_serves_healthz(checkout: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout / "src/python"),
        "LEDGER_HOST": "127.0.0.1",
        "LEDGER_PORT": str(port),
    }
    server = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "myapp.ledger.main"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                url = f"http://127.0.0.1:{port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310
                    assert json.loads(r.read()) == {"status": "ok"}
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "the scaffolded server did not come up"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert server.returncode == 0, "SIGTERM must stop the server cleanly"
