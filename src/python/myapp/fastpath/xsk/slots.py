"""Fixed-size UMEM frames handed out and taken back: a stack of free frame addresses."""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt


class SlotPoolError(RuntimeError):
    """A frame was released twice or does not belong to the pool."""


class SlotPool:
    """`count` frames of `size` bytes; acquire() hands out up to n, release() takes them back.

    Asking for more than is free hands out what there is and counts an exhaustion. Numpy arrays
    in and out so the AF_XDP drain moves whole batches without a Python loop.
    """

    def __init__(self, count: int, size: int) -> None:
        self.count = count
        self.size = size
        self._free = np.arange(count, dtype=np.uint64) * np.uint64(size)
        self._top = count
        self._out = np.zeros(count, dtype=bool)  # which frames are handed out
        self.exhausted = 0
        self._lock = threading.Lock()

    @property
    def free(self) -> int:
        return self._top

    @property
    def in_use(self) -> int:
        return self.count - self._top

    def acquire(self, n: int) -> npt.NDArray[np.uint64]:
        with self._lock:
            if n > self._top:
                self.exhausted += 1
                n = self._top
            out = self._free[self._top - n : self._top].copy()
            self._top -= n
            self._out[(out // np.uint64(self.size)).astype(np.intp)] = True
            return out

    def release(self, addrs: npt.NDArray[np.uint64]) -> None:
        if not len(addrs):
            return
        with self._lock:
            index = (addrs // np.uint64(self.size)).astype(np.intp)
            if (
                np.any(addrs % np.uint64(self.size))
                or np.any(index >= self.count)
                or not np.all(self._out[index])
                or len(np.unique(index)) != len(index)
            ):
                raise SlotPoolError("released a frame that is not handed out by this pool")
            self._out[index] = False
            self._free[self._top : self._top + len(addrs)] = addrs
            self._top += len(addrs)
