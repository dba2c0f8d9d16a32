"""Render the deployment files and check them against the contract and the house rules.

Shared by the Kustomize and Helm tests: both produce a list of Kubernetes objects, and the same
`policy_problems()` applies to each (probes, resources, security context, PDB, HPA, network
policies, ports, secrets). A problem is a sentence naming the object and what is wrong.
"""

from __future__ import annotations

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
    if service == "fastpath" and "grpc" not in c.get("livenessProbe", {}):
        problems.append(f"{where}: the fast path's liveness probe must be a gRPC probe")
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
    allowed = FASTPATH_CAPABILITIES if service == "fastpath" else set()
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
        if o["kind"] != "Namespace" and ns != NAMESPACE:
            problems.append(
                f"{o['kind']}/{o['metadata']['name']}: namespace {ns!r}, not {NAMESPACE}"
            )
        if o["kind"] == "Secret":
            problems.append(f"Secret/{o['metadata']['name']}: secrets are never defined here")

    if not any(
        p["spec"].get("podSelector") == {}
        and set(p["spec"].get("policyTypes", [])) >= {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in policies
    ):
        problems.append("no default-deny NetworkPolicy (podSelector {}, Ingress+Egress, no rules)")

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


def images(objs: Iterable[Obj]) -> dict[str, str]:
    """workload name -> image of its first container."""
    return {
        w["metadata"]["name"]: w["spec"]["template"]["spec"]["containers"][0]["image"]
        for w in workloads(objs)
    }


def _peer_matches(peers: list[Obj] | None, labels: dict[str, str]) -> bool:
    """A rule's from/to list: absent or empty means everyone; else a same-namespace pod peer."""
    if not peers:
        return True
    return any(
        "podSelector" in peer
        and "namespaceSelector" not in peer
        and "ipBlock" not in peer
        and selects(peer["podSelector"], labels)
        for peer in peers
    )


def _port_matches(ports: list[Obj] | None, port: int) -> bool:
    return not ports or any(p.get("port") == port for p in ports)


def _allowed(
    policies: list[Obj], direction: str, own: dict[str, str], other: dict[str, str], port: int
) -> bool:
    key, peer_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for p in policies:
        spec = p["spec"]
        if direction not in spec.get("policyTypes", []) or not selects(spec["podSelector"], own):
            continue
        for rule in spec.get(key) or []:
            if _peer_matches(rule.get(peer_key), other) and _port_matches(rule.get("ports"), port):
                return True
    return False


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
                    if _allowed(
                        policies, "Egress", pod_labels(src), pod_labels(dst), port
                    ) and _allowed(policies, "Ingress", pod_labels(dst), pod_labels(src), port):
                        flows.add((src["metadata"]["name"], dst["metadata"]["name"], port))
    return flows


CHARTS = ("platform", "fastpath", "api", "connector", "webui")  # install order


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
        for obj in helm_render(root / chart, env_values(root / chart, env))
    ]


# Services scaffolded by `make new-service` join the contract (their MarchProxy entries say how).
load_scaffolded(repo_root())
