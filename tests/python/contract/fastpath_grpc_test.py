"""The generated fastpath.v1 stubs carry a real call over a loopback gRPC channel."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from fastpath.v1 import fastpath_pb2, fastpath_pb2_grpc


class _EchoStatus(fastpath_pb2_grpc.FastPathControlServicer):
    def GetStatus(
        self, request: fastpath_pb2.GetStatusRequest, context: grpc.ServicerContext
    ) -> fastpath_pb2.Status:
        return fastpath_pb2.Status(
            default_policy=fastpath_pb2.POLICY_ALLOW, version="contract-test"
        )


@pytest.fixture
def channel() -> Iterator[grpc.Channel]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    fastpath_pb2_grpc.add_FastPathControlServicer_to_server(
        # Only GetStatus on purpose: the others must answer UNIMPLEMENTED (tested below).
        _EchoStatus(),  # type: ignore[abstract]
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as chan:
            yield chan
    finally:
        server.stop(grace=None)


def test_status_round_trip(channel: grpc.Channel) -> None:
    stub = fastpath_pb2_grpc.FastPathControlStub(channel)
    status = stub.GetStatus(fastpath_pb2.GetStatusRequest(), timeout=5)
    assert status.version == "contract-test"
    assert status.default_policy == fastpath_pb2.POLICY_ALLOW


def test_unimplemented_rpc_is_reported(channel: grpc.Channel) -> None:
    stub = fastpath_pb2_grpc.FastPathControlStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        stub.ListRules(fastpath_pb2.ListRulesRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
