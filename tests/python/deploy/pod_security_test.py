"""Every rendered pod passes the Pod Security level its namespace enforces.

`myapp` enforces `restricted` and holds every pod but the fast-path agent, which lives in
`myapp-fastpath` (`privileged`) and departs from `restricted` only where its manifest says why.
Helm installs into namespaces created from the Kustomize base's Namespace files (k8s/README.md),
so both renderings are checked against those labels.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.architecture import (
    FASTPATH_BPFFS_HOST_PATH,
    FASTPATH_CAPABILITIES,
    FASTPATH_NAMESPACE,
    FASTPATH_XSK_CAPABILITIES,
    NAMESPACE,
)
from deploy.manifests import ENVIRONMENTS, find, helm_environment, kustomize, repo_root
from deploy.pod_security import ENFORCE_LABEL, enforced_levels, pod_templates, violations

KUSTOMIZE = repo_root() / "k8s" / "kustomize"
Obj = dict


def namespace_files() -> list[Obj]:
    """The Namespace objects of the Kustomize base: what `kubectl apply` creates for Helm too."""
    return find(kustomize(KUSTOMIZE / "base"), "Namespace")


def render(name: str) -> list[Obj]:
    """`kustomize-<env>` or `helm-<env>`: every object that environment installs."""
    tool, _, env = name.partition("-")
    if tool == "kustomize":
        return kustomize(KUSTOMIZE / "overlays" / env)
    return helm_environment(env) + namespace_files()


RENDERINGS = [f"{tool}-{env}" for tool in ("kustomize", "helm") for env in ENVIRONMENTS]


@pytest.fixture(scope="module", params=RENDERINGS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    return request.param, render(request.param)


def test_namespaces_enforce_restricted_except_the_fast_paths() -> None:
    namespaces = {o["metadata"]["name"]: o["metadata"]["labels"] for o in namespace_files()}
    for mode in ("enforce", "warn", "audit"):
        assert namespaces[NAMESPACE][f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert namespaces[FASTPATH_NAMESPACE][ENFORCE_LABEL] == "privileged"


def test_every_pod_passes_its_namespace_level(rendered: tuple[str, list[Obj]]) -> None:
    name, objs = rendered
    levels = enforced_levels(objs)
    problems = []
    pods = list(pod_templates(objs))
    assert len(pods) >= 5, f"{name}: only {len(pods)} pod templates rendered"
    for where, namespace, pod in pods:
        if namespace not in levels:
            problems.append(f"{where}: namespace {namespace!r} is not created with a level")
            continue
        problems += violations(f"{name} {where}", pod, levels[namespace])
        if levels[namespace] != "restricted" and where != "DaemonSet/fastpath":
            problems.append(f"{where}: only the fast path may run outside a restricted namespace")
    assert not problems, "\n".join(problems)


def fastpath_departures(objs: list[Obj], extra_capabilities: tuple[str, ...] = ()) -> None:
    """The agent fails `restricted` exactly where fastpath.yaml says why, and nowhere else."""
    [(where, _, pod)] = [p for p in pod_templates(objs) if p[0] == "DaemonSet/fastpath"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    host_paths = [v["hostPath"] for v in volumes.values() if "hostPath" in v]
    assert host_paths == [{"path": FASTPATH_BPFFS_HOST_PATH, "type": "DirectoryOrCreate"}]
    container = f"{where}/containers[fastpath]"
    caps = sorted(FASTPATH_CAPABILITIES + extra_capabilities)
    expected = {
        f"{where}: hostNetwork is not allowed (host namespaces)",
        f"{where}: volume bpffs is a hostPath",
        f"{container}: capabilities {caps} are beyond the baseline set",
        f"{where}: volume bpffs of type ['hostPath'] is not allowed "
        "(only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, "
        "projected, secret)",
        f"{container}: runAsNonRoot must be true (pod or container)",
        f"{container}: runAsUser 0 is not allowed",
        f"{container}: capabilities {caps} may not be added (only NET_BIND_SERVICE)",
    }
    assert set(violations(where, pod)) == expected


def test_the_fast_path_departs_from_restricted_only_where_documented(
    rendered: tuple[str, list[Obj]]
) -> None:
    fastpath_departures(rendered[1])


def test_the_af_xdp_component_adds_only_its_two_capabilities(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    up = os.path.relpath(KUSTOMIZE, overlay)
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{up}/overlays/beta]\ncomponents: [{up}/components/fastpath-xsk]\n"
    )
    objs = kustomize(overlay)
    fastpath_departures(objs, FASTPATH_XSK_CAPABILITIES)
    assert find(objs, "ConfigMap", "fastpath-config")[0]["data"]["FASTPATH_XSK_QUEUES"] == "0"


def _api_pod() -> Obj:
    objs = kustomize(KUSTOMIZE / "overlays" / "beta")
    return copy.deepcopy(find(objs, "Deployment", "flask-backend")[0]["spec"]["template"])


def _container(pod: Obj) -> Obj:
    return pod["spec"]["containers"][0]


# Each breaks one rule of the restricted (or baseline) profile in the otherwise passing API pod.
BREAKS: dict[str, tuple[Callable[[Obj], None], str]] = {
    "host network": (lambda p: p["spec"].update(hostNetwork=True), "hostNetwork is not allowed"),
    "host PID": (lambda p: p["spec"].update(hostPID=True), "hostPID is not allowed"),
    "host IPC": (lambda p: p["spec"].update(hostIPC=True), "hostIPC is not allowed"),
    "hostPath": (
        lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "volume h is a hostPath",
    ),
    "nfs volume": (
        lambda p: p["spec"]["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
        "volume n of type ['nfs'] is not allowed",
    ),
    "hostPort": (
        lambda p: _container(p)["ports"][0].update(hostPort=5000),
        "hostPort 5000 is not allowed",
    ),
    "privileged": (
        lambda p: _container(p)["securityContext"].update(privileged=True),
        "privileged is not allowed",
    ),
    "privilege escalation": (
        lambda p: _container(p)["securityContext"].pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation must be false",
    ),
    "root user": (
        lambda p: p["spec"]["securityContext"].update(runAsUser=0),
        "runAsUser 0 is not allowed",
    ),
    "runAsNonRoot unset": (
        lambda p: p["spec"]["securityContext"].pop("runAsNonRoot"),
        "runAsNonRoot must be true",
    ),
    "runAsNonRoot false in a container": (
        lambda p: _container(p)["securityContext"].update(runAsNonRoot=False),
        "runAsNonRoot must be true",
    ),
    "no seccomp profile": (
        lambda p: p["spec"]["securityContext"].pop("seccompProfile"),
        "seccompProfile must be RuntimeDefault or Localhost",
    ),
    "unconfined seccomp": (
        lambda p: _container(p)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        "seccompProfile Unconfined is not allowed",
    ),
    "capabilities not dropped": (
        lambda p: _container(p)["securityContext"]["capabilities"].update(drop=["NET_RAW"]),
        "capabilities must drop ALL",
    ),
    "added capability": (
        lambda p: _container(p)["securityContext"]["capabilities"].update(add=["CHOWN"]),
        "capabilities ['CHOWN'] may not be added",
    ),
    "unsafe sysctl": (
        lambda p: p["spec"]["securityContext"].update(
            sysctls=[{"name": "net.core.somaxconn", "value": "1024"}]
        ),
        "sysctl net.core.somaxconn is not in the safe set",
    ),
    "procMount": (
        lambda p: _container(p)["securityContext"].update(procMount="Unmasked"),
        "procMount Unmasked is not allowed",
    ),
    "SELinux type": (
        lambda p: p["spec"]["securityContext"].update(seLinuxOptions={"type": "spc_t"}),
        "seLinuxOptions.type spc_t is not allowed",
    ),
    "AppArmor unconfined": (
        lambda p: p["metadata"]
        .setdefault("annotations", {})
        .update({"container.apparmor.security.beta.kubernetes.io/api": "unconfined"}),
        "AppArmor annotation",
    ),
    "init container as root": (
        lambda p: p["spec"]
        .setdefault("initContainers", [])
        .append({"name": "init", "image": "x", "securityContext": {"runAsUser": 0}}),
        "initContainers[init]: allowPrivilegeEscalation must be false",
    ),
}


def test_the_api_pod_passes_unchanged() -> None:
    assert violations("api", _api_pod()) == []


@pytest.mark.parametrize("case", sorted(BREAKS))
def test_the_checker_refuses_each_violation(case: str) -> None:
    """The rule checker itself: each broken rule is reported, naming what is wrong."""
    pod = _api_pod()
    breaks, message = BREAKS[case]
    breaks(pod)
    problems = violations("api", pod)
    assert any(message in p for p in problems), problems
    # A privileged namespace admits it anyway; an unknown level is an error, not a pass.
    assert violations("api", pod, "privileged") == []
    with pytest.raises(ValueError, match="unknown Pod Security level 'strict'"):
        violations("api", pod, "strict")
