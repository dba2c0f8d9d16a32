"""`make new-service` output deploys: its manifests and chart pass every check the others pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import helm_python
import pytest
from kubernetes_validate import utils as kv

from deploy import architecture
from deploy.manifests import (
    ENVIRONMENTS,
    env_values,
    expected_flows,
    helm_environment,
    kustomize,
    pod_flows,
    policy_problems,
    repo_root,
    run,
    tool,
)

NAME = "billing-events"


def scaffold(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, str(root / "scripts" / "new-service.py"), "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the deployment files with one scaffolded service."""
    root = tmp_path_factory.mktemp("checkout")
    src = repo_root()
    for item in ("k8s", "config", "src", "scripts", ".github", ".yamllint.yaml"):
        if (src / item).is_dir():
            shutil.copytree(src / item, root / item)
        elif (src / item).exists():
            shutil.copy(src / item, root / item)
    proc = scaffold(root, "--name", NAME)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def scaffolded(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MYAPP_REPO_ROOT", str(checkout))
    for name, contract in architecture.scaffolded_services(checkout).items():
        monkeypatch.setitem(architecture.SERVICES, name, contract)
    return checkout


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_scaffolded_service_renders_and_follows_the_rules(scaffolded: Path, env: str) -> None:
    for source, objs in (
        ("kustomize", kustomize(scaffolded / "k8s" / "kustomize" / "overlays" / env)),
        ("helm", helm_environment(env)),
    ):
        names = {o["metadata"]["name"] for o in objs if o["kind"] == "Deployment"}
        assert NAME in names, f"{source}/{env} does not deploy {NAME}"
        problems = policy_problems(objs, expect_hpa=env != "alpha")
        assert not problems, f"{source}/{env}:\n" + "\n".join(problems)
        assert pod_flows(objs) == expected_flows(objs)
        assert ("flask-backend", NAME, 5060) in pod_flows(objs)
        for obj in objs:
            kv.validate(obj, kv.latest_version(), strict=True)


def test_scaffolded_chart_lints(scaffolded: Path) -> None:
    chart = scaffolded / "k8s" / "helm" / NAME
    for env in ENVIRONMENTS:
        report = helm_python.lint(str(chart), env_values(chart, env), strict=True)
        assert not [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]


def test_scaffolded_files_pass_the_linters(scaffolded: Path) -> None:
    run([tool("hadolint"), str(scaffolded / "src/python/myapp/billing_events/Dockerfile")])
    run([tool("yamllint"), "--strict", "-c", ".yamllint.yaml", "k8s", "config"], cwd=scaffolded)
    build = (scaffolded / "src/python/myapp/billing_events/BUILD").read_text()
    assert 'repository="myapp-billing-events"' in build and 'tags=["docker"]' in build
    assert "pex_binary(" in build


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", NAME], "already registered"),
        (["--name", "Billing"], "NAME must be"),
        (["--name", "connector"], "taken by the platform"),
        (["--name", "ledger", "--port", "5000"], "PORT 5000"),
    ],
)
def test_bad_requests_fail_clearly(checkout: Path, args: list[str], message: str) -> None:
    proc = scaffold(checkout, *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
