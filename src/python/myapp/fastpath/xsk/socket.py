"""An AF_XDP socket in copy mode, without libxdp: UMEM registration, rings mapped from the
kernel, bind through libc (Python's socket.bind does not know AF_XDP addresses).

Ring memory model: on x86 (TSO) the kernel's acquire/release pairs on producer/consumer need
only program order from us, which ctypes stores into the mapping give.
"""

from __future__ import annotations

import ctypes as C
import mmap
import os
import socket
import struct

import numpy as np
import numpy.typing as npt

from myapp.fastpath.xsk import numa
from myapp.fastpath.xsk.slots import SlotPool

AF_XDP = 44
SOL_XDP = 283
XDP_MMAP_OFFSETS, XDP_RX_RING, XDP_UMEM_REG = 1, 2, 4
XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_STATISTICS = 5, 6, 7
XDP_PGOFF_RX_RING = 0
XDP_UMEM_PGOFF_FILL_RING, XDP_UMEM_PGOFF_COMPLETION_RING = 0x100000000, 0x180000000
XDP_COPY, XDP_USE_NEED_WAKEUP = 2, 8

_libc = C.CDLL("libc.so.6", use_errno=True)
_libc.bind.argtypes = [C.c_int, C.c_void_p, C.c_uint32]


class _Ring:
    """One mmap'd single-producer/single-consumer ring; entries of 8 (fill/completion) or 16
    bytes (rx: addr, len|options)."""

    def __init__(self, fd: int, offsets: tuple[int, ...], pgoff: int, size: int, entry: int):
        producer, consumer, desc, flags = offsets
        self.size = size
        self.mask = size - 1
        self.mm = mmap.mmap(
            fd,
            desc + size * entry,
            flags=mmap.MAP_SHARED | mmap.MAP_POPULATE,
            prot=mmap.PROT_READ | mmap.PROT_WRITE,
            offset=pgoff,
        )
        self.producer = C.c_uint32.from_buffer(self.mm, producer)
        self.consumer = C.c_uint32.from_buffer(self.mm, consumer)
        self.desc: npt.NDArray[np.uint64] = np.frombuffer(
            self.mm, dtype=np.uint64, count=size * entry // 8, offset=desc
        )

    def close(self) -> None:
        del self.producer, self.consumer, self.desc
        self.mm.close()


class XskSocket:
    """AF_XDP socket bound to (ifindex, queue), its UMEM on `node` and carved by a SlotPool."""

    def __init__(
        self,
        ifindex: int,
        queue: int,
        node: int,
        frames: int = 4096,
        frame_size: int = 2048,
    ) -> None:
        self.queue = queue
        self.node = node
        self.pool = SlotPool(frames, frame_size)
        self.sock = socket.socket(AF_XDP, socket.SOCK_RAW, 0)
        self._rings: list[_Ring] = []
        try:
            length = frames * frame_size
            self.umem = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            self._anchor = C.c_char.from_buffer(self.umem)
            address = C.addressof(self._anchor)
            # Bind before the first touch so every page is allocated on the node.
            numa.mbind(address, length, node)
            self.umem.write(bytes(length))
            self.umem_node = numa.page_node(address)
            self.frames: npt.NDArray[np.uint8] = np.frombuffer(self.umem, dtype=np.uint8)
            fd = self.sock.fileno()
            self.sock.setsockopt(
                SOL_XDP, XDP_UMEM_REG, struct.pack("QQIIII", address, length, frame_size, 0, 0, 0)
            )
            ring_size = frames
            for opt in (XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING):
                self.sock.setsockopt(SOL_XDP, opt, struct.pack("I", ring_size))
            offs = struct.unpack("16Q", self.sock.getsockopt(SOL_XDP, XDP_MMAP_OFFSETS, 128))
            self.rx = _Ring(fd, offs[0:4], XDP_PGOFF_RX_RING, ring_size, 16)
            self.fill = _Ring(fd, offs[8:12], XDP_UMEM_PGOFF_FILL_RING, ring_size, 8)
            self.comp = _Ring(fd, offs[12:16], XDP_UMEM_PGOFF_COMPLETION_RING, ring_size, 8)
            self._rings = [self.rx, self.fill, self.comp]
            sxdp = struct.pack("HHIII", AF_XDP, XDP_COPY | XDP_USE_NEED_WAKEUP, ifindex, queue, 0)
            if _libc.bind(fd, C.create_string_buffer(sxdp, len(sxdp)), len(sxdp)) != 0:
                err = C.get_errno()
                raise OSError(err, f"bind AF_XDP to queue {queue}: {os.strerror(err)}")
            self.refill()
        except BaseException:
            self.close()
            raise
        self.rx_packets = 0
        self.rx_bytes = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def refill(self) -> int:
        """Hand free frames to the kernel through the fill ring."""
        ring = self.fill
        prod = ring.producer.value
        room = ring.size - ((prod - ring.consumer.value) & 0xFFFFFFFF)
        want = min(room, self.pool.free)
        if want <= 0:
            return 0
        addrs = self.pool.acquire(want)
        idx = (np.arange(prod, prod + len(addrs), dtype=np.uint64) & np.uint64(ring.mask)).astype(
            np.intp
        )
        ring.desc[idx] = addrs
        ring.producer.value = (prod + len(addrs)) & 0xFFFFFFFF
        return len(addrs)

    def receive(
        self, limit: int
    ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
        """Take up to `limit` received frames off the RX ring: (frames, data addresses, lengths).
        The kernel reports where the packet starts (after its headroom); the frame is that
        address rounded down to the frame size. The caller owns the frames until it releases
        them to `pool`."""
        ring = self.rx
        cons = ring.consumer.value
        avail = (ring.producer.value - cons) & 0xFFFFFFFF
        n = min(avail, limit)
        if not n:
            empty = np.empty(0, dtype=np.uint64)
            return empty, empty, empty
        idx = (np.arange(cons, cons + n, dtype=np.uint64) & np.uint64(ring.mask)).astype(np.intp)
        pairs = ring.desc.reshape(-1, 2)[idx]
        ring.consumer.value = (cons + n) & 0xFFFFFFFF
        data = pairs[:, 0].copy()
        lens = pairs[:, 1] & np.uint64(0xFFFFFFFF)
        frames = data & ~np.uint64(self.pool.size - 1)
        self.rx_packets += n
        self.rx_bytes += int(lens.sum())
        return frames, data, lens

    def statistics(self) -> dict[str, int]:
        values = struct.unpack("6Q", self.sock.getsockopt(SOL_XDP, XDP_STATISTICS, 48))
        names = (
            "rx_dropped",
            "rx_invalid_descs",
            "tx_invalid_descs",
            "rx_ring_full",
            "rx_fill_ring_empty_descs",
            "tx_ring_empty_descs",
        )
        return dict(zip(names, values, strict=True))

    def ring_fill_level(self) -> int:
        return (self.rx.producer.value - self.rx.consumer.value) & 0xFFFFFFFF

    def close(self) -> None:
        for ring in self._rings:
            ring.close()
        self._rings = []
        self.sock.close()
        if hasattr(self, "frames"):
            del self.frames
        if hasattr(self, "_anchor"):
            del self._anchor
        if hasattr(self, "umem"):
            self.umem.close()
