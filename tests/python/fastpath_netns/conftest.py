"""Fixtures of the veth tests: the lab (receiving end in this netns, where the agent runs), a
private bpffs pin directory, and UDP receivers on the receiving end."""

from __future__ import annotations

import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from myapp.fastpath.netlab import VethLab
from myapp.fastpath.testsupport import require_root

PORT = 9


@pytest.fixture
def lab() -> Iterator[VethLab]:
    require_root("network namespaces and XDP")
    with VethLab(receiver_netns=False) as veth:
        yield veth


@pytest.fixture
def pins() -> Iterator[Path]:
    path = Path(f"/sys/fs/bpf/fastpath-test-{uuid.uuid4().hex[:12]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _receiver(family: int, addr: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((addr, PORT))
    sock.settimeout(0.5)
    return sock


@pytest.fixture
def receiver(lab: VethLab) -> Iterator[socket.socket]:
    sock = _receiver(socket.AF_INET, lab.rx_addr)
    yield sock
    sock.close()


@pytest.fixture
def receiver6(lab: VethLab) -> Iterator[socket.socket]:
    sock = _receiver(socket.AF_INET6, lab.rx_addr6)
    yield sock
    sock.close()
