"""Every Helm chart renders and lints with every values file, and the result follows the rules."""

from __future__ import annotations

import filecmp
import re

import helm_python
import pytest
import yaml
from kubernetes_validate import utils as kv

from deploy.architecture import FASTPATH_NAMESPACE, NAMESPACE
from deploy.kustomize_test import KUBE_VERSIONS, tls_mount
from deploy.manifests import (
    CHARTS,
    ENVIRONMENTS,
    chart_names,
    env_values,
    expected_flows,
    find,
    helm_environment,
    helm_render,
    kustomize,
    pod_flows,
    policy_problems,
    repo_root,
)

HELM = repo_root() / "k8s" / "helm"


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    return request.param, helm_environment(request.param)


@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_chart_lints_strictly(chart: str, env: str) -> None:
    report = helm_python.lint(
        str(HELM / chart), env_values(HELM / chart, env), strict=True, kube_version="v1.30.0"
    )
    bad = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not bad, f"{chart} with values-{env}.yaml: {bad}"


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_environment_validates_strictly(rendered: tuple[str, list[dict]], version: str) -> None:
    env, objs = rendered
    errors = []
    for obj in objs:
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as e:
            errors.append(f"{env} {obj['kind']}/{obj['metadata']['name']} @ {version}: {e.message}")
    assert not errors, "\n".join(errors)


def test_environment_follows_the_rules(rendered: tuple[str, list[dict]]) -> None:
    env, objs = rendered
    problems = policy_problems(objs, expect_hpa=env != "alpha")
    assert not problems, "\n".join(problems)


def test_network_policies_allow_only_the_architecture_flows(
    rendered: tuple[str, list[dict]]
) -> None:
    env, objs = rendered
    assert pod_flows(objs) == expected_flows(objs)


def by_name(obj: dict) -> str:
    return str(obj["name"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_helm_and_kustomize_deploy_the_same_objects(env: str) -> None:
    # NetworkPolicies may be split differently; the flow tests compare what they allow.
    def inventory(objs: list[dict]) -> set[tuple[str, str]]:
        skip = ("Namespace", "NetworkPolicy")
        return {(o["kind"], o["metadata"]["name"]) for o in objs if o["kind"] not in skip}

    helm = helm_environment(env)
    kust = kustomize(repo_root() / "k8s" / "kustomize" / "overlays" / env)
    assert inventory(helm) ^ inventory(kust) == set()
    for kind in ("Deployment", "DaemonSet", "StatefulSet"):
        for obj in find(kust, kind):
            other = find(helm, kind, obj["metadata"]["name"])[0]
            a, b = obj["spec"]["template"]["spec"], other["spec"]["template"]["spec"]
            assert a["containers"][0]["image"] == b["containers"][0]["image"]
            assert a["containers"][0]["ports"] == b["containers"][0]["ports"]
            assert a["containers"][0]["securityContext"] == b["containers"][0]["securityContext"]
            assert sorted(a["volumes"], key=by_name) == sorted(b["volumes"], key=by_name)
            # With an HPA the chart leaves replicas to it (no fight on `helm upgrade`).
            if not find(helm, "HorizontalPodAutoscaler", obj["metadata"]["name"]):
                assert obj["spec"].get("replicas") == other["spec"].get("replicas")
    # The fast path's settings (mTLS files, identities, protected prefixes) agree on both sides.
    for cm in find(kust, "ConfigMap"):
        data = find(helm, "ConfigMap", cm["metadata"]["name"])[0].get("data", {})
        fastpath = {k: v for k, v in cm.get("data", {}).items() if k.startswith("FASTPATH_")}
        assert fastpath == {k: v for k, v in data.items() if k.startswith("FASTPATH_")}
    for service in find(kust, "Service"):
        other = find(helm, "Service", service["metadata"]["name"])[0]
        assert service["spec"].get("clusterIP") == other["spec"].get("clusterIP")
    # The API pushes rules to every agent: "fastpath" must resolve to each pod, not one VIP.
    for objs in (helm, kust):
        assert find(objs, "Service", "fastpath")[0]["spec"]["clusterIP"] == "None"


def test_service_charts_share_one_set_of_templates() -> None:
    reference = HELM / "api" / "templates"
    for chart in chart_names():
        if chart in ("api", "platform"):
            continue
        cmp = filecmp.dircmp(reference, HELM / chart / "templates")
        assert not (cmp.diff_files or cmp.left_only or cmp.right_only), (
            f"k8s/helm/{chart}/templates differs from api's: {cmp.diff_files}"
            f" {cmp.left_only} {cmp.right_only}"
        )


SECRETISH = re.compile(r"(password|secret|token|key)", re.I)


@pytest.mark.parametrize("chart", CHARTS)
def test_values_never_carry_a_secret(chart: str) -> None:
    """Secrets are referenced by name only: no values file sets a password/secret/token."""

    def walk(node: object, path: str) -> list[str]:
        if isinstance(node, dict):
            return [hit for k, v in node.items() for hit in walk(v, f"{path}.{k}")]
        if isinstance(node, list):
            return [hit for i, v in enumerate(node) for hit in walk(v, f"{path}[{i}]")]
        leaf = path.rsplit(".", 1)[-1]
        allowed = leaf in ("existingSecret", "secretName", "name", "key") or ".secretEnv[" in path
        # A path (FASTPATH_TLS_KEY=/etc/myapp/tls/tls.key) names the mounted file, not its content.
        allowed = allowed or (isinstance(node, str) and node.startswith("/etc/myapp/"))
        return [path] if SECRETISH.search(leaf) and not allowed else []

    for values in sorted((HELM / chart).glob("values*.yaml")):
        hits = walk(yaml.safe_load(values.read_text()), values.name)
        assert not hits, f"secret-looking values: {hits}"


def test_missing_secret_name_is_a_clear_render_error() -> None:
    values = yaml.safe_load((HELM / "api" / "values.yaml").read_text())
    values["existingSecret"] = ""
    with pytest.raises(
        helm_python.HelmError, match="existingSecret: the name of an existing Secret"
    ):
        helm_render(HELM / "api", values)


# The mTLS identities of the fast path's control plane (contract of issue 12): the agent's server
# certificate and the API's client certificate, each in its namespace's Secret.
IDENTITIES = {
    "fastpath": (FASTPATH_NAMESPACE, "fastpath-tls", "spiffe://myapp/fastpath", ["server auth"]),
    "api": (
        NAMESPACE,
        "flask-backend-fastpath-tls",
        "spiffe://myapp/flask-backend",
        ["client auth"],
    ),
}
workload_names = {"fastpath": "fastpath", "api": "flask-backend"}


@pytest.mark.parametrize("chart", sorted(IDENTITIES))
def test_cert_manager_option_renders_the_certificate(chart: str) -> None:
    namespace, secret, uri, usages = IDENTITIES[chart]
    values = yaml.safe_load((HELM / chart / "values.yaml").read_text())
    assert find(helm_render(HELM / chart, values, namespace), "Certificate") == []
    values["tls"]["certManager"]["enabled"] = True
    values["tls"]["certManager"]["issuerRef"]["name"] = "corp-ca"
    objs = helm_render(HELM / chart, values, namespace)
    [cert] = find(objs, "Certificate", secret)
    assert cert["apiVersion"] == "cert-manager.io/v1"
    assert cert["metadata"]["namespace"] == namespace
    spec = cert["spec"]
    assert spec["secretName"] == secret
    assert spec["uris"] == [uri]
    assert spec["usages"] == ["digital signature", *usages]
    assert spec["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": "corp-ca",
    }
    if chart == "fastpath":
        assert "fastpath.myapp-fastpath.svc" in spec["dnsNames"]
        assert spec["ipAddresses"] == ["127.0.0.1"]
    # The workload mounts the same Secret either way.
    assert tls_mount(objs, workload_names[chart]) == secret
