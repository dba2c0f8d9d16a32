"""The slot pool hands out each frame once, counts exhaustion and refuses foreign frames."""

from __future__ import annotations

import numpy as np
import pytest

from myapp.fastpath.xsk.slots import SlotPool, SlotPoolError


def test_acquire_release_and_exhaustion() -> None:
    pool = SlotPool(8, 2048)
    first = pool.acquire(5)
    assert len(set(first.tolist())) == 5 and pool.free == 3
    second = pool.acquire(5)  # only 3 left
    assert len(second) == 3 and pool.exhausted == 1 and pool.free == 0
    assert not set(first.tolist()) & set(second.tolist())
    pool.release(first)
    pool.release(second)
    assert pool.free == 8 and pool.in_use == 0
    assert sorted(pool.acquire(8).tolist()) == [i * 2048 for i in range(8)]


def test_double_and_foreign_release_are_refused() -> None:
    pool = SlotPool(4, 2048)
    frames = pool.acquire(2)
    pool.release(frames)
    with pytest.raises(SlotPoolError):
        pool.release(frames)
    with pytest.raises(SlotPoolError):
        pool.release(np.array([100], dtype=np.uint64))
    assert pool.free == 4
