"""A writer client of the agent, run as a process of its own started inside the sending
network namespace (`run_client`), so that its gRPC connection really crosses the veth: gRPC
opens its sockets on threads of its own, which a per-thread namespace switch would not reach.

python -m fastpath_netns.netns_client HOST:PORT TLS_DIR STEP  ->  prints a JSON result; exit 1
with the gRPC status when a call fails. STEP: lockdown (0.0.0.0/0 and ::/0 drop rules and a
DENY default) or restore (list, delete every rule, ALLOW).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc

from fastpath.v1 import fastpath_pb2 as pb
from fastpath.v1 import fastpath_pb2_grpc as pb_grpc

SERVER_NAME = "fastpath.myapp-fastpath.svc"
DEADLINE = 5.0


def _stub(target: str, tls_dir: Path) -> pb_grpc.FastPathControlStub:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(tls_dir / "ca.crt").read_bytes(),
        private_key=(tls_dir / "tls.key").read_bytes(),
        certificate_chain=(tls_dir / "tls.crt").read_bytes(),
    )
    channel = grpc.secure_channel(
        target, credentials, options=[("grpc.ssl_target_name_override", SERVER_NAME)]
    )
    return pb_grpc.FastPathControlStub(channel)


def lockdown(stub: pb_grpc.FastPathControlStub) -> dict[str, object]:
    drop_all = [
        pb.Rule(id=1, revision=1, source_cidr="0.0.0.0/0", action=pb.ACTION_DROP, enabled=True),
        pb.Rule(id=2, revision=1, source_cidr="::/0", action=pb.ACTION_DROP, enabled=True),
    ]
    applied = stub.ApplyRules(pb.ApplyRulesRequest(rules=drop_all), timeout=DEADLINE).applied
    stub.SetDefaultPolicy(pb.SetDefaultPolicyRequest(policy=pb.POLICY_DENY), timeout=DEADLINE)
    return {"applied": applied}


def restore(stub: pb_grpc.FastPathControlStub) -> dict[str, object]:
    listed = stub.ListRules(pb.ListRulesRequest(), timeout=DEADLINE).rules
    refs = [pb.RuleRef(id=r.id, revision=r.revision) for r in listed]
    deleted = stub.DeleteRules(pb.DeleteRulesRequest(rules=refs), timeout=DEADLINE).deleted
    stub.SetDefaultPolicy(pb.SetDefaultPolicyRequest(policy=pb.POLICY_ALLOW), timeout=DEADLINE)
    return {"listed": [r.source_cidr for r in listed], "deleted": deleted}


def run_client(netns: str, target: str, tls_dir: Path, step: str) -> tuple[int, Any]:
    """(exit code, JSON result) of this module run in network namespace `netns`."""

    def enter() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns")

    done = subprocess.run(
        [sys.executable, "-m", "fastpath_netns.netns_client", target, str(tls_dir), step],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        preexec_fn=enter,
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
    stub = _stub(target, Path(tls_dir))
    try:
        result = {"lockdown": lockdown, "restore": restore}[step](stub)
    except grpc.RpcError as err:
        print(json.dumps({"code": err.code().name, "details": err.details()}))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
