"""The packaged XDP object loads into the real kernel and runs (BPF_PROG_TEST_RUN)."""

import struct

import pytest

from myapp.fastpath.bpf import object_path
from myapp.fastpath.loader.libbpf import (
    XDP_PASS,
    BpfError,
    BpfObject,
    map_layout,
    map_lookup,
    map_update_batch,
    percpu_array_read,
    percpu_lookup,
    percpu_update,
    possible_cpus,
    prog_test_run,
)
from myapp.fastpath.shared import (
    MAP_COUNTERS,
    MAP_RULE_COUNTERS,
    MAP_RULE_META,
    MAX_RULES,
    PROGRAM_NAME,
    Counter,
)
from myapp.fastpath.testsupport import require_root


def test_packaged_object_loads_and_passes_a_packet() -> None:
    require_root()
    packet = bytes(6) + bytes(6) + b"\x08\x06" + bytes(46)  # ARP: passed as non-IP
    with BpfObject(object_path()) as obj:
        verdict, _ = prog_test_run(obj.program_fd(PROGRAM_NAME), packet)
        key = struct.pack("<I", Counter.NON_IP)
        per_cpu = percpu_lookup(obj.map_fd(MAP_COUNTERS), key, 16)
    assert verdict == XDP_PASS
    packets = sum(struct.unpack("<QQ", value)[0] for value in per_cpu)
    octets = sum(struct.unpack("<QQ", value)[1] for value in per_cpu)
    assert (packets, octets) == (1, len(packet))


def test_batched_percpu_array_read_matches_key_by_key_lookups() -> None:
    require_root()
    cpus = possible_cpus()
    with BpfObject(object_path()) as obj:
        fd = obj.map_fd(MAP_RULE_COUNTERS)
        # A distinct (packets, bytes) on every CPU of indices 0..19999: crosses chunk borders.
        for index in range(0, 20_000, 997):
            values = [struct.pack("<QQ", index * 100 + cpu, index + cpu) for cpu in range(cpus)]
            percpu_update(fd, struct.pack("<I", index), values)
        raw = percpu_array_read(fd, 20_000, 16, chunk=4096)
        assert len(raw) == 20_000 * cpus * 16
        for index in (*range(0, 20_000, 997), 1, 4095, 4096, 19_999):
            expected = b"".join(percpu_lookup(fd, struct.pack("<I", index), 16))
            assert raw[index * cpus * 16 : (index + 1) * cpus * 16] == expected, index
        assert percpu_array_read(fd, 0, 16) == b""
        with pytest.raises(BpfError, match="entries"):
            percpu_array_read(fd, MAX_RULES + 1, 16)


def test_batched_update_writes_every_key_of_a_hash_map() -> None:
    require_root()
    with BpfObject(object_path()) as obj:
        fd = obj.map_fd(MAP_RULE_META)
        size = map_layout(fd).value_size
        keys = [struct.pack("<I", rule_id) for rule_id in range(1, 3001)]
        values = [bytes([rule_id % 251]) * size for rule_id in range(1, 3001)]
        map_update_batch(fd, keys, values)
        assert all(map_lookup(fd, k, size) == v for k, v in zip(keys, values, strict=True))
        with pytest.raises(ValueError, match="as many values"):
            map_update_batch(fd, keys, values[:-1])
        map_update_batch(fd, [], [])  # nothing to write is no call at all
