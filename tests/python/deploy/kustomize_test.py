"""Every Kustomize overlay renders offline, validates strictly, and follows the deployment rules."""

from __future__ import annotations

import pytest
from kubernetes_validate import utils as kv

from deploy.architecture import FASTPATH_NAMESPACE, NAMESPACE, SERVICES
from deploy.manifests import (
    expected_flows,
    find,
    images,
    kustomize,
    pod_flows,
    policy_problems,
    repo_root,
)

OVERLAYS = ("alpha", "beta", "prod")
# The oldest Kubernetes we support and the newest schema the validator ships.
KUBE_VERSIONS = ("1.30.0", kv.latest_version())


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    overlay = repo_root() / "k8s" / "kustomize" / "overlays" / request.param
    return request.param, kustomize(overlay)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_overlay_validates_strictly(rendered: tuple[str, list[dict]], version: str) -> None:
    overlay, objs = rendered
    errors = []
    for obj in objs:
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as e:
            errors.append(
                f"{overlay} {obj['kind']}/{obj['metadata']['name']} @ {version}: {e.message}"
            )
    assert not errors, "\n".join(errors)


def test_overlay_follows_the_rules(rendered: tuple[str, list[dict]]) -> None:
    overlay, objs = rendered
    problems = policy_problems(objs, expect_hpa=overlay != "alpha")
    assert not problems, "\n".join(problems)


def test_network_policies_allow_only_the_architecture_flows(
    rendered: tuple[str, list[dict]]
) -> None:
    overlay, objs = rendered
    assert pod_flows(objs) == expected_flows(objs)


def test_alpha_is_one_replica_each_without_autoscaling() -> None:
    objs = kustomize(repo_root() / "k8s/kustomize/overlays/alpha")
    replicas = {o["metadata"]["name"]: o["spec"]["replicas"] for o in find(objs, "Deployment")}
    assert replicas == {"flask-backend": 1, "webui": 1, "connector": 1}
    # `kubectl scale deployment flask-backend --replicas=3` must hold: no HPA to undo it.
    assert find(objs, "HorizontalPodAutoscaler") == []
    assert find(objs, "StatefulSet", "postgres")
    assert all(i.startswith("localhost/") for n, i in images(objs).items() if n != "postgres")


@pytest.mark.parametrize("overlay", ["beta", "prod"])
def test_shared_overlays_use_redis_and_published_images(overlay: str) -> None:
    objs = kustomize(repo_root() / "k8s/kustomize/overlays" / overlay)
    cm = find(objs, "ConfigMap", "flask-backend-config")[0]
    assert cm["data"]["REDIS_URL"] == "redis://redis:6379/0"
    for name, image in images(objs).items():
        if name in SERVICES and SERVICES[name].image.startswith("myapp-"):
            repo, _, tag = image.rpartition(":")
            assert repo == f"ghcr.io/myorg/{SERVICES[name].image}" and tag not in ("", "latest")


def test_everything_lives_in_the_namespace_of_the_standards() -> None:
    objs = kustomize(repo_root() / "k8s/kustomize/overlays/alpha")
    namespaces = {o["metadata"]["name"] for o in find(objs, "Namespace")}
    assert namespaces == {NAMESPACE, FASTPATH_NAMESPACE}
    assert {o["metadata"]["namespace"] for o in find(objs, "DaemonSet")} == {FASTPATH_NAMESPACE}
    # The standards' commands name these objects: port-forward svc/webui 3000:80,
    # svc/flask-backend 5000:5000, scale deployment flask-backend.
    webui = find(objs, "Service", "webui")[0]["spec"]["ports"][0]
    assert (webui["port"], webui["targetPort"]) == (80, "http")
    assert find(objs, "Deployment", "flask-backend")


def test_policy_check_catches_a_broken_manifest() -> None:
    """The rule checker itself: a container without probes/limits, running as root, is reported."""
    objs = kustomize(repo_root() / "k8s/kustomize/overlays/beta")
    api = find(objs, "Deployment", "flask-backend")[0]
    container = api["spec"]["template"]["spec"]["containers"][0]
    del container["readinessProbe"]
    container["resources"]["limits"].pop("memory")
    container["securityContext"]["runAsNonRoot"] = False
    container["env"].append({"name": "JWT_SECRET_FILE", "value": "/x"})
    config = find(objs, "ConfigMap", "flask-backend-config")[0]["data"]
    config["FASTPATH_TLS_KEY"] = "/etc/myapp/key.pem"
    config["FASTPATH_ADDR"] = "fastpath:50051"
    agent = find(objs, "ConfigMap", "fastpath-config")[0]["data"]
    agent["FASTPATH_PROTECTED_PREFIXES"] += ",192.0.2.0/33"
    problems = "\n".join(policy_problems(objs))
    assert "no readinessProbe" in problems
    assert "resources.limits.memory missing" in problems
    assert "must run as non-root" in problems
    assert "JWT_SECRET_FILE is not one flask-backend reads" in problems
    assert "FASTPATH_TLS_KEY must be /etc/myapp/tls/tls.key" in problems
    assert "FASTPATH_ADDR must be fastpath.myapp-fastpath.svc.cluster.local:50051" in problems
    assert "192.0.2.0/33' does not appear to be an IPv4 or IPv6 network" in problems
    assert "egress ipBlocks to port 50051" in problems
    assert "FASTPATH_PROTECTED_PREFIXES must be the agents' value" in problems


def tls_mount(objs: list[dict], workload: str) -> str:
    """The Secret a workload mounts read-only at /etc/myapp/tls (its mTLS certificate)."""
    [w] = [
        o
        for o in objs
        if o["kind"] in ("Deployment", "DaemonSet") and o["metadata"]["name"] == workload
    ]
    pod = w["spec"]["template"]["spec"]
    mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/etc/myapp/tls"]
    assert len(mounts) == 1 and mounts[0].get("readOnly") is True, mounts
    [volume] = [v for v in pod["volumes"] if v["name"] == mounts[0]["name"]]
    return str(volume["secret"]["secretName"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_control_plane_certificates_are_mounted(overlay: str) -> None:
    objs = kustomize(repo_root() / "k8s/kustomize/overlays" / overlay)
    assert tls_mount(objs, "fastpath") == "fastpath-tls"
    assert tls_mount(objs, "flask-backend") == "flask-backend-fastpath-tls"


def test_the_api_reaches_the_host_network_agents_only_through_ip_blocks() -> None:
    """Host-network pods have node addresses, which pod/namespace selectors do not match."""
    objs = kustomize(repo_root() / "k8s/kustomize/overlays/beta")
    assert ("flask-backend", "fastpath", 50051) in pod_flows(objs)
    policy = find(objs, "NetworkPolicy", "flask-backend-to-fastpath")[0]
    for rule in policy["spec"]["egress"]:
        rule["to"] = [peer for peer in rule["to"] if "ipBlock" not in peer]
    assert ("flask-backend", "fastpath", 50051) not in pod_flows(objs)
