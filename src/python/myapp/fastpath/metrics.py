"""HTTP on FASTPATH_HTTP_PORT: /healthz (process up), /readyz (program attached everywhere),
/metrics (Prometheus, read from the BPF maps at scrape time)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from myapp.fastpath.agent import Agent
from myapp.fastpath.config import Config


class AgentCollector(Collector):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        snap = self.agent.stats()
        packets = CounterMetricFamily(
            "fastpath_action_packets", "Packets by verdict reason", labels=["action"]
        )
        octets = CounterMetricFamily(
            "fastpath_action_bytes", "Bytes by verdict reason", labels=["action"]
        )
        for name, (p, b) in snap.actions.items():
            packets.add_metric([name], p)
            octets.add_metric([name], b)
        yield packets
        yield octets
        errors = CounterMetricFamily(
            "fastpath_parse_errors", "Malformed packets by kind", labels=["kind"]
        )
        for name, count in snap.parse_errors.items():
            errors.add_metric([name], count)
        yield errors
        rule_packets = CounterMetricFamily(
            "fastpath_rule_packets", "Packets matched per rule", labels=["rule_id"]
        )
        rule_bytes = CounterMetricFamily(
            "fastpath_rule_bytes", "Bytes matched per rule", labels=["rule_id"]
        )
        for rule_id, (p, b) in sorted(snap.rules.items()):
            rule_packets.add_metric([str(rule_id)], p)
            rule_bytes.add_metric([str(rule_id)], b)
        yield rule_packets
        yield rule_bytes
        rules = GaugeMetricFamily("fastpath_rules", "Rules applied")
        rules.add_metric([], len(snap.rules))
        yield rules
        attached = GaugeMetricFamily(
            "fastpath_interface_attached",
            "1 when the XDP program is attached",
            labels=["interface", "mode", "numa_node"],
        )
        for i in self.agent.interfaces():
            attached.add_metric([i.name, i.mode, str(i.numa_node)], int(i.attached))
        yield attached
        labels = ["interface", "queue"]
        xsk: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "rx_packets": CounterMetricFamily(
                "fastpath_xsk_rx_packets", "Packets drained from AF_XDP", labels=labels
            ),
            "rx_bytes": CounterMetricFamily(
                "fastpath_xsk_rx_bytes", "Bytes drained from AF_XDP", labels=labels
            ),
            "rx_dropped": CounterMetricFamily(
                "fastpath_xsk_rx_dropped", "Packets the kernel could not queue", labels=labels
            ),
            "ring_fill": GaugeMetricFamily(
                "fastpath_xsk_rx_ring_fill", "Descriptors waiting in the RX ring", labels=labels
            ),
            "slots_total": GaugeMetricFamily(
                "fastpath_xsk_slots_total", "UMEM frames in the slot pool", labels=labels
            ),
            "slots_free": GaugeMetricFamily(
                "fastpath_xsk_slots_free", "UMEM frames free in the pool", labels=labels
            ),
            "slot_exhausted": CounterMetricFamily(
                "fastpath_xsk_slot_exhausted", "Times the pool ran out of frames", labels=labels
            ),
        }
        numa = GaugeMetricFamily(
            "fastpath_xsk_numa_node",
            "NUMA node of the interface, of the UMEM pages and the consumer's CPUs",
            labels=[*labels, "umem_node", "cpus"],
        )
        for x in snap.xsk:
            key = [x.ifname, str(x.queue)]
            for field, family in xsk.items():
                family.add_metric(key, getattr(x, field))
            numa.add_metric([*key, str(x.umem_node), ",".join(map(str, x.cpus))], x.numa_node)
        yield from xsk.values()
        yield numa
        talkers = GaugeMetricFamily(
            "fastpath_xsk_top_talker_packets",
            "Packets from the 10 busiest sources seen over AF_XDP",
            labels=["source"],
        )
        for source, count in self.agent.top_talkers(10):
            talkers.add_metric([source], count)
        yield talkers


def build_http_server(config: Config, agent: Agent) -> ThreadingHTTPServer:
    registry = CollectorRegistry()
    registry.register(AgentCollector(agent))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            elif self.path == "/readyz":
                if agent.ready():
                    self._send(200, b"ready\n", "text/plain")
                else:
                    self._send(503, b"XDP program not attached\n", "text/plain")
            elif self.path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found: try /healthz, /readyz or /metrics\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would drown the log

    server = ThreadingHTTPServer((config.bind, config.http_port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
