"""The packaged XDP object loads into the real kernel and runs (BPF_PROG_TEST_RUN)."""

import struct

from myapp.fastpath.bpf import object_path
from myapp.fastpath.loader.libbpf import BpfObject, percpu_lookup, prog_test_run

XDP_PASS = 2
COUNTER_PASS = 0


def test_packaged_object_loads_and_passes_a_packet() -> None:
    packet = bytes(6) + bytes(6) + b"\x08\x00" + bytes(46)
    with BpfObject(object_path()) as obj:
        verdict, _ = prog_test_run(obj.program_fd("fastpath_xdp"), packet)
        per_cpu = percpu_lookup(obj.map_fd("fp_counters"), struct.pack("<I", COUNTER_PASS), 16)
    assert verdict == XDP_PASS
    packets = sum(struct.unpack("<QQ", value)[0] for value in per_cpu)
    octets = sum(struct.unpack("<QQ", value)[1] for value in per_cpu)
    assert (packets, octets) == (1, len(packet))
