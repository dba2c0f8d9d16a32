"""The AF_XDP consumer: one thread per socket, pinned to the interface's NUMA node, draining
the RX ring in batches into per-source top talkers and a ring buffer of packet summaries."""

from __future__ import annotations

import collections
import ipaddress
import os
import select
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from myapp.fastpath.loader import libbpf
from myapp.fastpath.packets import parse
from myapp.fastpath.xsk import numa
from myapp.fastpath.xsk.socket import XskSocket

BATCH = 1024
# Summaries kept per drained batch (the batch's last packets): the ring shows a steady sample
# without a per-packet Python cost.
SUMMARIES_PER_BATCH = 2


@dataclass(frozen=True)
class Sample:
    timestamp_ns: int
    queue: int
    source: str
    destination: str
    protocol: int
    source_port: int
    destination_port: int
    length: int


class SampleRing:
    """The last `capacity` samples with a sequence number, for any number of readers."""

    def __init__(self, capacity: int) -> None:
        self._items: collections.deque[tuple[int, Sample]] = collections.deque(maxlen=capacity)
        self._seq = 0
        self._cond = threading.Condition()

    def append(self, samples: list[Sample]) -> None:
        with self._cond:
            for sample in samples:
                self._seq += 1
                self._items.append((self._seq, sample))
            self._cond.notify_all()

    @property
    def head(self) -> int:
        return self._seq

    def since(self, seq: int, timeout: float) -> tuple[list[Sample], int]:
        """Samples after `seq` (waiting up to `timeout` for one), and the new position."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq, timeout)
            return [s for n, s in self._items if n > seq], self._seq


@dataclass(frozen=True)
class XskFigures:
    ifname: str
    queue: int
    rx_packets: int
    rx_bytes: int
    rx_dropped: int
    ring_fill: int
    slots_total: int
    slots_free: int
    slot_exhausted: int
    numa_node: int
    umem_node: int
    cpus: tuple[int, ...]


def summarise(frame: bytes, queue: int) -> Sample | None:
    parsed = parse(frame)
    if parsed.error or parsed.src is None:
        return None
    return Sample(
        time.time_ns(),
        queue,
        str(parsed.src),
        str(parsed.dst),
        parsed.proto,
        parsed.sport,
        parsed.dport,
        len(frame),
    )


class XskConsumer:
    def __init__(
        self,
        ifname: str,
        ifindex: int,
        queue: int,
        xsks_map_fd: int,
        samples: SampleRing,
        frames: int = 4096,
    ) -> None:
        self.ifname = ifname
        self.queue = queue
        self.node = numa.interface_numa_node(ifname)
        self.cpus = numa.node_cpus(self.node)
        self.samples = samples
        self.talkers: collections.Counter[str] = collections.Counter()
        self._talkers_lock = threading.Lock()
        self._xsks_fd = xsks_map_fd
        self.sock = XskSocket(ifindex, queue, self.node, frames=frames)
        try:
            libbpf.map_update(
                xsks_map_fd, struct.pack("<I", queue), struct.pack("<I", self.sock.fileno())
            )
        except BaseException:
            self.sock.close()
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"xsk-{ifname}-{queue}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        # Pid 0 is the calling thread: only the consumer moves to the node's CPUs.
        os.sched_setaffinity(0, self.cpus)
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        while not self._stop.is_set():
            if not self.drain_once():
                poller.poll(100)

    def drain_once(self) -> int:
        """Drain one batch: account it, summarise a few, recycle the frames."""
        frames, data, lens = self.sock.receive(BATCH)
        n = len(frames)
        if n:
            try:
                self._account(data, lens)
            finally:
                self.sock.pool.release(frames)
        self.sock.refill()
        return n

    def _account(self, addrs: npt.NDArray[np.uint64], lens: npt.NDArray[np.uint64]) -> None:
        frames = self.sock.frames
        base = addrs.astype(np.intp)
        ethertype = (frames[base + 12].astype(np.uint16) << 8) | frames[base + 13]
        plain_v4 = (ethertype == 0x0800) & (lens >= 34)
        if plain_v4.any():
            at = base[plain_v4] + 26
            src = (
                (frames[at].astype(np.uint32) << 24)
                | (frames[at + 1].astype(np.uint32) << 16)
                | (frames[at + 2].astype(np.uint32) << 8)
                | frames[at + 3]
            )
            values, counts = np.unique(src, return_counts=True)
            seen = {
                str(ipaddress.IPv4Address(value)): count
                for value, count in zip(values.tolist(), counts.tolist(), strict=True)
            }
        else:
            seen = {}
        for i in np.flatnonzero(~plain_v4).tolist():
            parsed = parse(bytes(frames[base[i] : base[i] + int(lens[i])]))
            if parsed.src is not None:
                seen[str(parsed.src)] = seen.get(str(parsed.src), 0) + 1
        with self._talkers_lock:
            self.talkers.update(seen)
        picked = []
        for i in range(max(0, len(addrs) - SUMMARIES_PER_BATCH), len(addrs)):
            sample = summarise(bytes(frames[base[i] : base[i] + int(lens[i])]), self.queue)
            if sample is not None:
                picked.append(sample)
        self.samples.append(picked)

    def top_talkers(self, n: int = 10) -> list[tuple[str, int]]:
        with self._talkers_lock:
            return self.talkers.most_common(n)

    def figures(self) -> XskFigures:
        stats = self.sock.statistics()
        return XskFigures(
            ifname=self.ifname,
            queue=self.queue,
            rx_packets=self.sock.rx_packets,
            rx_bytes=self.sock.rx_bytes,
            rx_dropped=stats["rx_dropped"] + stats["rx_ring_full"],
            ring_fill=self.sock.ring_fill_level(),
            slots_total=self.sock.pool.count,
            slots_free=self.sock.pool.free,
            slot_exhausted=self.sock.pool.exhausted,
            numa_node=self.node,
            umem_node=self.sock.umem_node,
            cpus=tuple(sorted(self.cpus)),
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        libbpf.map_delete(self._xsks_fd, struct.pack("<I", self.queue))
        self.sock.close()
