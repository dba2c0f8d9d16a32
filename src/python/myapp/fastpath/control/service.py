"""gRPC servicer of fastpath.v1.FastPathControl: thin, maps domain errors to status codes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc

from fastpath.v1 import fastpath_pb2 as pb
from fastpath.v1 import fastpath_pb2_grpc as pb_grpc
from myapp.fastpath import shared
from myapp.fastpath.agent import VERSION, Agent, StatsSnapshot
from myapp.fastpath.rules import RuleError, RuleSpec, StaleRevision, TableFull, validate

# Longest status message sent (characters): far below gRPC's default 8 KiB metadata limit.
MESSAGE_LIMIT = 1024


def rule_from_proto(msg: pb.Rule, where: str) -> RuleSpec:
    try:
        return validate(
            id=msg.id,
            source_cidr=msg.source_cidr,
            action=int(msg.action),
            revision=msg.revision,
            name=msg.name,
            protocol=msg.protocol,
            dst_port_min=msg.dst_port_min,
            dst_port_max=msg.dst_port_max,
            rate_limit_pps=msg.rate_limit_pps,
            sample_rate=msg.sample_rate,
            enabled=msg.enabled,
            priority=msg.priority,
        )
    except RuleError as err:
        raise RuleError(f"{where}.{err.field}", str(err).split(": ", 1)[1]) from None


def rule_to_proto(rule: RuleSpec) -> pb.Rule:
    return pb.Rule(
        id=rule.id,
        revision=rule.revision,
        name=rule.name,
        source_cidr=str(rule.network),
        protocol=rule.protocol,
        dst_port_min=rule.dport_min,
        dst_port_max=rule.dport_max,
        action=int(rule.action),  # type: ignore[arg-type]
        rate_limit_pps=rule.rate_limit_pps,
        sample_rate=rule.sample_rate,
        enabled=rule.enabled,
        priority=rule.priority,
    )


def stats_to_proto(snap: StatsSnapshot) -> pb.Stats:
    out = pb.Stats(timestamp_ns=snap.timestamp_ns)
    for name, (packets, octets) in snap.actions.items():
        out.actions[name].packets = packets
        out.actions[name].bytes = octets
    for name, count in snap.parse_errors.items():
        out.parse_errors[name] = count
    # Fields set in place: building a Counter per rule and copying it in took twice as long
    # (225 vs 104 ms for 200,000 rules), every StreamStats tick.
    add_rule = out.rules.add
    for rule_id, (packets, octets) in sorted(snap.rules.items()):
        entry = add_rule()
        entry.rule_id = rule_id
        matched = entry.matched
        matched.packets = packets
        matched.bytes = octets
    for x in snap.xsk:
        out.xsk.add(
            queue=x.queue,
            rx_packets=x.rx_packets,
            rx_bytes=x.rx_bytes,
            rx_dropped=x.rx_dropped,
            slots_total=x.slots_total,
            slots_free=x.slots_free,
            slot_exhausted=x.slot_exhausted,
            numa_node=x.numa_node,
        )
    return out


class FastPathService(pb_grpc.FastPathControlServicer):
    def __init__(self, agent: Agent, stopping: threading.Event) -> None:
        self.agent = agent
        self.stopping = stopping

    def _abort(self, context: grpc.ServicerContext, err: Exception) -> None:
        # The messages quote at most a short prefix of a bad value (rules.quoted); the cap is
        # what keeps any other message under gRPC's 8 KiB metadata limit too.
        message = str(err)
        if len(message) > MESSAGE_LIMIT:
            message = message[:MESSAGE_LIMIT] + "…"
        if isinstance(err, RuleError):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        if isinstance(err, StaleRevision):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, message)
        if isinstance(err, TableFull):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message)
        raise err

    def _specs(self, rules: list[pb.Rule]) -> list[RuleSpec]:
        return [rule_from_proto(r, f"rules[{i}]") for i, r in enumerate(rules)]

    def ApplyRules(
        self, request: pb.ApplyRulesRequest, context: grpc.ServicerContext
    ) -> pb.ApplyRulesResponse:
        try:
            result = self.agent.apply(self._specs(list(request.rules)))
        except (RuleError, StaleRevision, TableFull) as err:
            self._abort(context, err)
        return pb.ApplyRulesResponse(
            applied=result.added + result.updated, generation=result.generation
        )

    def DeleteRules(
        self, request: pb.DeleteRulesRequest, context: grpc.ServicerContext
    ) -> pb.DeleteRulesResponse:
        try:
            result = self.agent.delete([(r.id, r.revision) for r in request.rules])
        except (RuleError, StaleRevision, TableFull) as err:
            self._abort(context, err)
        return pb.DeleteRulesResponse(deleted=result.removed, generation=result.generation)

    def ListRules(
        self, request: pb.ListRulesRequest, context: grpc.ServicerContext
    ) -> pb.ListRulesResponse:
        rules, generation = self.agent.list_rules()
        return pb.ListRulesResponse(rules=[rule_to_proto(r) for r in rules], generation=generation)

    def SyncRules(
        self, request: pb.SyncRulesRequest, context: grpc.ServicerContext
    ) -> pb.SyncRulesResponse:
        try:
            result = self.agent.sync(self._specs(list(request.rules)))
        except (RuleError, StaleRevision, TableFull) as err:
            self._abort(context, err)
        return pb.SyncRulesResponse(
            added=result.added,
            updated=result.updated,
            removed=result.removed,
            generation=result.generation,
        )

    def SetDefaultPolicy(
        self, request: pb.SetDefaultPolicyRequest, context: grpc.ServicerContext
    ) -> pb.SetDefaultPolicyResponse:
        if request.policy not in (pb.POLICY_ALLOW, pb.POLICY_DENY):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"policy: must be POLICY_ALLOW or POLICY_DENY, got {request.policy}",
            )
        self.agent.set_default_policy(shared.Policy(request.policy))
        return pb.SetDefaultPolicyResponse(policy=request.policy)

    def GetStatus(self, request: pb.GetStatusRequest, context: grpc.ServicerContext) -> pb.Status:
        rules, generation = self.agent.list_rules()
        return pb.Status(
            interfaces=[
                pb.InterfaceStatus(
                    name=i.name,
                    ifindex=i.ifindex,
                    mode=i.mode,
                    attached=i.attached,
                    prog_id=i.prog_id,
                    numa_node=i.numa_node,
                )
                for i in self.agent.interfaces()
            ],
            default_policy=int(self.agent.table.default_policy()),  # type: ignore[arg-type]
            rule_count=len(rules),
            generation=generation,
            version=VERSION,
            uptime_seconds=self.agent.uptime(),
        )

    def GetStats(self, request: pb.GetStatsRequest, context: grpc.ServicerContext) -> pb.Stats:
        return stats_to_proto(self.agent.stats())

    def StreamStats(
        self, request: pb.StreamStatsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.Stats]:
        interval = min(max(request.interval_ms or 1000, 100), 60_000) / 1000
        while context.is_active() and not self.stopping.is_set():
            yield stats_to_proto(self.agent.stats())
            if self.stopping.wait(interval):
                return

    def StreamSamples(
        self, request: pb.StreamSamplesRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.PacketSample]:
        ring = self.agent.samples
        position = ring.head
        sent = 0
        while context.is_active() and not self.stopping.is_set():
            batch, position = ring.since(position, timeout=0.5)
            for s in batch:
                yield pb.PacketSample(
                    timestamp_ns=s.timestamp_ns,
                    queue=s.queue,
                    source=s.source,
                    destination=s.destination,
                    protocol=s.protocol,
                    source_port=s.source_port,
                    destination_port=s.destination_port,
                    length=s.length,
                )
                sent += 1
                if request.max_samples and sent >= request.max_samples:
                    return
