#!/usr/bin/env python3
"""`make new-service NAME=billing [PORT=5060]`: scaffold a Python service the way the repository's
services are laid out, ready to test, package, containerize and deploy.

Creates src/python/myapp/<pkg>/ (config, Flask app with /healthz, entry point, tests, BUILD with
pex_binary + docker_image, Dockerfile with a HEALTHCHECK), k8s/kustomize/base/<name>.yaml (added
to the base and to every overlay's images), k8s/helm/<name>/ (the shared service templates and
values-<env>.yaml), and its entry in config/marchproxy/services.json, whose "contract" block the
deployment tests (tests/python/deploy) check the manifests against. The API (flask-backend) is
the one client the network policies let in; edit `clients` in the registry to change that.
"""

# ruff: noqa: E501 - the templates hold generated lines exactly as they are written out
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

RESERVED = {
    "api", "webui", "fastpath", "connector", "postgres", "redis", "platform", "flask-backend",
    "common", "bpf",
}  # fmt: skip
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,28}[a-z0-9]$")
FIRST_PORT = 5060


def fail(message: str) -> None:
    print(f"new-service: {message}", file=sys.stderr)
    sys.exit(2)


def files(name: str, pkg: str, port: int) -> dict[str, str]:
    title = name.replace("-", " ").title()
    upper = pkg.upper()
    src = f"src/python/myapp/{pkg}"
    return {
        f"{src}/__init__.py": f'"""{title} service (scaffolded by `make new-service`)."""\n',
        f"{src}/config.py": f'''"""Every setting of the {name} service, read from the environment in this one place.

Variables:

- ``APP_ENV``: ``production`` (default: an image runs as production) or ``development``
  (opt-in, e.g. ``make run``).
- ``{upper}_PORT``: listening port (default {port}); ``{upper}_HOST`` (default 0.0.0.0).
- ``LOG_LEVEL`` (default INFO).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from myapp.common.env import ConfigError, env_int, env_str

__all__ = ["Config", "ConfigError"]


@dataclass(frozen=True)
class Config:
    app_env: str = "production"
    host: str = "0.0.0.0"  # noqa: S104 - a container's service port
    port: int = {port}
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read and validate every variable; raises ConfigError naming the offending one."""
        env = os.environ if env is None else env
        app_env = (env_str(env, "APP_ENV", "production") or "production").lower()
        if app_env not in ("development", "production"):
            raise ConfigError(f"APP_ENV must be 'development' or 'production', got {{app_env!r}}")
        return cls(
            app_env=app_env,
            host=env_str(env, "{upper}_HOST", "0.0.0.0") or "0.0.0.0",  # noqa: S104
            port=env_int(env, "{upper}_PORT", {port}, minimum=1, maximum=65535),
            log_level=(env_str(env, "LOG_LEVEL", "INFO") or "INFO").upper(),
        )
''',
        f"{src}/app.py": f'''"""HTTP side of the {name} service."""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from myapp.{pkg}.config import Config


def create_app(config: Config) -> Flask:
    """Build the app; nothing is read or connected at import time."""
    app = Flask(__name__)
    app.config["SERVICE_CONFIG"] = config

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(status="ok")

    return app
''',
        f"{src}/main.py": f'''"""{title} entry point: read the configuration and serve on port {port}."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from werkzeug.serving import make_server  # pants: no-infer-dep (Flask brings werkzeug)

from myapp.{pkg}.app import create_app
from myapp.{pkg}.config import Config, ConfigError


def main() -> None:
    try:
        config = Config.from_env()
    except ConfigError as e:
        print(f"{name}: configuration error: {{e}}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=config.log_level)
    server = make_server(config.host, config.port, create_app(config), threaded=True)

    def shutdown(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.serve_forever()


if __name__ == "__main__":
    main()
''',
        f"{src}/app_test.py": f"""from __future__ import annotations

from myapp.{pkg}.app import create_app
from myapp.{pkg}.config import Config


def test_healthz() -> None:
    resp = create_app(Config()).test_client().get("/healthz")
    assert resp.status_code == 200
    assert resp.get_json() == {{"status": "ok"}}
""",
        f"{src}/config_test.py": f"""from __future__ import annotations

import pytest

from myapp.{pkg}.config import Config, ConfigError


def test_defaults() -> None:
    config = Config.from_env({{}})
    assert config.port == {port}
    assert config.app_env == "production"  # development is opt-in


@pytest.mark.parametrize(
    ("env", "named"), [({{"APP_ENV": "staging"}}, "APP_ENV"), ({{"{upper}_PORT": "0"}}, "{upper}_PORT")]
)
def test_invalid_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Config.from_env(env)
""",
        f"{src}/BUILD": f"""python_sources(
    name="lib",
    # werkzeug (the HTTP server) comes with flask; it is not a requirement of its own.
    overrides={{"main.py": {{"dependencies": ["3rdparty/python:reqs#flask"]}}}},
)

python_tests(name="tests")

pex_binary(
    name="{pkg}",
    entry_point="main.py:main",
    layout="packed",
    execution_mode="venv",
)

# Image myapp-{name} (podman: see scripts/images.sh; Docker: `PANTS_TAG='[]' ./pants package ::`).
docker_image(
    name="docker",
    tags=["docker"],
    repository="myapp-{name}",
    image_tags=["dev"],
    extra_build_args=["VERSION", "REVISION"],
)
""",
        f"{src}/Dockerfile": f"""# {title} image: the Pants-built PEX on a slim Python; build context = Pants' dist/ tree.
FROM docker.io/library/python:3.11-slim-bookworm

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="myapp-{name}" \\
      org.opencontainers.image.source="https://github.com/myorg/myapp" \\
      org.opencontainers.image.version="${{VERSION}}" \\
      org.opencontainers.image.revision="${{REVISION}}"

ENV PEX_ROOT=/opt/pex \\
    PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1
COPY src.python.myapp.{pkg}/{pkg}.pex /app/{pkg}.pex
# Build the PEX's venv now and run it directly: at run time the root file system is read-only.
RUN PEX_INTERPRETER=1 python3.11 /app/{pkg}.pex -c "import myapp.{pkg}.main" \\
 && ln -s "$(dirname "$(find /opt/pex/venvs -mindepth 3 -maxdepth 3 -name pex)")" /app/venv \\
 && /app/venv/bin/python -c "import myapp.{pkg}.main"

USER 10001:10001
EXPOSE {port}
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \\
  CMD ["python3.11", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=2)"]
ENTRYPOINT ["/app/venv/pex"]
""",
        f"k8s/kustomize/base/{name}.yaml": f"""# {title} (scaffolded by `make new-service`), port {port}; the API is its only client.
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
data:
  APP_ENV: production
  LOG_LEVEL: INFO
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {name}
automountServiceAccountToken: false
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/component: {name}
spec:
  replicas: 1
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
        app.kubernetes.io/component: {name}
    spec:
      serviceAccountName: {name}
      automountServiceAccountToken: false
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {name}
          image: myapp-{name}:latest
          imagePullPolicy: Always
          ports:
            - name: http
              containerPort: {port}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {name}-config
          livenessProbe:
            httpGet: {{path: /healthz, port: http}}
            periodSeconds: 10
            timeoutSeconds: 2
          readinessProbe:
            httpGet: {{path: /healthz, port: http}}
            periodSeconds: 5
            timeoutSeconds: 2
          resources:
            requests: {{cpu: 25m, memory: 64Mi}}
            limits: {{cpu: 250m, memory: 192Mi}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            privileged: false
            capabilities:
              drop: [ALL]
          volumeMounts:
            - {{name: tmp, mountPath: /tmp}}
      volumes:
        - name: tmp
          emptyDir: {{sizeLimit: 16Mi}}
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: {name}
  ports:
    - name: http
      port: {port}
      targetPort: http
      protocol: TCP
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {name}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {name}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: flask-backend
      ports:
        - {{protocol: TCP, port: {port}}}
  egress: []
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: flask-backend-to-{name}
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: flask-backend
  policyTypes: [Egress]
  egress:
    - to:
        - podSelector:
            matchLabels:
              app.kubernetes.io/name: {name}
      ports:
        - {{protocol: TCP, port: {port}}}
""",
        f"k8s/helm/{name}/Chart.yaml": f"""apiVersion: v2
name: {name}
description: myapp {name} service (scaffolded by `make new-service`), port {port}.
type: application
version: 0.1.0
appVersion: "0.1.0"
""",
        f"k8s/helm/{name}/.helmignore": "values-*.yaml\n",
        f"k8s/helm/{name}/values.yaml": f"""# {title}; environments override in values-<env>.yaml.
name: {name}
component: {name}
kind: Deployment
containerName: {name}
replicaCount: 1

image:
  repository: ghcr.io/myorg/myapp-{name}
  tag: "0.1.0"
  pullPolicy: Always

ports:
  - {{name: http, containerPort: {port}, servicePort: {port}}}

metrics: null

config:
  APP_ENV: production
  LOG_LEVEL: INFO

existingSecret: myapp-secrets
secretEnv: []

probes:
  liveness:
    httpGet: {{path: /healthz, port: http}}
    periodSeconds: 10
    timeoutSeconds: 2
  readiness:
    httpGet: {{path: /healthz, port: http}}
    periodSeconds: 5
    timeoutSeconds: 2

resources:
  requests: {{cpu: 25m, memory: 64Mi}}
  limits: {{cpu: 250m, memory: 192Mi}}

podSecurityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile: {{type: RuntimeDefault}}

securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  privileged: false
  capabilities: {{drop: [ALL]}}

scratchDirs:
  - {{name: tmp, mountPath: /tmp, sizeLimit: 16Mi}}
hostPaths: []

pdb: {{maxUnavailable: 1}}

autoscaling:
  enabled: false

networkPolicy:
  ingress:
    - from: [{{podSelector: {{matchLabels: {{app.kubernetes.io/name: flask-backend}}}}}}]
      ports: [{{protocol: TCP, port: {port}}}]
  egress: []
  # Workloads that may connect (the chart adds their egress rule).
  clients: [flask-backend]
""",
        f"k8s/helm/{name}/values-alpha.yaml": f"""image:
  repository: localhost/myapp-{name}
  tag: dev
  pullPolicy: IfNotPresent
""",
        f"k8s/helm/{name}/values-beta.yaml": 'image:\n  tag: "0.1.0"\n',
        f"k8s/helm/{name}/values-prod.yaml": 'image:\n  tag: "0.1.0"\n',
    }


def add_to_kustomize(root: Path, name: str) -> None:
    base = root / "k8s/kustomize/base/kustomization.yaml"
    text = base.read_text()
    if not text.endswith("\n"):
        text += "\n"
    base.write_text(text + f"  - {name}.yaml\n")
    for env in ("alpha", "beta", "prod"):
        overlay = root / f"k8s/kustomize/overlays/{env}/kustomization.yaml"
        lines = overlay.read_text().splitlines(keepends=True)
        last = max(i for i, line in enumerate(lines) if line.startswith("  - {name: myapp-"))
        if env == "alpha":
            entry = f"  - {{name: myapp-{name}, newName: localhost/myapp-{name}, newTag: dev}}\n"
        else:
            entry = f'  - {{name: myapp-{name}, newName: ghcr.io/myorg/myapp-{name}, newTag: "0.1.0"}}\n'
        lines.insert(last + 1, entry)
        overlay.write_text("".join(lines))


def register(root: Path, name: str, pkg: str, port: int) -> None:
    path = root / "config/marchproxy/services.json"
    registry = json.loads(path.read_text())
    registry["services"].append(
        {
            "name": name,
            "description": f"{name} (scaffolded by make new-service)",
            "ip_fqdn": f"{name}.myapp.svc.cluster.local",
            "port": port,
            "protocol": "http",
            "health_check": {"path": "/healthz", "port": port},
            "public": False,
            "auth_type": "none",
            "contract": {
                "image": f"myapp-{name}",
                "code": f"src/python/myapp/{pkg}",
                "config_module": f"src/python/myapp/{pkg}/config.py",
                "env": ["APP_ENV", "LOG_LEVEL"],
                "clients": ["flask-backend"],
            },
        }
    )
    path.write_text(json.dumps(registry, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="Kubernetes name, e.g. billing")
    parser.add_argument(
        "--port", type=int, help=f"HTTP port (default: first free from {FIRST_PORT})"
    )
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    name, root = args.name, args.root
    if not NAME_RE.match(name):
        fail(
            f"NAME must be 3-30 characters of a-z, 0-9 and '-', starting with a letter; got {name!r}"
        )
    if name in RESERVED:
        fail(f"{name!r} is taken by the platform; choose another NAME")
    pkg = name.replace("-", "_")
    registry = json.loads((root / "config/marchproxy/services.json").read_text())
    used_ports = {int(s["port"]) for s in registry["services"]} | {
        3000,
        5000,
        5050,
        5432,
        6379,
        8080,
        50051,
    }
    if any(s["name"] == name for s in registry["services"]):
        fail(f"{name!r} is already registered in config/marchproxy/services.json")
    port = args.port
    if port is None:
        port = next(p for p in range(FIRST_PORT, 65535) if p not in used_ports)
    elif not 1024 <= port <= 65535 or port in used_ports:
        fail(f"PORT {port} is outside 1024-65535 or already used by another service")
    created = files(name, pkg, port)
    for rel in created:
        if (root / rel).exists():
            fail(f"{rel} already exists")
    for rel, text in created.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    shutil.copytree(root / "k8s/helm/api/templates", root / f"k8s/helm/{name}/templates")
    add_to_kustomize(root, name)
    register(root, name, pkg, port)
    print(
        f"new-service: {name} on port {port} in src/python/myapp/{pkg}, k8s/kustomize/base/{name}.yaml,"
    )
    print(
        f"  k8s/helm/{name}/, config/marchproxy/services.json. Next: ./pants test src/python/myapp/{pkg}::"
    )
    print("  and ./pants test tests/python/deploy:: (manifests), then add it to scripts/images.sh.")


if __name__ == "__main__":
    main()
