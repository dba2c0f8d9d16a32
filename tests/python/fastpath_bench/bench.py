"""`make bench-fastpath`: what the fast path costs, next to its peers, on this machine.

1. ns/packet of the XDP program through BPF_PROG_TEST_RUN (repeat 1,000,000, median of 5) with
   1, 1,000 and 100,000 prefixes per family, for a passed and a dropped packet, IPv4 and IPv6,
   and xdp-filter (Debian xdp-tools) on the same packets with as many entries.
2. Packets per CPU-second through a veth pair fed by the in-kernel generator
   (BPF_F_TEST_XDP_LIVE_FRAMES): our XDP drop vs no XDP vs nftables (netdev ingress) dropping
   the same source with 1 and 10,000 rules.
3. AF_XDP: packets drained and processed per second of the consumer's CPU.

Needs root. Wall-clock figures are noisy on a shared VM: compare ratios within one run.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pyroute2.ethtool import Ethtool

from myapp.fastpath import packets as P
from myapp.fastpath import shared
from myapp.fastpath.loader import libbpf
from myapp.fastpath.loader.attach import attach, detach
from myapp.fastpath.loader.datapath import Datapath
from myapp.fastpath.netlab import Generator, VethLab, run_in_netns
from myapp.fastpath.rules import RuleSpec, RuleTable, sum_counters, validate
from myapp.fastpath.xsk.consumer import SampleRing, XskConsumer

REPEAT = 1_000_000
RUNS = 5
SIZES = tuple(int(n) for n in os.environ.get("BENCH_SIZES", "1,1000,100000").split(","))
LIVE_SECONDS = 2.0
DROP4, DROP6 = "203.0.113.9", "2001:db9:abcd::9"
PKTS = {
    "v4 pass": P.packet("198.51.100.7", "192.0.2.1"),
    "v4 drop": P.packet(DROP4, "192.0.2.1"),
    "v6 pass": P.packet("2001:db8:1::7", "2001:db8:2::1"),
    "v6 drop": P.packet(DROP6, "2001:db8:2::1"),
}
_AVOID = [
    ipaddress.ip_network(n)
    for n in (
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "198.18.0.0/15",
        "2001:db8::/32",
        "2001:db9::/32",
    )
]


def random_networks(family: int, count: int, rng: random.Random) -> list[str]:
    """Distinct random prefixes (v4 /12../32, v6 /32../128) away from the test addresses."""
    out: set[str] = set()
    while len(out) < count:
        if family == 4:
            length = rng.choice([12, 16, 16, 20, 24, 24, 24, 28, 32, 32])
            net: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.IPv4Network(
                (rng.getrandbits(32) | 0x01000000, length), strict=False
            )
        else:
            length = rng.choice([32, 40, 48, 48, 56, 64, 64, 96, 128])
            net = ipaddress.IPv6Network(
                ((0x2001 << 112) | rng.getrandbits(112), length), strict=False
            )
        if not any(net.overlaps(a) for a in _AVOID if a.version == family):
            out.add(str(net))
    return sorted(out)


def median_ns(program_fd: int, frame: bytes) -> tuple[int, float]:
    runs = [libbpf.prog_test_run(program_fd, frame, REPEAT) for _ in range(RUNS)]
    return runs[0][0], statistics.median(d for _, d in runs)


@contextlib.contextmanager
def xdp_filter(lab: VethLab) -> Iterator[tuple[int, int, int]]:
    """xdp-filter loaded on the lab's receiver (skb mode): (program fd, v4 map fd, v6 map fd).

    xdp-filter pins under <bpffs mount>/xdp-filter whatever LIBXDP_BPFFS says (that only moves
    libxdp's own directory), so only one benchmark can run at a time.
    """
    pins = Path("/sys/fs/bpf/xdp-filter")
    if pins.exists():
        raise RuntimeError(f"{pins} exists: another xdp-filter is loaded; unload it first")
    libxdp_dir = Path(tempfile.mkdtemp(prefix="fpbench-", dir="/sys/fs/bpf"))
    env = {**os.environ, "LIBXDP_BPFFS": str(libxdp_dir)}

    def xf(*args: str) -> None:
        ns_fd = os.open(f"/var/run/netns/{lab.rx_ns}", os.O_RDONLY)
        try:
            subprocess.run(
                ["xdp-filter", *args],
                env=env,
                check=True,
                capture_output=True,
                preexec_fn=lambda: _enter(ns_fd),
            )
        finally:
            os.close(ns_fd)

    xf("load", "-m", "skb", "-f", "ipv4,ipv6", lab.rx_if)
    fds: list[int] = []
    try:
        xf("ip", DROP4, "-m", "src")
        xf("ip", DROP6, "-m", "src")
        progs = sorted((pins / "programs" / lab.rx_if).iterdir())
        fds = [libbpf.obj_get(progs[0])]
        fds += [libbpf.obj_get(pins / m) for m in ("filter_ipv4", "filter_ipv6")]
        yield fds[0], fds[1], fds[2]
    finally:
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(subprocess.CalledProcessError):
            xf("unload", lab.rx_if)
        shutil.rmtree(libxdp_dir, ignore_errors=True)
        shutil.rmtree(pins, ignore_errors=True)


def _enter(ns_fd: int) -> None:
    from myapp.fastpath.netlab import _setns

    _setns(ns_fd)


def counters_read_figures(table: RuleTable, counters_fd: int) -> str:
    """How long GetStats holds the table lock to read every rule's counters."""
    t0 = time.perf_counter()
    batched = table.rule_counters()
    batched_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    one_by_one = {
        rule_id: sum_counters(
            libbpf.percpu_lookup(counters_fd, struct.pack("<I", table.slot_of(rule_id)), 16)
        )
        for rule_id in table.rules
    }
    single_ms = (time.perf_counter() - t0) * 1000
    assert one_by_one == batched, "batched and key-by-key counter reads disagree"
    return (
        f"reading {len(batched):,} rule counters: {batched_ms:.1f} ms batched, "
        f"{single_ms:.1f} ms key by key"
    )


def bench_test_run(lab: VethLab) -> None:
    print(f"\n## XDP program cost, BPF_PROG_TEST_RUN, ns/packet (median of {RUNS} x {REPEAT:,})")
    rng = random.Random(7)
    src_flag = (1).to_bytes(8, "little")  # xdp-filter MAP_FLAG_SRC, per CPU
    with Datapath() as dp, xdp_filter(lab) as (xf_prog, xf4, xf6):
        table = RuleTable(dp.map_fds)
        table.apply(
            [
                validate(id=1, source_cidr=f"{DROP4}/32", action=shared.Action.DROP),
                validate(id=2, source_cidr=f"{DROP6}/128", action=shared.Action.DROP),
            ]
        )
        have, next_id = 1, 3
        xf_capacity = libbpf.map_layout(xf4).max_entries - 1  # one slot holds DROP4
        header = ("prefixes", "packet", "fastpath", "xdp-filter", "ours/xf", "ours/@1")
        print("{:>9} {:8} {:>9} {:>11} {:>8} {:>8}  verdicts (ours/xf)".format(*header))
        base: dict[str, float] = {}
        for size in SIZES:
            add = size - have
            if add > 0:
                t0 = time.monotonic()
                batch: list[RuleSpec] = []
                for family in (4, 6):
                    for cidr in random_networks(family, add, rng):
                        batch.append(
                            validate(id=next_id, source_cidr=cidr, action=shared.Action.DROP)
                        )
                        next_id += 1
                table.apply(batch)
                load_s = time.monotonic() - t0
                # xdp-filter matches exact addresses only, in hash maps of fixed capacity.
                xf_add = min(size, xf_capacity) - min(have, xf_capacity)
                for _ in range(xf_add):
                    libbpf.percpu_update(xf4, rng.getrandbits(32).to_bytes(4, "big"), src_flag)
                    a6 = (0x2001 << 112) | (0x0DB7 << 96) | rng.getrandbits(96)
                    libbpf.percpu_update(xf6, a6.to_bytes(16, "big"), src_flag)
                have = size
                print(
                    f"{'':>9} (loaded {2 * add:,} rules through RuleTable in {load_s:.1f} s; "
                    f"xdp-filter holds {min(size, xf_capacity):,} addresses per family, "
                    f"its capacity)"
                )
                counters_fd = dp.map_fds[shared.MAP_RULE_COUNTERS]
                print(f"{'':>9} ({counters_read_figures(table, counters_fd)})")
            for name, frame in PKTS.items():
                v_ours, ours = median_ns(dp.program_fd, frame)
                v_xf, theirs = median_ns(xf_prog, frame)
                base.setdefault(name, ours)
                names = {libbpf.XDP_PASS: "pass", libbpf.XDP_DROP: "drop"}
                print(
                    f"{size:>9,} {name:8} {ours:>9.0f} {theirs:>11.0f} {ours / theirs:>8.2f} "
                    f"{ours / base[name]:>8.2f}  "
                    f"{names.get(v_ours, v_ours)}/{names.get(v_xf, v_xf)}"
                )
        print("targets: ours/xf <= 1 at 1 prefix; ours/@1 <= 3 at 100,000 prefixes")


def _cpu_busy(cpu: int) -> float:
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(f"cpu{cpu} "):
                fields = [int(v) for v in line.split()[1:]]
                return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError(f"cpu{cpu} not in /proc/stat")


def live_rate(gen: Generator, frame: bytes, cpu: int) -> tuple[float, float]:
    """Frames generated for LIVE_SECONDS on `cpu`: (packets per CPU-second, packets per s)."""
    sent = 0
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        gen.send(frame, 1_000)  # warm up
        busy0, t0 = _cpu_busy(cpu), time.monotonic()
        chunk = 1_000
        while time.monotonic() - t0 < LIVE_SECONDS:
            c0 = time.monotonic()
            gen.send(frame, chunk)
            sent += chunk
            if time.monotonic() - c0 < 0.05:
                chunk *= 2
        busy, wall = _cpu_busy(cpu) - busy0, time.monotonic() - t0
    finally:
        os.sched_setaffinity(0, affinity)
    return sent / max(busy, 1e-9), sent / wall


def set_gro(lab: VethLab, on: bool) -> None:
    # Without XDP on the receiver, veth needs NAPI (GRO on) to accept frames sent by XDP.
    def apply() -> None:
        with Ethtool() as et:
            features = et.get_features(lab.rx_if)
            features.features["rx-gro"].enable = on
            et.set_features(lab.rx_if, features)

    run_in_netns(lab.rx_ns, apply)


def nft(lab: VethLab, script: str) -> None:
    ns_fd = os.open(f"/var/run/netns/{lab.rx_ns}", os.O_RDONLY)
    try:
        subprocess.run(
            ["nft", "-f", "-"], input=script.encode(), check=True, preexec_fn=lambda: _enter(ns_fd)
        )
    finally:
        os.close(ns_fd)


def nft_rules(lab: VethLab, blocked: str, count: int) -> str:
    # Linear rules, the blocked source last: every packet walks all of them.
    rng = random.Random(11)
    others = [
        str(ipaddress.IPv4Address(rng.getrandbits(32) | 0x01000000)) for _ in range(count - 1)
    ]
    lines = [f"    ip saddr {addr} drop" for addr in [*others, blocked]]
    return (
        f"table netdev fpbench {{\n  chain ingress {{\n    type filter hook ingress device "
        f"{lab.rx_if} priority 0;\n" + "\n".join(lines) + "\n  }\n}\n"
    )


def bench_live(lab: VethLab) -> None:
    print(f"\n## Live veth, in-kernel generator ({LIVE_SECONDS:.0f} s each), one source blocked")
    cpu = max(os.sched_getaffinity(0))
    blocked = lab.tx_addrs[0]
    frame = P.packet(
        blocked, lab.rx_addr, sport=40000, dport=9, src_mac=lab.mac("tx"), dst_mac=lab.mac("rx")
    )
    gen = Generator(lab)
    results: dict[str, float] = {}
    try:
        set_gro(lab, True)
        results["no XDP (stack, no listener)"] = live_rate(gen, frame, cpu)[0]
        for count in (1, 10_000):
            nft(lab, nft_rules(lab, blocked, count))
            label = "rule" if count == 1 else "rules"
            results[f"nftables, {count:,} {label}"] = live_rate(gen, frame, cpu)[0]
            nft(lab, "delete table netdev fpbench\n")
        set_gro(lab, False)
        rng = random.Random(5)
        with Datapath() as dp:
            table = RuleTable(dp.map_fds)
            table.apply([validate(id=1, source_cidr=f"{blocked}/32", action=shared.Action.DROP)])
            att = run_in_netns(lab.rx_ns, lambda: attach(lab.rx_if, dp.program_fd, "native"))
            try:
                results["fastpath XDP drop, 1 rule"] = live_rate(gen, frame, cpu)[0]
                table.apply(
                    [
                        validate(
                            id=i + 2,
                            source_cidr=str(ipaddress.IPv4Address(rng.getrandbits(32) | 0x01000000))
                            + "/32",
                            action=shared.Action.DROP,
                        )
                        for i in range(9_999)
                    ]
                )
                results["fastpath XDP drop, 10,000 rules"] = live_rate(gen, frame, cpu)[0]
                drops = dp.counters()[shared.Counter.DROP][0]
            finally:
                run_in_netns(lab.rx_ns, lambda: detach(att))
    finally:
        gen.close()
    for name, rate in results.items():
        print(f"  {name:34} {rate:>12,.0f} pkts per CPU-second ({1e9 / rate:,.0f} ns/packet)")
    ratio = results["fastpath XDP drop, 10,000 rules"] / results["nftables, 10,000 rules"]
    print(
        f"  fastpath vs nftables at 10,000 rules: {ratio:.1f}x (target >= 10x); "
        f"XDP drop counter {drops:,}"
    )


def bench_xsk(lab: VethLab) -> None:
    print("\n## AF_XDP consumer (native XDP redirect of every packet, copy mode, numpy batches)")
    src = lab.tx_addrs[1]
    frame = P.packet(src, lab.rx_addr, dport=9, src_mac=lab.mac("tx"), dst_mac=lab.mac("rx"))
    gen = Generator(lab)
    with Datapath() as dp:
        table = RuleTable(dp.map_fds)
        table.apply([validate(id=1, source_cidr=f"{src}/32", action=shared.Action.REDIRECT)])
        att = run_in_netns(lab.rx_ns, lambda: attach(lab.rx_if, dp.program_fd, "native"))
        consumer = run_in_netns(
            lab.rx_ns,
            lambda: XskConsumer(
                lab.rx_if, att.ifindex, 0, dp.map_fds[shared.MAP_XSKS], SampleRing(1024)
            ),
        )
        try:
            # Rounds of: the kernel fills the RX ring (one ring's worth from the generator),
            # then the consumer drains it; only the drain is timed, on the consumer's CPU.
            ring = consumer.sock.pool.count
            drained, busy, rounds = 0, 0.0, 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < LIVE_SECONDS:
                gen.send(frame, ring)
                c0 = time.thread_time()
                while True:
                    n = consumer.drain_once()
                    if not n:
                        break
                    drained += n
                busy += time.thread_time() - c0
                rounds += 1
            # The last round's tail may still be on its way into the ring: collect it too.
            quiet_until = time.monotonic() + 0.2
            while time.monotonic() < quiet_until:
                c0 = time.thread_time()
                n = consumer.drain_once()
                busy += time.thread_time() - c0
                drained += n
                if n:
                    quiet_until = time.monotonic() + 0.2
                else:
                    time.sleep(0.01)
            figures = consumer.figures()
            sent = rounds * ring
        finally:
            consumer.stop()
            run_in_netns(lab.rx_ns, lambda: detach(att))
            gen.close()
    print(
        f"  drained and processed {drained:,} of {sent:,} packets (top talkers, summaries, "
        f"frames back through the slot pool) in {busy:.3f} s of consumer CPU: "
        f"{drained / max(busy, 1e-9) / 1e6:.2f} M pkts per core-second (target >= 1 M)"
    )
    print(
        f"  not queued by the kernel: {figures.rx_dropped:,}; slot pool {figures.slots_total} "
        f"frames, exhausted {figures.slot_exhausted} times, {figures.slots_free} free at rest "
        f"(the rest wait in the fill ring); UMEM on NUMA node {figures.umem_node}, consumer "
        f"CPUs {list(figures.cpus)}"
    )
    print(f"  top talkers: {consumer.top_talkers(3)}")


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench-fastpath needs root (BPF programs, network namespaces)")
    print(f"fastpath benchmark on {os.cpu_count()} CPUs, kernel {os.uname().release}")
    sections: list[Callable[[VethLab], None]] = [bench_test_run, bench_live, bench_xsk]
    for section in sections:
        with VethLab(receiver_netns=True) as lab:
            section(lab)


if __name__ == "__main__":
    main()
