"""The Kubernetes Pod Security Standards, checked offline on rendered pod templates.

The rules of https://kubernetes.io/docs/concepts/security/pod-security-standards/ ("Baseline"
and "Restricted", Linux pods), as the PodSecurity admission controller applies them to a
namespace labelled `pod-security.kubernetes.io/enforce: <level>`. No cluster runs here, so the
deployment tests render every overlay and chart and run each pod template through
`violations()`: a pod the namespace would refuse fails the test instead of the rollout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Obj = dict[str, Any]

LEVELS = ("privileged", "baseline", "restricted")
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"

# Baseline: capabilities beyond the container runtime's default set are refused.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
# Restricted: after dropping ALL, only this one may be added back.
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
# The namespaced, isolated sysctls the baseline profile allows (the list as of Kubernetes 1.29).
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})
# Restricted: the volume types a pod may use (everything else reaches the node or a network
# file system directly).
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_VOLUME_FIELDS_NOT_TYPES = frozenset({"name"})


def pod_templates(objs: list[Obj]) -> Iterator[tuple[str, str, Obj]]:
    """(where, namespace, pod template) of every object that creates pods."""
    for o in objs:
        spec = o.get("spec", {})
        if o["kind"] == "Pod":
            template: Obj | None = {"metadata": o["metadata"], "spec": spec}
        elif o["kind"] == "CronJob":
            template = spec.get("jobTemplate", {}).get("spec", {}).get("template")
        else:
            template = spec.get("template") if isinstance(spec.get("template"), dict) else None
        if template is not None and "containers" in template.get("spec", {}):
            where = f"{o['kind']}/{o['metadata']['name']}"
            yield where, o["metadata"].get("namespace", ""), template


def _containers(spec: Obj) -> Iterator[tuple[str, Obj]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(field) or []:
            yield f"{field}[{c.get('name')}]", c


def _baseline(where: str, pod: Obj) -> list[str]:
    spec = pod.get("spec", {})
    annotations = pod.get("metadata", {}).get("annotations") or {}
    psc = spec.get("securityContext") or {}
    problems = []
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"{where}: {field} is not allowed (host namespaces)")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append(f"{where}: windowsOptions.hostProcess is not allowed")
    for v in spec.get("volumes") or []:
        if "hostPath" in v:
            problems.append(f"{where}: volume {v.get('name')} is a hostPath")
    for sysctl in psc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            problems.append(f"{where}: sysctl {sysctl.get('name')} is not in the safe set")
    for key, value in annotations.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            problems.append(f"{where}: AppArmor annotation {key}={value} is not allowed")
    contexts = [("pod", psc)] + [
        (name, c.get("securityContext") or {}) for name, c in _containers(spec)
    ]
    for name, sc in contexts:
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            problems.append(f"{where}/{name}: windowsOptions.hostProcess is not allowed")
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp == "Unconfined":
            problems.append(f"{where}/{name}: seccompProfile Unconfined is not allowed")
        apparmor = (sc.get("appArmorProfile") or {}).get("type")
        if apparmor is not None and apparmor not in APPARMOR_TYPES:
            problems.append(f"{where}/{name}: appArmorProfile {apparmor} is not allowed")
        selinux = sc.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in SELINUX_TYPES:
            problems.append(f"{where}/{name}: seLinuxOptions.type {selinux['type']} is not allowed")
        for field in ("user", "role"):
            if selinux.get(field):
                problems.append(f"{where}/{name}: seLinuxOptions.{field} may not be set")
    for name, c in _containers(spec):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{where}/{name}: privileged is not allowed")
        added = set((sc.get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPABILITIES:
            problems.append(
                f"{where}/{name}: capabilities {sorted(added - BASELINE_CAPABILITIES)} "
                "are beyond the baseline set"
            )
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{where}/{name}: procMount {sc['procMount']} is not allowed")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{where}/{name}: hostPort {port['hostPort']} is not allowed")
    return problems


def _restricted(where: str, pod: Obj) -> list[str]:
    spec = pod.get("spec", {})
    psc = spec.get("securityContext") or {}
    problems = []
    for v in spec.get("volumes") or []:
        types = set(v) - _VOLUME_FIELDS_NOT_TYPES
        if types - RESTRICTED_VOLUME_TYPES:
            problems.append(
                f"{where}: volume {v.get('name')} of type {sorted(types)} is not allowed "
                f"(only {', '.join(sorted(RESTRICTED_VOLUME_TYPES))})"
            )
    if psc.get("runAsUser") == 0:
        problems.append(f"{where}/pod: runAsUser 0 is not allowed")
    if psc.get("runAsNonRoot") is False:
        problems.append(f"{where}/pod: runAsNonRoot false is not allowed")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for name, c in _containers(spec):
        sc = c.get("securityContext") or {}
        cwhere = f"{where}/{name}"
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cwhere}: allowPrivilegeEscalation must be false")
        # runAsNonRoot: true on the container, or unset there and true on the pod.
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{cwhere}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{cwhere}: runAsUser 0 is not allowed")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in SECCOMP_TYPES:
            problems.append(
                f"{cwhere}: seccompProfile must be RuntimeDefault or Localhost (pod or container),"
                f" got {seccomp}"
            )
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{cwhere}: capabilities must drop ALL")
        added = set(caps.get("add") or [])
        if added - RESTRICTED_CAPABILITIES:
            problems.append(
                f"{cwhere}: capabilities {sorted(added - RESTRICTED_CAPABILITIES)} may not be "
                "added (only NET_BIND_SERVICE)"
            )
    return problems


def violations(where: str, pod: Obj, level: str = "restricted") -> list[str]:
    """What keeps the pod template `pod` out of a namespace enforcing `level`, one sentence each."""
    if level not in LEVELS:
        raise ValueError(f"unknown Pod Security level {level!r} (one of {', '.join(LEVELS)})")
    if level == "privileged":
        return []
    problems = _baseline(where, pod)
    if level == "restricted":
        problems += _restricted(where, pod)
    return problems


def enforced_levels(objs: list[Obj]) -> dict[str, str]:
    """namespace -> the level its `enforce` label sets, for the Namespace objects in `objs`."""
    return {
        o["metadata"]["name"]: (o["metadata"].get("labels") or {}).get(ENFORCE_LABEL, "privileged")
        for o in objs
        if o["kind"] == "Namespace"
    }
