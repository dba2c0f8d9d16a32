"""NUMA placement: the node an interface hangs off, its CPUs, and binding memory to it."""

from __future__ import annotations

import ctypes as C
import os
from pathlib import Path

_libc = C.CDLL("libc.so.6", use_errno=True)
_libc.syscall.restype = C.c_long
_libc.sched_getcpu.restype = C.c_int
# x86_64 syscall numbers (glibc has no mbind/get_mempolicy wrappers without libnuma).
_SYS_MBIND, _SYS_GET_MEMPOLICY = 237, 239
MPOL_BIND = 2
_MPOL_F_NODE, _MPOL_F_ADDR = 1 << 0, 1 << 1
_MPOL_MF_STRICT, _MPOL_MF_MOVE = 1 << 0, 1 << 1
_NODES = Path("/sys/devices/system/node")


def _parse_cpulist(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def node_cpus(node: int) -> set[int]:
    """CPUs of `node`; every CPU we may run on when the topology is not exposed."""
    path = _NODES / f"node{node}" / "cpulist"
    if path.exists():
        cpus = _parse_cpulist(path.read_text()) & os.sched_getaffinity(0)
        if cpus:
            return cpus
    return set(os.sched_getaffinity(0))


def local_node() -> int:
    cpu = _libc.sched_getcpu()
    for entry in sorted(_NODES.glob("node[0-9]*")):
        if cpu in _parse_cpulist((entry / "cpulist").read_text()):
            return int(entry.name[4:])
    return 0


def interface_numa_node(ifname: str) -> int:
    """The interface's node from sysfs; the local node when it reports none (-1 or absent)."""
    path = Path("/sys/class/net") / ifname / "device" / "numa_node"
    try:
        node = int(path.read_text())
    except (OSError, ValueError):
        node = -1
    return node if node >= 0 else local_node()


def mbind(address: int, length: int, node: int) -> None:
    """Bind [address, address+length) to `node` (pages not yet touched land there)."""
    mask = C.c_ulong(1 << node)
    rc = _libc.syscall(
        _SYS_MBIND,
        C.c_void_p(address),
        C.c_ulong(length),
        MPOL_BIND,
        C.byref(mask),
        C.c_ulong(C.sizeof(mask) * 8),
        _MPOL_MF_STRICT | _MPOL_MF_MOVE,
    )
    if rc != 0:
        err = C.get_errno()
        raise OSError(err, f"mbind to NUMA node {node}: {os.strerror(err)}")


def page_node(address: int) -> int:
    """The node holding the page at `address` (get_mempolicy MPOL_F_NODE|MPOL_F_ADDR)."""
    node = C.c_int(-1)
    rc = _libc.syscall(
        _SYS_GET_MEMPOLICY,
        C.byref(node),
        None,
        C.c_ulong(0),
        C.c_void_p(address),
        _MPOL_F_NODE | _MPOL_F_ADDR,
    )
    if rc != 0:
        err = C.get_errno()
        raise OSError(err, f"get_mempolicy: {os.strerror(err)}")
    return node.value
