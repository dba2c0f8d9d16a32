"""The deployment files agree with what the services actually use.

Images, ports and variable names in the manifests are compared with the architecture contract
(architecture.py), the services' own config modules, their BUILD files (docker_image) and
Dockerfiles, and the MarchProxy registry (config/marchproxy/services.json).
"""

from __future__ import annotations

import json
import re

import pytest

from deploy.architecture import SERVICES
from deploy.manifests import expected_namespace, find, kustomize, repo_root, workloads

ROOT = repo_root()
BASE = kustomize(ROOT / "k8s" / "kustomize" / "overlays" / "beta")
OWN_IMAGES = {name: c for name, c in SERVICES.items() if c.image.startswith("myapp-")}


def manifest_env_names(service: str) -> set[str]:
    """Every variable the beta environment gives the service's container."""
    workload = next(w for w in workloads(BASE) if w["metadata"]["name"] == service)
    container = workload["spec"]["template"]["spec"]["containers"][0]
    configmaps = {o["metadata"]["name"]: o for o in find(BASE, "ConfigMap")}
    names = {e["name"] for e in container.get("env", [])}
    for src in container.get("envFrom", []):
        names |= set(configmaps[src["configMapRef"]["name"]].get("data", {}))
    return names


@pytest.mark.parametrize("service", sorted(OWN_IMAGES))
def test_every_variable_in_the_manifests_is_read_by_the_service(service: str) -> None:
    module = ROOT / SERVICES[service].config_module
    text = module.read_text()
    unread = sorted(n for n in manifest_env_names(service) if not re.search(rf"\b{n}\b", text))
    assert not unread, f"{module.relative_to(ROOT)} does not mention {unread}"


@pytest.mark.parametrize("service", sorted(OWN_IMAGES))
def test_manifest_images_are_the_docker_image_targets(service: str) -> None:
    contract = SERVICES[service]
    build = (ROOT / contract.code / "BUILD").read_text()
    match = re.search(r"docker_image\((.*?)\n\)", build, re.S)
    if match is None:
        pytest.fail(f"{contract.code}/BUILD has no docker_image target")
    fields = match.group(1)
    assert f'repository="{contract.image}"' in fields
    assert re.search(r'tags=\["docker"\]', fields), "docker_image must be tagged 'docker'"
    base = kustomize(ROOT / "k8s" / "kustomize" / "base")
    image = next(
        w["spec"]["template"]["spec"]["containers"][0]["image"]
        for w in workloads(base)
        if w["metadata"]["name"] == service
    )
    assert image.rsplit(":", 1)[0] == contract.image


@pytest.mark.parametrize("service", sorted(OWN_IMAGES))
def test_dockerfile_matches_the_contract(service: str) -> None:
    contract = SERVICES[service]
    text = (ROOT / contract.code / "Dockerfile").read_text()
    exposed = {int(p) for p in re.findall(r"^EXPOSE\s+(.+)$", text, re.M)[0].split()}
    assert exposed == set(contract.container_ports.values())
    assert re.search(r"^HEALTHCHECK\s", text, re.M), "a HEALTHCHECK is required"
    assert "curl" not in text and "wget" not in text, "health checks run without curl/wget"
    for label in ("source", "version", "revision"):
        assert f"org.opencontainers.image.{label}=" in text
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user, "the image must name its user"
    if service != "fastpath":
        assert user[-1].split(":")[0] not in ("0", "root"), "only the fast path runs as root"


def test_marchproxy_registry_matches_the_services() -> None:
    registry = json.loads((ROOT / "config" / "marchproxy" / "services.json").read_text())
    entries = {s["name"]: s for s in registry["services"]}
    assert set(entries) == set(OWN_IMAGES)
    services = {o["metadata"]["name"]: o for o in find(BASE, "Service")}
    for name, entry in entries.items():
        ports = {p["port"] for p in services[name]["spec"]["ports"]}
        assert entry["port"] in ports, f"{name}: registry port {entry['port']} not in {ports}"
        [namespace] = expected_namespace(services[name])
        assert entry["ip_fqdn"] == f"{name}.{namespace}.svc.cluster.local"
        assert entry["health_check"]["port"] in ports
        assert entry["health_check"]["path"] == "/healthz"
    assert [n for n, e in entries.items() if e["public"]] == ["webui"]
