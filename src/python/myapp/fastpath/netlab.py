"""Network namespaces and veth pairs for the real-traffic tests and the benchmark, plus the
in-kernel traffic generator (BPF_F_TEST_XDP_LIVE_FRAMES). Everything gets a unique name and is
removed on close."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import secrets
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TypeVar

from pyroute2 import IPRoute, NetNS, netns

from myapp.fastpath.bpf import generator_path
from myapp.fastpath.loader import libbpf

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_CLONE_NEWNET = 0x40000000
_IFA_F_NODAD = 0x02
T = TypeVar("T")


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(name: str | None) -> Iterator[None]:
    """Run the calling thread in netns `name` (None: stay), restoring it afterwards."""
    if name is None:
        yield
        return
    old = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    new = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        _setns(new)
        yield
    finally:
        _setns(old)
        os.close(old)
        os.close(new)


def run_in_netns(name: str | None, fn: Callable[[], T]) -> T:
    """fn() on a fresh thread inside netns `name` (keeps the caller's thread where it is)."""
    box: dict[str, T] = {}
    errors: list[BaseException] = []

    def target() -> None:
        try:
            with in_netns(name):
                box["value"] = fn()
        except BaseException as err:  # handed to the caller
            errors.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box["value"]


def socket_in(name: str | None, family: int, kind: int) -> socket.socket:
    """A socket created in netns `name` (a socket stays in the netns it was created in)."""
    return run_in_netns(name, lambda: socket.socket(family, kind))


class VethLab:
    """A veth pair: the receiving end `rx_if` (in netns `rx_ns`, or in the current netns when
    rx_ns is None) and the sending end `tx_if` in its own netns `tx_ns`, on a random /29 out of
    198.18.0.0/15 (the benchmarking range): receiver .1, senders .2 .3 .4; and on a random
    unique-local /64: receiver ::1, senders ::2 ::3."""

    def __init__(self, receiver_netns: bool = True) -> None:
        tag = uuid.uuid4().hex[:8]
        self.tx_ns = f"fptx{tag}"
        self.rx_ns: str | None = f"fprx{tag}" if receiver_netns else None
        self.rx_if = f"fpr{tag}"
        self.tx_if = f"fps{tag}"
        base = int(ipaddress.IPv4Address("198.18.0.0")) + secrets.randbelow(1 << 14) * 8
        self.rx_addr = str(ipaddress.IPv4Address(base + 1))
        self.tx_addrs = [str(ipaddress.IPv4Address(base + i)) for i in (2, 3, 4)]
        net6 = (0xFD << 120) | (secrets.randbits(56) << 64)
        self.rx_addr6 = str(ipaddress.IPv6Address(net6 + 1))
        self.tx_addrs6 = [str(ipaddress.IPv6Address(net6 + i)) for i in (2, 3)]
        self._created: list[str] = []
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        for ns in (self.tx_ns, self.rx_ns):
            if ns is not None:
                netns.create(ns)
                self._created.append(ns)
        with IPRoute() as ipr:
            ipr.link(
                "add",
                ifname=self.rx_if,
                kind="veth",
                peer={"ifname": self.tx_if, "net_ns_fd": self.tx_ns},
            )
            index = ipr.link_lookup(ifname=self.rx_if)[0]
            if self.rx_ns is not None:
                ipr.link("set", index=index, net_ns_fd=self.rx_ns)
        self._configure(self.rx_ns, self.rx_if, [self.rx_addr, self.rx_addr6])
        self._configure(self.tx_ns, self.tx_if, [*self.tx_addrs, *self.tx_addrs6])

    @staticmethod
    def _configure(ns: str | None, ifname: str, addrs: list[str]) -> None:
        ctx = NetNS(ns) if ns is not None else IPRoute()
        with ctx as ipr:
            index = ipr.link_lookup(ifname=ifname)[0]
            for addr in addrs:
                if ":" in addr:
                    # No duplicate address detection: usable at once, not "tentative".
                    ipr.addr("add", index=index, address=addr, prefixlen=64, flags=_IFA_F_NODAD)
                else:
                    ipr.addr("add", index=index, address=addr, prefixlen=29)
            ipr.link("set", index=index, state="up")
            if ns is not None:
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")

    def ifindex(self, side: str) -> int:
        ns, ifname = (self.rx_ns, self.rx_if) if side == "rx" else (self.tx_ns, self.tx_if)
        return run_in_netns(ns, lambda: socket.if_nametoindex(ifname))

    def mac(self, side: str) -> bytes:
        ns, ifname = (self.rx_ns, self.rx_if) if side == "rx" else (self.tx_ns, self.tx_if)
        # sysfs shows the netns it was mounted in, not the thread's: ask netlink.
        with NetNS(ns) if ns is not None else IPRoute() as ipr:
            link = ipr.link("get", index=ipr.link_lookup(ifname=ifname)[0])[0]
            text = link.get_attr("IFLA_ADDRESS")
        return bytes.fromhex(text.replace(":", ""))

    def close(self) -> None:
        # Deleting either end deletes the pair; removing a netns deletes what is left in it.
        with contextlib.suppress(Exception), IPRoute() as ipr:
            found = ipr.link_lookup(ifname=self.rx_if)
            if found:
                ipr.link("del", index=found[0])
        for ns in self._created:
            with contextlib.suppress(Exception):
                netns.remove(ns)
        self._created = []

    def __enter__(self) -> VethLab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Generator:
    """Frames sent from the kernel with BPF_F_TEST_XDP_LIVE_FRAMES out of the tx end of a lab."""

    def __init__(self, lab: VethLab) -> None:
        self.lab = lab
        self.obj = libbpf.BpfObject(generator_path())
        self.program_fd = self.obj.program_fd("fastpath_gen")
        self._config_fd = self.obj.map_fd("gen_config")

    def send(self, frame: bytes, count: int, nsrc: int = 1, base_src: str = "198.18.0.2") -> int:
        """Send `count` copies (sources cycling over nsrc addresses); returns kernel ns."""
        ifindex = self.lab.ifindex("tx")
        config = struct.pack("<IIII", ifindex, nsrc, int(ipaddress.IPv4Address(base_src)), 0)
        libbpf.map_update(self._config_fd, struct.pack("<I", 0), config)

        def run() -> int:
            done = 0
            total_ns = 0
            while done < count:
                chunk = min(count - done, 1 << 20)
                _, ns = libbpf.prog_test_run(
                    self.program_fd,
                    frame,
                    repeat=chunk,
                    flags=libbpf.BPF_F_TEST_XDP_LIVE_FRAMES,
                    batch_size=64,
                )
                total_ns += ns * chunk
                done += chunk
            return total_ns

        return run_in_netns(self.lab.tx_ns, run)

    def close(self) -> None:
        self.obj.close()


def cpu_busy_seconds() -> float:
    """CPU time spent by all CPUs outside idle/iowait since boot (from /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until true; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
