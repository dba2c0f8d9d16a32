"""The fastpath agent as a real process (python -m myapp.fastpath.main), for tests."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

import grpc

from fastpath.v1 import fastpath_pb2_grpc as pb_grpc

_STARTED = re.compile(r"gRPC :(\d+), HTTP :(\d+)")


class AgentProcess:
    def __init__(
        self,
        env: dict[str, str],
        preexec: Callable[[], None] | None = None,
    ) -> None:
        full_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "FASTPATH_GRPC_PORT": "0",
            "FASTPATH_HTTP_PORT": "0",
            "FASTPATH_BIND": "127.0.0.1",
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "myapp.fastpath.main"],
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
                self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
                return pb_grpc.FastPathControlStub(self.channel)

    def wait_exit(self, timeout: float = 60) -> tuple[int, str]:
        code = self.proc.wait(timeout)
        while self._queue.get(timeout=timeout) is not None:
            pass
        return code, "".join(self.lines)

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
