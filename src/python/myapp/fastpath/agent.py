"""The agent: the loaded datapath, its rule table, the interfaces it is attached to and the
AF_XDP consumers, behind one lock for rule changes. The gRPC and HTTP layers only call this."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from myapp.fastpath import shared
from myapp.fastpath.config import Config
from myapp.fastpath.loader.attach import (
    Attachment,
    attach,
    detach,
    interface_index,
    is_attached,
    release,
)
from myapp.fastpath.loader.datapath import Datapath
from myapp.fastpath.rules import ChangeResult, RuleSpec, RuleTable
from myapp.fastpath.xsk.consumer import SampleRing, XskConsumer, XskFigures
from myapp.fastpath.xsk.numa import interface_numa_node

log = logging.getLogger("myapp.fastpath")
VERSION = "1.0.0"
# CAP_NET_ADMIN (attach), CAP_SYS_ADMIN or CAP_BPF (load programs, pin maps).
_CAP_NET_ADMIN, _CAP_SYS_ADMIN, _CAP_BPF = 12, 21, 39


class PrivilegeError(PermissionError):
    """The process lacks the capabilities to load and attach XDP programs."""


def check_privileges() -> None:
    with open("/proc/self/status") as status:
        caps = next(int(line.split()[1], 16) for line in status if line.startswith("CapEff:"))
    missing = []
    if not caps >> _CAP_NET_ADMIN & 1:
        missing.append("CAP_NET_ADMIN")
    if not (caps >> _CAP_BPF & 1 or caps >> _CAP_SYS_ADMIN & 1):
        missing.append("CAP_BPF (or CAP_SYS_ADMIN)")
    if missing:
        raise PrivilegeError(
            f"the fastpath agent needs {' and '.join(missing)} to load and attach XDP programs; "
            "run it as root or grant the capabilities"
        )


@dataclass
class InterfaceState:
    name: str
    ifindex: int
    mode: str
    attached: bool
    prog_id: int
    numa_node: int


@dataclass
class StatsSnapshot:
    timestamp_ns: int
    actions: dict[str, tuple[int, int]]
    parse_errors: dict[str, int]
    rules: dict[int, tuple[int, int]]
    xsk: list[XskFigures] = field(default_factory=list)


class Agent:
    def __init__(self, config: Config, datapath: Datapath) -> None:
        self.config = config
        self.datapath = datapath
        self.table = RuleTable(datapath.map_fds)
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.attachments: list[Attachment] = []
        self.consumers: list[XskConsumer] = []
        self.samples = SampleRing(4096)
        if config.default_policy is not None:
            self.table.set_default_policy(config.default_policy)

    @classmethod
    def start(cls, config: Config) -> Agent:
        """Check privileges and interfaces, load (adopting pins), attach, open AF_XDP sockets."""
        check_privileges()
        for name in config.interfaces:
            interface_index(name)
        datapath = Datapath(
            config.bpffs,
            drop_malformed=config.drop_malformed,
            protected=config.protected_prefixes,
        )
        agent = cls(config, datapath)
        try:
            agent.attach_all()
            agent.open_xsk()
        except BaseException:
            agent.close()
            raise
        return agent

    def attach_all(self) -> None:
        for name in self.config.interfaces:
            att = attach(
                name,
                self.datapath.program_fd,
                self.config.mode,
                pin_dir=self.datapath.pin_dir,
                own_maps=self.datapath.own_map_fds,
            )
            self.attachments.append(att)
            log.info(
                "%s: program %d %s (%s mode)",
                name,
                att.prog_id,
                "kept as attached" if att.kept else "attached",
                att.mode,
            )

    def open_xsk(self) -> None:
        for att in self.attachments:
            for queue in self.config.xsk_queues:
                consumer = XskConsumer(
                    att.ifname,
                    att.ifindex,
                    queue,
                    self.datapath.map_fds[shared.MAP_XSKS],
                    self.samples,
                    frames=self.config.xsk_frames,
                )
                self.consumers.append(consumer)
                consumer.start()

    def ready(self) -> bool:
        return bool(self.attachments) and all(is_attached(a) for a in self.attachments)

    def close(self) -> None:
        for consumer in self.consumers:
            consumer.stop()
        self.consumers.clear()
        for att in self.attachments:
            # Left attached by default: the pinned rules keep filtering until the next agent
            # takes the program over (loader.attach), so a restart has no gap.
            (detach if self.config.detach_on_exit else release)(att)
        self.attachments.clear()
        self.datapath.close()

    # -- rules ----------------------------------------------------------------------------------
    def apply(self, rules: list[RuleSpec]) -> ChangeResult:
        with self.lock:
            return self.table.apply(rules)

    def delete(self, refs: list[tuple[int, int]]) -> ChangeResult:
        with self.lock:
            return self.table.delete(refs)

    def sync(self, rules: list[RuleSpec]) -> ChangeResult:
        with self.lock:
            return self.table.sync(rules)

    def list_rules(self) -> tuple[list[RuleSpec], int]:
        with self.lock:
            rules = sorted(self.table.rules.values(), key=lambda r: r.id)
            return rules, self.table.generation

    def set_default_policy(self, policy: shared.Policy) -> None:
        with self.lock:
            self.table.set_default_policy(policy)

    # -- state ----------------------------------------------------------------------------------
    def interfaces(self) -> list[InterfaceState]:
        return [
            InterfaceState(
                a.ifname,
                a.ifindex,
                a.mode,
                is_attached(a),
                a.prog_id,
                interface_numa_node(a.ifname),
            )
            for a in self.attachments
        ]

    def top_talkers(self, n: int) -> list[tuple[str, int]]:
        """Busiest sources over all AF_XDP consumers."""
        total: dict[str, int] = {}
        for consumer in self.consumers:
            for source, count in consumer.top_talkers(n):
                total[source] = total.get(source, 0) + count
        return sorted(total.items(), key=lambda item: -item[1])[:n]

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def stats(self) -> StatsSnapshot:
        with self.lock:
            rules = self.table.rule_counters()
        return StatsSnapshot(
            timestamp_ns=time.time_ns(),
            actions={c.name.lower(): v for c, v in self.datapath.counters().items()},
            parse_errors={e.name.lower(): v[0] for e, v in self.datapath.parse_errors().items()},
            rules=rules,
            xsk=[c.figures() for c in self.consumers],
        )
