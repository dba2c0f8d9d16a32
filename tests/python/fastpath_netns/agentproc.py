"""The fastpath agent as a real process (python -m myapp.fastpath.main), for tests.

It serves mutual TLS as deployed: certificates from myapp.common.pki (a CA of its own per
process, unless the caller passes FASTPATH_TLS_* from `pki.write_dev_certs`), and `channel`
calls it with the API's writer certificate. `plaintext=True` starts it without TLS (loopback).
`LEAST_PRIVILEGE` as `wrapper` runs it with the capabilities of the Kubernetes DaemonSet only.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc

from fastpath.v1 import fastpath_pb2_grpc as pb_grpc
from myapp.common import pki

_STARTED = re.compile(r"gRPC :(\d+), HTTP :(\d+)")
SERVER_NAME = "fastpath.myapp-fastpath.svc"
# The agent container's capabilities (k8s/fastpath): as root, util-linux setpriv leaves exactly
# these in the bounding set, hence in the permitted and effective sets of the exec'd agent.
_DEPLOYED_CAPS = "-all,+bpf,+perfmon,+net_admin"
LEAST_PRIVILEGE = ("setpriv", f"--bounding-set={_DEPLOYED_CAPS}", "--inh-caps=-all", "--")


class AgentProcess:
    def __init__(
        self,
        env: dict[str, str],
        preexec: Callable[[], None] | None = None,
        plaintext: bool = False,
        wrapper: Sequence[str] = (),
    ) -> None:
        self._own_certs: Path | None = None
        tls_env: dict[str, str] = {}
        if not plaintext and "FASTPATH_TLS_CERT" not in env:
            self._own_certs = Path(tempfile.mkdtemp(prefix="fastpath-agent-tls-"))
            server = pki.write_dev_certs(self._own_certs)["fastpath"]
            tls_env = {
                "FASTPATH_TLS_CERT": str(server / "tls.crt"),
                "FASTPATH_TLS_KEY": str(server / "tls.key"),
                "FASTPATH_TLS_CLIENT_CA": str(server / "ca.crt"),
            }
        full_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "FASTPATH_GRPC_PORT": "0",
            "FASTPATH_HTTP_PORT": "0",
            "FASTPATH_BIND": "127.0.0.1",
            **tls_env,
            **env,
        }
        # The writer's certificate sits beside the agent's in write_dev_certs' layout.
        self.client_tls: Path | None = None
        if not plaintext:
            self.client_tls = Path(full_env["FASTPATH_TLS_CERT"]).parent.parent / "flask-backend"
        self.bind = full_env["FASTPATH_BIND"]
        self.proc = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "myapp.fastpath.main"],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=preexec,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.grpc_port = 0
        self.http_port = 0
        self.channel: grpc.Channel | None = None

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_started(self, timeout: float = 60) -> pb_grpc.FastPathControlStub:
        """Block until the agent logs its ports; RuntimeError with its output if it exits."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(
                    f"agent did not start in {timeout}s: {''.join(self.lines)}"
                ) from None
            if line is None:
                raise RuntimeError(f"agent exited ({self.proc.wait()}): {''.join(self.lines)}")
            found = _STARTED.search(line)
            if found:
                self.grpc_port, self.http_port = int(found[1]), int(found[2])
                self.channel = self._channel()
                return pb_grpc.FastPathControlStub(self.channel)

    def _channel(self) -> grpc.Channel:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        target = f"{host}:{self.grpc_port}"
        if self.client_tls is None:
            return grpc.insecure_channel(target)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(self.client_tls / "ca.crt").read_bytes(),
            private_key=(self.client_tls / "tls.key").read_bytes(),
            certificate_chain=(self.client_tls / "tls.crt").read_bytes(),
        )
        return grpc.secure_channel(
            target, credentials, options=[("grpc.ssl_target_name_override", SERVER_NAME)]
        )

    def wait_exit(self, timeout: float = 60) -> tuple[int, str]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(
                f"agent still running after {timeout}s, killed: {''.join(self.lines)}"
            ) from None
        while self._queue.get(timeout=timeout) is not None:
            pass
        self._remove_certs()
        return code, "".join(self.lines)

    def _remove_certs(self) -> None:
        if self._own_certs is not None:
            shutil.rmtree(self._own_certs, ignore_errors=True)
            self._own_certs = None

    def terminate(self, timeout: float = 60) -> tuple[int, str]:
        if self.channel is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._remove_certs()
