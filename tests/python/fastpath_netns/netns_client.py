"""A writer client of the agent, run as a process of its own started inside the sending
network namespace (`run_client`), so that its gRPC connection really crosses the veth: gRPC
opens its sockets on threads of its own, which a per-thread namespace switch would not reach.

python -m fastpath_netns.netns_client HOST:PORT TLS_DIR STEP  ->  prints a JSON result; exit 1
with the gRPC status when a call fails. STEP: lockdown (the API's client pushes 0.0.0.0/0 and
::/0 drop rules, as after an admin's override, and a DENY default is set) or restore (the API's
client reads the status and syncs an empty rule set; the default goes back to ALLOW).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc

from fastpath.v1 import fastpath_pb2 as pb
from fastpath.v1 import fastpath_pb2_grpc as pb_grpc
from myapp.api.fastpath.client import ChannelCredentials, FastPathClient, FastPathError

SERVER_NAME = "fastpath.myapp-fastpath.svc"
DEADLINE = 5.0


class Writer:
    """The API's own client of the agent, plus a stub for SetDefaultPolicy (which the API does
    not call: the default is the agent's setting)."""

    def __init__(self, target: str, tls_dir: Path) -> None:
        tls = ChannelCredentials.from_files(
            tls_dir / "ca.crt", tls_dir / "tls.crt", tls_dir / "tls.key", SERVER_NAME
        )
        self.api = FastPathClient(target, timeout=DEADLINE, tls=tls)
        self.stub = pb_grpc.FastPathControlStub(tls.channel(target))

    def policy(self, policy: int) -> None:
        request = pb.SetDefaultPolicyRequest(policy=policy)  # type: ignore[arg-type]
        self.stub.SetDefaultPolicy(request, timeout=DEADLINE)


def lockdown(writer: Writer) -> dict[str, object]:
    drop_all = [
        {"id": 1, "revision": 1, "source_cidr": "0.0.0.0/0", "action": "drop"},
        {"id": 2, "revision": 1, "source_cidr": "::/0", "action": "drop"},
    ]
    applied = writer.api.apply(drop_all)
    writer.policy(pb.POLICY_DENY)
    return {"applied": applied}


def restore(writer: Writer) -> dict[str, object]:
    status = writer.api.status()
    synced = writer.api.sync([])
    writer.policy(pb.POLICY_ALLOW)
    return {"found": [status["rule_count"], status["default_policy"]], "removed": synced["removed"]}


def run_client(netns: str, target: str, tls_dir: Path, step: str) -> tuple[int, Any]:
    """(exit code, JSON result) of this module run in network namespace `netns`."""
    # nsenter, not a preexec_fn setns: the test process has gRPC threads running, and forking
    # such a process to run Python code before exec is unsafe (it failed now and then with an
    # "epoll_wait error: Bad file descriptor" and no output).
    done = subprocess.run(
        [
            "nsenter",
            f"--net=/var/run/netns/{netns}",
            "--",
            sys.executable,
            "-m",
            "fastpath_netns.netns_client",
            target,
            str(tls_dir),
            step,
        ],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if not done.stdout.strip():
        raise RuntimeError(f"client {step} printed nothing: {done.stderr}")
    return done.returncode, json.loads(done.stdout)


def main() -> None:
    target, tls_dir, step = sys.argv[1:4]
    writer = Writer(target, Path(tls_dir))
    try:
        result = {"lockdown": lockdown, "restore": restore}[step](writer)
    except grpc.RpcError as err:
        print(json.dumps({"code": err.code().name, "details": err.details()}))
        sys.exit(1)
    except FastPathError as err:
        print(json.dumps({"code": type(err).__name__, "details": str(err)}))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
