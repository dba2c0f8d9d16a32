"""The architecture contract the deployment files must honour, in one place.

Mirrors the "Services" and "Configuration" sections of the team's ARCHITECTURE.md (names, ports,
environment variables). `config/marchproxy/services.json` is checked against it too, so a change
of port or name has to be made in the contract, the registry and every manifest together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ServiceContract:
    """One deployable: its Kubernetes names, ports and the variables it reads."""

    name: str  # Kubernetes Service (and workload) name
    image: str  # image repository in the base manifests and the docker_image target
    container_ports: dict[str, int]  # container port name -> number
    service_ports: dict[str, int]  # Service port name -> port
    kind: str = "Deployment"
    env: frozenset[str] = field(default_factory=frozenset)  # variables it may be given
    secret_env: frozenset[str] = field(default_factory=frozenset)  # those from Secrets only
    code: str = ""  # source folder (where its Dockerfile sits)
    config_module: str = ""  # the one file that documents and reads its variables
    clients: tuple[str, ...] = ()  # workloads allowed to connect (scaffolded services only)


SHARED_ENV = frozenset({"APP_ENV", "LOG_LEVEL", "LOG_FORMAT"})

SERVICES: dict[str, ServiceContract] = {
    "webui": ServiceContract(
        name="webui",
        image="myapp-webui",
        container_ports={"http": 3000},
        service_ports={"http": 80},
        env=frozenset({"API_URL", "APP_ENV"}),
        code="src/js/webui",
        config_module="src/js/webui/server/config.mjs",
    ),
    "flask-backend": ServiceContract(
        name="flask-backend",
        image="myapp-api",
        container_ports={"http": 5000},
        service_ports={"http": 5000},
        env=SHARED_ENV
        | {
            "DATABASE_URL",
            "DB_TYPE",
            "DB_HOST",
            "DB_PORT",
            "DB_NAME",
            "DB_USER",
            "DB_PASSWORD",
            "DATA_DIR",
            "JWT_SECRET",
            "ADMIN_PASSWORD",
            "REDIS_URL",
            "FASTPATH_ADDR",
            "FASTPATH_TLS_CA",
            "FASTPATH_TLS_CERT",
            "FASTPATH_TLS_KEY",
            "FASTPATH_TLS_SERVER_NAME",
            "FASTPATH_PROTECTED_PREFIXES",
            "TRUSTED_PROXY_HOPS",
            "CONNECTOR_URL",
            "CONNECTOR_INGEST_TOKEN",
        },
        secret_env=frozenset(
            {"JWT_SECRET", "DB_PASSWORD", "ADMIN_PASSWORD", "CONNECTOR_INGEST_TOKEN"}
        ),
        code="src/python/myapp/api",
        config_module="src/python/myapp/api/config.py",
    ),
    "fastpath": ServiceContract(
        name="fastpath",
        image="myapp-fastpath",
        kind="DaemonSet",
        container_ports={"grpc": 50051, "http": 8080},
        service_ports={"grpc": 50051, "http": 8080},
        env=SHARED_ENV
        | {
            "FASTPATH_INTERFACES",
            "FASTPATH_MODE",
            "FASTPATH_BPFFS",
            "FASTPATH_XSK_QUEUES",
            "FASTPATH_TLS_CERT",
            "FASTPATH_TLS_KEY",
            "FASTPATH_TLS_CLIENT_CA",
            "FASTPATH_WRITERS",
            "FASTPATH_READERS",
            "FASTPATH_PROTECTED_PREFIXES",
        },
        code="src/python/myapp/fastpath",
        config_module="src/python/myapp/fastpath/config.py",
    ),
    "connector": ServiceContract(
        name="connector",
        image="myapp-connector",
        container_ports={"http": 5050},
        service_ports={"http": 5050},
        env=SHARED_ENV
        | {
            "CONNECTOR_WEBHOOKS",
            "CONNECTOR_ALLOWED_NETWORKS",
            "CONNECTOR_CA_BUNDLE",
            "CONNECTOR_INGEST_TOKEN",
            "CONNECTOR_MAX_ATTEMPTS",
            "CONNECTOR_RETRY_BASE_SECONDS",
            "CONNECTOR_TIMEOUT_SECONDS",
            "CONNECTOR_THREADS",
        },
        # The webhooks hold their URLs (which may carry tokens) and signing secrets.
        secret_env=frozenset({"CONNECTOR_WEBHOOKS", "CONNECTOR_INGEST_TOKEN"}),
        code="src/python/myapp/connector",
        config_module="src/python/myapp/connector/config.py",
    ),
    "postgres": ServiceContract(
        name="postgres",
        image="docker.io/library/postgres",
        kind="StatefulSet",
        container_ports={"postgres": 5432},
        service_ports={"postgres": 5432},
        env=frozenset({"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD", "PGDATA"}),
        secret_env=frozenset({"POSTGRES_PASSWORD"}),
    ),
}

NAMESPACE = "myapp"
# The fast-path agent's own namespace (Pod Security `privileged`); `myapp` enforces `restricted`.
FASTPATH_NAMESPACE = "myapp-fastpath"
# The only Secret the manifests reference; created by `make k8s-secrets` (never committed).
SECRET_NAME = "myapp-secrets"
# Services that scale horizontally with an HPA (beta/prod; alpha scales by hand).
AUTOSCALED = ("flask-backend", "webui")
# Capabilities the fast-path agent adds (k8s/kustomize/base/fastpath/fastpath.yaml says why), and
# the two more that only AF_XDP sockets need (k8s/kustomize/components/fastpath-xsk).
FASTPATH_CAPABILITIES = ("BPF", "PERFMON", "NET_ADMIN")
FASTPATH_XSK_CAPABILITIES = ("NET_RAW", "IPC_LOCK")
# The agent's pins: this directory of the node's bpffs only (a hostPath), never all of it.
FASTPATH_BPFFS_HOST_PATH = "/sys/fs/bpf/myapp"


def scaffolded_services(root: Path) -> dict[str, ServiceContract]:
    """Services added by `make new-service`: their contract sits in their MarchProxy entry."""
    registry = json.loads((root / "config" / "marchproxy" / "services.json").read_text())
    found = {}
    for entry in registry["services"]:
        contract = entry.get("contract")
        if contract is None:
            continue
        port = int(entry["port"])
        found[entry["name"]] = ServiceContract(
            name=entry["name"],
            image=contract["image"],
            container_ports={"http": port},
            service_ports={"http": port},
            env=frozenset(contract["env"]),
            secret_env=frozenset(contract.get("secret_env", [])),
            code=contract["code"],
            config_module=contract["config_module"],
            clients=tuple(contract.get("clients", [])),
        )
    return found


def load_scaffolded(root: Path) -> None:
    """Add the scaffolded services of the checkout at `root` to SERVICES."""
    SERVICES.update(scaffolded_services(root))
