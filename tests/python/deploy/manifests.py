"""Render the deployment files and check them against the contract and the house rules.

Shared by the Kustomize and Helm tests: both produce a list of Kubernetes objects, and the same
`policy_problems()` applies to each (probes, resources, security context, PDB, HPA, network
policies, ports, secrets). A problem is a sentence naming the object and what is wrong.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from deploy.architecture import (
    AUTOSCALED,
    FASTPATH_CAPABILITIES,
    FASTPATH_NAMESPACE,
    FASTPATH_XSK_CAPABILITIES,
    NAMESPACE,
    SECRET_NAME,
    SERVICES,
    load_scaffolded,
)

WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")
Obj = dict[str, Any]


def repo_root() -> Path:
    """The build root: the Pants sandbox for tests (files are materialized at their paths), or
    $MYAPP_REPO_ROOT (set by scripts/k8s-render.sh, which runs from a checkout)."""
    if os.environ.get("MYAPP_REPO_ROOT"):
        return Path(os.environ["MYAPP_REPO_ROOT"])
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "k8s").is_dir():
            return parent
    raise RuntimeError(f"no k8s/ folder above {here}: is the test missing its files dependency?")


def expected_flows(objs: list[Obj]) -> set[tuple[str, str, int]]:
    """The architecture's pod-to-pod flows: webui -> API; API -> database, fast path, connector,
    Redis (when deployed); plus each scaffolded service's declared clients."""
    flows = {
        ("webui", "flask-backend", 5000),
        ("flask-backend", "postgres", 5432),
        ("flask-backend", "fastpath", 50051),
        ("flask-backend", "connector", 5050),
    }
    if find(objs, "Deployment", "redis"):
        flows.add(("flask-backend", "redis", 6379))
    for name, contract in SERVICES.items():
        for client in contract.clients:
            flows |= {(client, name, port) for port in contract.container_ports.values()}
    return flows


def tool(name: str) -> str:
    """Path of a command-line tool shipped by a wheel of the `tools` resolve (or on PATH)."""
    candidates = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]
    for folder in candidates:
        path = folder / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def run(cmd: list[str], check_rc: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a tool; unless check_rc is False, a non-zero exit fails with the tool's output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # noqa: S603
    assert (
        proc.returncode == 0 or not check_rc
    ), f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def load_all(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


def kustomize(overlay: Path) -> list[Obj]:
    return load_all(run([tool("kubectl"), "kustomize", str(overlay)]).stdout)


def find(objs: Iterable[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def workloads(objs: Iterable[Obj]) -> Iterator[Obj]:
    return (o for o in objs if o["kind"] in WORKLOAD_KINDS)


def pod_labels(workload: Obj) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"].get("labels", {}))


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """matchLabels/matchExpressions(In) semantics, enough for the selectors we write."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
        if expr["operator"] == "Exists" and expr["key"] not in labels:
            return False
    return True


def _container_problems(where: str, c: Obj, pod_sc: Obj, service: str) -> list[str]:
    problems = []
    for probe in ("livenessProbe", "readinessProbe"):
        if probe not in c:
            problems.append(f"{where}: no {probe}")
    if service == "fastpath":
        for probe in ("livenessProbe", "readinessProbe"):
            if c.get(probe, {}).get("httpGet", {}).get("port") not in ("http", 8080):
                # The gRPC port requires a client certificate the kubelet does not have.
                problems.append(f"{where}: the fast path's {probe} must be HTTP on 8080")
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        for what in ("cpu", "memory"):
            if what not in res.get(part, {}):
                problems.append(f"{where}: resources.{part}.{what} missing")
    sc = c.get("securityContext", {})
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation must be false")
    if sc.get("privileged"):
        problems.append(f"{where}: privileged containers are not allowed")
    caps = sc.get("capabilities", {})
    if "ALL" not in caps.get("drop", []):
        problems.append(f"{where}: capabilities must drop ALL")
    added = set(caps.get("add", []))
    allowed: set[str] = set()
    if service == "fastpath":
        allowed = {*FASTPATH_CAPABILITIES, *FASTPATH_XSK_CAPABILITIES}
    if added - allowed:
        problems.append(f"{where}: capabilities {sorted(added - allowed)} are not allowed")
    non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if service != "fastpath" and non_root is not True:
        problems.append(f"{where}: must run as non-root (runAsNonRoot: true)")
    return problems


def _env_problems(where: str, c: Obj, service: str, configmaps: dict[str, Obj]) -> list[str]:
    contract = SERVICES[service]
    problems = []
    names: set[str] = set()
    for env in c.get("env", []):
        names.add(env["name"])
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if env["name"] in contract.secret_env:
            if ref is None:
                problems.append(f"{where}: {env['name']} must come from a Secret")
            elif ref.get("name") != SECRET_NAME or ref.get("optional"):
                problems.append(f"{where}: {env['name']} must reference {SECRET_NAME}, required")
    for src in c.get("envFrom", []):
        cm_name = src.get("configMapRef", {}).get("name")
        if cm_name is None:
            problems.append(f"{where}: envFrom only from ConfigMaps (secrets go by key)")
            continue
        if cm_name not in configmaps:
            problems.append(f"{where}: ConfigMap {cm_name} is referenced but not rendered")
            continue
        names |= set(configmaps[cm_name].get("data", {}))
    for name in sorted(names - contract.env):
        problems.append(f"{where}: variable {name} is not one {service} reads (contract.py)")
    for name in sorted(contract.secret_env - names):
        problems.append(f"{where}: {name} is never given to {service}")
    return problems


def policy_problems(objs: list[Obj], *, expect_hpa: bool = True) -> list[str]:
    """Everything that breaks the deployment rules in one rendered environment."""
    problems: list[str] = []
    configmaps = {o["metadata"]["name"]: o for o in find(objs, "ConfigMap")}
    policies = find(objs, "NetworkPolicy")
    pdbs = find(objs, "PodDisruptionBudget")
    services = {o["metadata"]["name"]: o for o in find(objs, "Service")}

    for o in objs:
        ns = o["metadata"].get("namespace")
        expected = expected_namespace(o)
        if o["kind"] != "Namespace" and ns not in expected:
            where = f"{o['kind']}/{o['metadata']['name']}"
            problems.append(f"{where}: namespace {ns!r}, not {' or '.join(expected)}")
        if o["kind"] == "Secret":
            problems.append(f"Secret/{o['metadata']['name']}: secrets are never defined here")

    problems += protected_prefix_problems(objs)
    for cm in configmaps.values():
        for name, value in cm.get("data", {}).items():
            if name in TLS_FILES and value != TLS_FILES[name]:
                where = f"ConfigMap/{cm['metadata']['name']}"
                problems.append(f"{where}: {name} must be {TLS_FILES[name]} (the mounted Secret)")
    api_config = configmaps.get("flask-backend-config", {}).get("data", {})
    if api_config.get("FASTPATH_ADDR", FASTPATH_ADDR) != FASTPATH_ADDR:
        problems.append(f"flask-backend-config: FASTPATH_ADDR must be {FASTPATH_ADDR}")
    for ns in sorted({w["metadata"].get("namespace") for w in workloads(objs)}):
        if not any(
            p["metadata"].get("namespace") == ns
            and p["spec"].get("podSelector") == {}
            and set(p["spec"].get("policyTypes", [])) >= {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
            for p in policies
        ):
            problems.append(
                f"namespace {ns}: no default-deny NetworkPolicy (podSelector {{}}, Ingress+Egress,"
                " no rules)"
            )

    seen = set()
    for w in workloads(objs):
        name = w["metadata"]["name"]
        seen.add(name)
        where = f"{w['kind']}/{name}"
        labels = pod_labels(w)
        pod = w["spec"]["template"]["spec"]
        pod_sc = pod.get("securityContext", {})
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken must be false")
        if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: seccompProfile RuntimeDefault missing")
        if pod.get("hostNetwork") and name != "fastpath":
            problems.append(f"{where}: only the fast path may use the host network")
        contract = SERVICES.get(name)
        if contract is None and name != "redis":
            problems.append(f"{where}: not in the architecture contract")
        for c in pod["containers"]:
            cwhere = f"{where}/{c['name']}"
            if contract is not None:
                problems += _container_problems(cwhere, c, pod_sc, name)
                problems += _env_problems(cwhere, c, name, configmaps)
                ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
                if ports != contract.container_ports:
                    problems.append(f"{cwhere}: ports {ports} != {contract.container_ports}")
                if contract.kind != w["kind"]:
                    problems.append(f"{where}: must be a {contract.kind}")
        if not any(selects(p["spec"]["selector"], labels) for p in pdbs):
            problems.append(f"{where}: no PodDisruptionBudget")
        if not any(
            selects(p["spec"]["podSelector"], labels) and p["spec"]["podSelector"] for p in policies
        ):
            problems.append(f"{where}: no NetworkPolicy of its own")
        if name in AUTOSCALED and expect_hpa:
            hpas = [
                h
                for h in find(objs, "HorizontalPodAutoscaler")
                if h["spec"]["scaleTargetRef"]["name"] == name
            ]
            if not hpas:
                problems.append(f"{where}: no HorizontalPodAutoscaler")

    for name, contract in SERVICES.items():
        if name not in seen:
            problems.append(f"workload {name} is missing")
        svc = services.get(name)
        if svc is None:
            problems.append(f"Service {name} is missing")
            continue
        spec = svc["spec"]
        if spec.get("type", "ClusterIP") != "ClusterIP":
            problems.append(f"Service/{name}: type must be ClusterIP")
        ports = {p["name"]: p["port"] for p in spec["ports"]}
        if ports != contract.service_ports:
            problems.append(f"Service/{name}: ports {ports} != {contract.service_ports}")
        for p in spec["ports"]:
            if p.get("targetPort") not in (p["name"], contract.container_ports.get(p["name"])):
                problems.append(f"Service/{name}: port {p['name']} targets {p.get('targetPort')}")
    return problems


# The API reaches every agent through the headless Service in the fast path's namespace.
FASTPATH_ADDR = f"fastpath.{FASTPATH_NAMESPACE}.svc.cluster.local:50051"
# Certificate Secrets are mounted at /etc/myapp/tls with cert-manager's keys.
TLS_FILES = {
    "FASTPATH_TLS_CA": "/etc/myapp/tls/ca.crt",
    "FASTPATH_TLS_CLIENT_CA": "/etc/myapp/tls/ca.crt",
    "FASTPATH_TLS_CERT": "/etc/myapp/tls/tls.crt",
    "FASTPATH_TLS_KEY": "/etc/myapp/tls/tls.key",
}


def protected_prefix_problems(objs: list[Obj]) -> list[str]:
    """FASTPATH_PROTECTED_PREFIXES: valid CIDRs, the same for the agents and the API, and the very
    ranges the API's egress to the agents lists as ipBlocks (the agents have node addresses,
    which only ipBlocks match)."""
    configmaps = {o["metadata"]["name"]: o for o in find(objs, "ConfigMap")}
    if "fastpath-config" not in configmaps:
        return []
    text = configmaps["fastpath-config"].get("data", {}).get("FASTPATH_PROTECTED_PREFIXES", "")
    prefixes = [p.strip() for p in text.split(",") if p.strip()]
    problems = []
    if not prefixes:
        problems.append("fastpath-config: FASTPATH_PROTECTED_PREFIXES is empty")
    for prefix in prefixes:
        try:
            ipaddress.ip_network(prefix)
        except ValueError as err:
            problems.append(f"fastpath-config: FASTPATH_PROTECTED_PREFIXES: {err}")
    api_config = configmaps.get("flask-backend-config", {}).get("data", {})
    if (
        "flask-backend-config" in configmaps
        and api_config.get("FASTPATH_PROTECTED_PREFIXES") != text
    ):
        problems.append(
            "flask-backend-config: FASTPATH_PROTECTED_PREFIXES must be the agents' value"
            f" {text!r}, not {api_config.get('FASTPATH_PROTECTED_PREFIXES')!r}"
        )
    api = find(objs, "Deployment", "flask-backend")
    blocks = {
        peer["ipBlock"]["cidr"]
        for p in find(objs, "NetworkPolicy")
        if api and selects(p["spec"]["podSelector"], pod_labels(api[0]))
        for rule in p["spec"].get("egress") or []
        if _port_matches(rule.get("ports"), 50051)
        for peer in rule.get("to") or []
        if "ipBlock" in peer
    }
    if api and blocks != set(prefixes):
        problems.append(
            f"the API's egress ipBlocks to port 50051 {sorted(blocks)} are not the protected "
            f"prefixes {sorted(prefixes)}"
        )
    return problems


def expected_namespace(obj: Obj) -> tuple[str, ...]:
    """Where an object belongs: the fast path's own objects (named fastpath or fastpath-*) in
    FASTPATH_NAMESPACE, everything else in NAMESPACE; each namespace has its default deny."""
    name = obj["metadata"]["name"]
    if obj["kind"] == "NetworkPolicy" and name == "default-deny-all":
        return (NAMESPACE, FASTPATH_NAMESPACE)
    if name == "fastpath" or name.startswith("fastpath-"):
        return (FASTPATH_NAMESPACE,)
    return (NAMESPACE,)


def images(objs: Iterable[Obj]) -> dict[str, str]:
    """workload name -> image of its first container."""
    return {
        w["metadata"]["name"]: w["spec"]["template"]["spec"]["containers"][0]["image"]
        for w in workloads(objs)
    }


def _namespace(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace", ""))


def _host_network(workload: Obj) -> bool:
    return bool(workload["spec"]["template"]["spec"].get("hostNetwork"))


def _peer_matches(peers: list[Obj] | None, policy_ns: str, other: Obj) -> bool:
    """Whether a rule's from/to list admits the workload `other`. Absent or empty: everyone. An
    ipBlock: node and pod addresses may fall in it, so assume they do. Pod and namespace
    selectors: pods on the pod network only (a host-network pod has the node's address, which
    most CNIs do not attribute to any pod); a podSelector alone means the policy's namespace."""
    if not peers:
        return True
    labels = pod_labels(other)
    for peer in peers:
        if "ipBlock" in peer:
            return True
        if _host_network(other):
            continue
        ns_selector = peer.get("namespaceSelector")
        if ns_selector is None:
            in_namespace = _namespace(other) == policy_ns
        else:
            in_namespace = selects(ns_selector, {"kubernetes.io/metadata.name": _namespace(other)})
        if in_namespace and selects(peer.get("podSelector") or {}, labels):
            return True
    return False


def _port_matches(ports: list[Obj] | None, port: int) -> bool:
    return not ports or any(p.get("port") == port for p in ports)


def _allowed(policies: list[Obj], direction: str, own: Obj, other: Obj, port: int) -> bool:
    """Whether the policies let `own` open (Egress) or accept (Ingress) this connection; a pod no
    policy selects for `direction` is not isolated. A host-network pod's own policy is taken at
    its word (it documents the intent; CNIs with host policies enforce it)."""
    key, peer_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    isolated = False
    for p in policies:
        spec = p["spec"]
        if (
            direction not in spec.get("policyTypes", [])
            or _namespace(p) != _namespace(own)
            or not selects(spec["podSelector"], pod_labels(own))
        ):
            continue
        isolated = True
        for rule in spec.get(key) or []:
            if _peer_matches(rule.get(peer_key), _namespace(p), other) and _port_matches(
                rule.get("ports"), port
            ):
                return True
    return not isolated


def pod_flows(objs: list[Obj]) -> set[tuple[str, str, int]]:
    """(client, server, port) for every pod-to-pod connection the NetworkPolicies allow."""
    policies = find(objs, "NetworkPolicy")
    flows = set()
    loads = list(workloads(objs))
    for src in loads:
        for dst in loads:
            if src is dst:
                continue
            for c in dst["spec"]["template"]["spec"]["containers"]:
                for port in (p["containerPort"] for p in c.get("ports", [])):
                    if _allowed(policies, "Egress", src, dst, port) and _allowed(
                        policies, "Ingress", dst, src, port
                    ):
                        flows.add((src["metadata"]["name"], dst["metadata"]["name"], port))
    return flows


CHARTS = ("platform", "fastpath", "api", "connector", "webui")  # install order
# The namespace each chart is installed into (`helm install -n`); the others go to NAMESPACE.
CHART_NAMESPACES = {"fastpath": FASTPATH_NAMESPACE}


def chart_names() -> list[str]:
    """CHARTS, then any chart `make new-service` added (installed after the core ones)."""
    found = sorted(p.parent.name for p in (repo_root() / "k8s" / "helm").glob("*/Chart.yaml"))
    return list(CHARTS) + [name for name in found if name not in CHARTS]


ENVIRONMENTS = ("alpha", "beta", "prod")


def merge_values(dst: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    """Helm's rule for `-f a.yaml -f b.yaml`: maps merge key by key, everything else replaces."""
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            merge_values(dst[key], value)
        else:
            dst[key] = value
    return dst


def env_values(chart: Path, env: str) -> dict[str, Any]:
    return yaml.safe_load((chart / f"values-{env}.yaml").read_text()) or {}


def helm_render(chart: Path, values: dict[str, Any], namespace: str = NAMESPACE) -> list[Obj]:
    """`helm template` with the Helm engine of helm-python-sdk (no helm binary, no cluster)."""
    import helm_python

    rendered = helm_python.Chart.load(str(chart)).render(
        values, name=chart.name, namespace=namespace, is_install=True
    )
    return [
        obj
        for path, text in sorted(rendered.items())
        if path.endswith(".yaml")
        for obj in load_all(text)
    ]


def helm_environment(env: str) -> list[Obj]:
    """Every chart rendered for one environment, as `make k8s-render` installs them."""
    root = repo_root() / "k8s" / "helm"
    return [
        obj
        for chart in chart_names()
        for obj in helm_render(
            root / chart, env_values(root / chart, env), CHART_NAMESPACES.get(chart, NAMESPACE)
        )
    ]


# Services scaffolded by `make new-service` join the contract (their MarchProxy entries say how).
load_scaffolded(repo_root())
