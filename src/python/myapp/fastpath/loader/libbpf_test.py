"""The packaged XDP object loads into the real kernel and runs (BPF_PROG_TEST_RUN)."""

import struct

from myapp.fastpath.bpf import object_path
from myapp.fastpath.loader.libbpf import XDP_PASS, BpfObject, percpu_lookup, prog_test_run
from myapp.fastpath.shared import MAP_COUNTERS, PROGRAM_NAME, Counter
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
