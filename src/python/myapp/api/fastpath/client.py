"""gRPC clients of the fast-path agents (stubs generated from src/protos/fastpath/v1).

The API's rules (dicts shaped like the REST contract) are converted here to `fastpath.v1.Rule`
messages; every gRPC failure becomes `FastPathUnavailable` (agent down or slow: keep working,
retry later) or `FastPathRejected` (the agent refused the request: a bug or a stale revision).

The agents run as a DaemonSet, one per node, and each needs every rule. `AgentFleet` talks to
all the agents `FASTPATH_ADDR` names (a comma-separated list, and each name resolved to all its
addresses: a headless Service gives one per pod) and succeeds only where every agent does.

With `FastPathTls` (FASTPATH_TLS_*) every agent is called over mutual TLS: the API shows its
client certificate and checks the agent's against the CA bundle, under the configured server
name (agents are dialled by address, so the name cannot come from the address).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.json_format import MessageToDict

from fastpath.v1 import fastpath_pb2, fastpath_pb2_grpc

PROTOCOLS = {"any": 0, "icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}
ACTIONS = {
    "pass": fastpath_pb2.ACTION_PASS,
    "drop": fastpath_pb2.ACTION_DROP,
    "rate_limit": fastpath_pb2.ACTION_RATE_LIMIT,
    "redirect": fastpath_pb2.ACTION_REDIRECT,
}
# The agent keeps a rule's name as a fixed-size label (63 bytes of UTF-8 in its BPF map); the
# API stays the owner of the full name, so a longer one is shortened for the agent only.
AGENT_NAME_BYTES = 63


class FastPathError(Exception):
    """Base of the errors the client raises."""


class FastPathUnavailable(FastPathError):
    """The agent could not be reached in time; the call may be retried."""


class FastPathRejected(FastPathError):
    """The agent answered and refused the request (bad input, stale revision, full map)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.detail = message


_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
}


@dataclass(frozen=True)
class ChannelCredentials:
    """What a mutual-TLS channel to an agent needs, read from the PEM files (`files`)."""

    root_certificates: bytes
    private_key: bytes
    certificate_chain: bytes
    server_name: str
    files: tuple[Path, Path, Path] | None = None  # ca, cert, key

    @classmethod
    def from_files(cls, ca: Path, cert: Path, key: Path, server_name: str) -> ChannelCredentials:
        return cls(
            ca.read_bytes(), key.read_bytes(), cert.read_bytes(), server_name, (ca, cert, key)
        )

    def reloaded(self) -> ChannelCredentials:
        """The files read again: a renewed certificate or CA bundle (a Secret volume is updated
        in place); `self` when nothing changed or they cannot be read now."""
        if self.files is None:
            return self
        try:
            fresh = self.from_files(*self.files, self.server_name)
        except OSError:
            return self
        return self if fresh == self else fresh

    def channel(self, address: str) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )
        return grpc.secure_channel(
            address, credentials, options=[("grpc.ssl_target_name_override", self.server_name)]
        )


def _agent_name(name: str) -> str:
    return name.encode()[:AGENT_NAME_BYTES].decode(errors="ignore")


def rule_to_proto(rule: Mapping[str, Any]) -> fastpath_pb2.Rule:
    """Convert one API rule (REST contract shape) to the agent's message."""
    return fastpath_pb2.Rule(
        id=int(rule["id"]),
        revision=int(rule["revision"]),
        name=_agent_name(str(rule.get("name") or "")),
        source_cidr=str(rule["source_cidr"]),
        protocol=PROTOCOLS[str(rule.get("protocol") or "any")],
        dst_port_min=int(rule.get("dst_port_min") or 0),
        dst_port_max=int(rule.get("dst_port_max") or rule.get("dst_port_min") or 0),
        action=ACTIONS[str(rule["action"])],
        rate_limit_pps=int(rule.get("rate_limit_pps") or 0),
        sample_rate=int(rule.get("sample_rate") or 0),
        enabled=bool(rule.get("enabled", True)),
        priority=int(rule.get("priority") or 0),
    )


def _as_dict(message: Any) -> dict[str, Any]:
    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class FastPathClient:
    """Thread-safe client of one agent at `address` (host:port); one channel, reused.

    Plaintext without `tls`: the agents allow it on loopback only (development and tests).
    """

    def __init__(
        self, address: str, timeout: float = 3.0, tls: ChannelCredentials | None = None
    ) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = tls.channel(address) if tls else grpc.insecure_channel(address)
        self._stub = fastpath_pb2_grpc.FastPathControlStub(self._channel)
        self._rates = _RateTracker()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as err:
            code = err.code()
            details = err.details() or code.name
            if code in _RETRYABLE:
                raise FastPathUnavailable(f"fast path at {self.address}: {details}") from err
            raise FastPathRejected(code, details) from err

    def apply(self, rules: Iterable[Mapping[str, Any]]) -> int:
        """Create or update rules as one batch; returns how many the agent wrote."""
        request = fastpath_pb2.ApplyRulesRequest(rules=[rule_to_proto(r) for r in rules])
        return int(self._call("ApplyRules", request).applied)

    def delete(self, rule_id: int, revision: int = 0) -> int:
        request = fastpath_pb2.DeleteRulesRequest(
            rules=[fastpath_pb2.RuleRef(id=rule_id, revision=revision)]
        )
        return int(self._call("DeleteRules", request).deleted)

    def sync(self, rules: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """Make the agent's rule set exactly `rules`; returns added/updated/removed counts."""
        request = fastpath_pb2.SyncRulesRequest(rules=[rule_to_proto(r) for r in rules])
        reply = self._call("SyncRules", request)
        return {"added": reply.added, "updated": reply.updated, "removed": reply.removed}

    def status(self) -> dict[str, Any]:
        return _as_dict(self._call("GetStatus", fastpath_pb2.GetStatusRequest()))

    def stats(self) -> dict[str, Any]:
        """Counters with packet rates (pps) computed against the previous call's sample."""
        reply = self._call("GetStats", fastpath_pb2.GetStatsRequest())
        return self._rates.annotate(reply)


class _RateTracker:
    """Turns monotonically growing counters into rates between two consecutive samples."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._previous: tuple[float, dict[str, int]] | None = None

    def annotate(self, stats: fastpath_pb2.Stats) -> dict[str, Any]:
        now = stats.timestamp_ns / 1e9 if stats.timestamp_ns else time.time()
        current = {f"action:{k}": v.packets for k, v in stats.actions.items()}
        current.update({f"rule:{r.rule_id}": r.matched.packets for r in stats.rules})
        with self._lock:
            previous, self._previous = self._previous, (now, current)

        def pps(key: str) -> float:
            if previous is None or now <= previous[0]:
                return 0.0
            delta = current[key] - previous[1].get(key, current[key])
            return max(delta, 0) / (now - previous[0])

        return {
            "timestamp_ns": stats.timestamp_ns,
            "actions": {
                name: {
                    "packets": counter.packets,
                    "bytes": counter.bytes,
                    "pps": pps(f"action:{name}"),
                }
                for name, counter in stats.actions.items()
            },
            "rules": [
                {
                    "rule_id": r.rule_id,
                    "packets": r.matched.packets,
                    "bytes": r.matched.bytes,
                    "pps": pps(f"rule:{r.rule_id}"),
                }
                for r in stats.rules
            ],
            "parse_errors": dict(stats.parse_errors),
            "xsk": [_as_dict(x) for x in stats.xsk],
        }


T = TypeVar("T")


def resolve_agents(spec: str) -> list[str]:
    """'host:port[,host:port...]' as one 'ip:port' per agent, in the order given.

    A name stands for every address it resolves to (a headless Service: one per ready pod), in
    the first address family the resolver prefers, so a dual-stack pod or 'localhost' (127.0.0.1
    and ::1) counts once.
    """
    agents: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        host, _, port = item.rpartition(":")
        try:
            found = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
        except (OSError, ValueError) as err:
            raise FastPathUnavailable(f"cannot resolve fast-path address {item!r}: {err}") from err
        family = found[0][0]
        for entry_family, _, _, _, sockaddr in found:
            if entry_family != family:
                continue
            ip = str(sockaddr[0])
            agent = f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}"
            if agent not in agents:
                agents.append(agent)
    return agents


class AgentFleet:
    """Every agent `spec` names, called in parallel; a call succeeds only if every agent's does.

    The set of agents is looked up again by `refresh()` (each full sync does), so agents that
    start later are found within one sync interval, and agents that left are dropped.
    """

    def __init__(
        self, spec: str, timeout: float = 3.0, tls: ChannelCredentials | None = None
    ) -> None:
        self.address = spec
        self.timeout = timeout
        self.tls = tls
        self._lock = threading.Lock()
        self._agents: dict[str, FastPathClient] = {}
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fastpath-call")

    def refresh(self) -> list[str]:
        """Resolve the agents again (and reread the TLS files); returns their addresses."""
        found = resolve_agents(self.address)
        tls = self.tls.reloaded() if self.tls else None
        with self._lock:
            if tls != self.tls:  # renewed files: connect again with them
                self.tls = tls
                for client in self._agents.values():
                    client.close()
                self._agents.clear()
            for gone in [agent for agent in self._agents if agent not in found]:
                self._agents.pop(gone).close()
            for agent in found:
                if agent not in self._agents:
                    self._agents[agent] = FastPathClient(agent, self.timeout, self.tls)
        return found

    def close(self) -> None:
        with self._lock:
            for client in self._agents.values():
                client.close()
            self._agents.clear()
        self._pool.shutdown(wait=False)

    def _clients(self) -> dict[str, FastPathClient]:
        with self._lock:
            if self._agents:
                return dict(self._agents)
        self.refresh()
        with self._lock:
            return dict(self._agents)

    def each(self, call: Callable[[FastPathClient], T]) -> dict[str, T | FastPathError]:
        """`call` on every agent in parallel: its result, or the error, per agent address."""
        futures = {
            agent: self._pool.submit(call, client) for agent, client in self._clients().items()
        }
        results: dict[str, T | FastPathError] = {}
        for agent, future in futures.items():
            try:
                results[agent] = future.result()
            except FastPathError as err:
                results[agent] = err
            except ValueError as err:  # its channel was closed: the agent left meanwhile
                results[agent] = FastPathUnavailable(f"fast path at {agent}: {err}")
        return results

    def _all(self, call: Callable[[FastPathClient], T]) -> list[T]:
        results = self.each(call)
        if not results:
            raise FastPathUnavailable(f"no fast-path agent found at {self.address}")
        for agent, result in results.items():
            if isinstance(result, FastPathRejected):  # a refusal is not cured by retrying
                raise FastPathRejected(result.code, f"agent {agent}: {result.detail}")
        failed = [f"{agent}: {r}" for agent, r in results.items() if isinstance(r, FastPathError)]
        if failed:
            raise FastPathUnavailable(
                f"{len(failed)} of {len(results)} fast-path agents unavailable: "
                + "; ".join(failed)
            )
        return [r for r in results.values() if not isinstance(r, FastPathError)]

    def apply(self, rules: Iterable[Mapping[str, Any]]) -> int:
        """Create or update rules on every agent; how many the least willing agent wrote."""
        batch = list(rules)
        return min(self._all(lambda client: client.apply(batch)))

    def delete(self, rule_id: int, revision: int = 0) -> int:
        return min(self._all(lambda client: client.delete(rule_id, revision)))

    def sync(self, rules: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        """Make every agent's rule set exactly `rules` (agents looked up again first)."""
        self.refresh()
        batch = list(rules)
        counts = self._all(lambda client: client.sync(batch))
        total = {key: sum(c[key] for c in counts) for key in ("added", "updated", "removed")}
        return {"agents": len(counts), **total}

    def stats(self) -> tuple[dict[str, Any], list[str], list[str]]:
        """The answering agents' counters added up, the agents that answered, those that did not."""
        merged: dict[str, Any] = {"actions": {}, "rules": {}, "parse_errors": {}, "xsk": []}
        answered: list[str] = []
        missing: list[str] = []
        for agent, result in self.each(lambda client: client.stats()).items():
            if isinstance(result, FastPathError):
                missing.append(agent)
                continue
            answered.append(agent)
            for name, counter in result["actions"].items():
                _add(merged["actions"].setdefault(name, {}), counter)
            for counter in result["rules"]:
                _add(merged["rules"].setdefault(counter["rule_id"], {}), counter, skip="rule_id")
            _add(merged["parse_errors"], result["parse_errors"])
            merged["xsk"] += [{"agent": agent, **socket_stats} for socket_stats in result["xsk"]]
        merged["rules"] = [{"rule_id": rid, **c} for rid, c in sorted(merged["rules"].items())]
        return merged, answered, missing


def _add(total: dict[str, Any], counters: Mapping[str, Any], skip: str = "") -> None:
    for key, value in counters.items():
        if key != skip:
            total[key] = total.get(key, 0) + value
