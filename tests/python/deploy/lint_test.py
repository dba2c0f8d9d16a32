"""Linters over the deployment files: yamllint, zizmor, checkov, hadolint, workflow rules."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from deploy.manifests import ENVIRONMENTS, helm_environment, kustomize, repo_root, run, tool

ROOT = repo_root()
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
DOCKERFILES = sorted(p for p in (ROOT / "src").rglob("Dockerfile"))


def test_yamllint_passes_on_every_yaml_file() -> None:
    run(
        [
            tool("yamllint"),
            "--strict",
            "-c",
            ".yamllint.yaml",
            "-f",
            "parsable",
            "k8s",
            ".github",
            "config",
        ],
        cwd=ROOT,
    )


def test_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "images.yml"}


def test_zizmor_finds_nothing_in_the_workflows() -> None:
    # --offline: no GitHub API; pedantic: also undocumented permissions and the like.
    proc = run(
        [tool("zizmor"), "--offline", "--no-progress", "--persona=pedantic", "--format=plain"]
        + [str(p) for p in WORKFLOWS]
    )
    assert "No findings" in proc.stdout + proc.stderr


USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)", re.M)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_and_permissions_least(workflow: Path) -> None:
    text = workflow.read_text()
    for ref in USES.findall(text):
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{ref} is not pinned by SHA"
    doc = yaml.safe_load(text)
    assert doc["permissions"] == {}, "workflow-level permissions must be {} (jobs ask for theirs)"
    for name, job in doc["jobs"].items():
        assert "permissions" in job, f"job {name} must declare its permissions"
        assert "write-all" not in str(job["permissions"])
    assert "secrets." not in text.replace("secrets.GITHUB_TOKEN", ""), "only GITHUB_TOKEN is used"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_hadolint_passes(dockerfile: Path) -> None:
    run([tool("hadolint"), "--failure-threshold", "info", str(dockerfile)])


def test_every_service_has_a_dockerfile() -> None:
    folders = {str(p.parent.relative_to(ROOT)) for p in DOCKERFILES}
    assert {"src/python/myapp/connector"} <= folders


def test_checkov_finds_no_failed_check(tmp_path: Path) -> None:
    """Rendered overlays and charts, Dockerfiles and workflows; skips: config/checkov.yaml."""
    rendered = tmp_path / "k8s"
    rendered.mkdir()
    for env in ENVIRONMENTS:
        objs = kustomize(ROOT / "k8s" / "kustomize" / "overlays" / env)
        (rendered / f"kustomize-{env}.yaml").write_text(yaml.safe_dump_all(objs))
        (rendered / f"helm-{env}.yaml").write_text(yaml.safe_dump_all(helm_environment(env)))
    for i, dockerfile in enumerate(DOCKERFILES):
        target = tmp_path / "docker" / str(i) / "Dockerfile"
        target.parent.mkdir(parents=True)
        shutil.copy(dockerfile, target)
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    proc = run(
        [
            tool("checkov"),
            "--config-file",
            str(ROOT / "config" / "checkov.yaml"),
            "--directory",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "dockerfile",
            "github_actions",
            "--output",
            "json",
        ],
        check_rc=False,
    )
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} >= {"kubernetes", "github_actions"}
    failed = [
        f"{r['check_type']}: {c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    errors = [e for r in reports for e in r["results"].get("parsing_errors", [])]
    assert not failed and not errors, "\n".join(failed + [f"parse error: {e}" for e in errors])
    passed = sum(r["summary"]["passed"] for r in reports)
    assert passed > 100, f"checkov checked suspiciously little ({passed} passed)"


def test_image_workflow_builds_real_targets_with_their_dockerfiles() -> None:
    """images.yml's matrix names Pants targets and Dockerfiles that exist, one per service."""
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())
    matrix = doc["jobs"]["build"]["strategy"]["matrix"]
    rows = [row for row in matrix["include"] if "target" in row]
    assert sorted(r["service"] for r in rows) == sorted(matrix["service"])
    for row in rows:
        folder, _, name = row["target"].partition(":")
        # "webui#bundle": the `bundle` script generated from the package_json target `webui`.
        name, _, script = name.partition("#")
        build = (ROOT / folder / "BUILD").read_text()
        assert re.search(
            rf'name="{re.escape(name)}"', build
        ), f"{row['target']} is not in {folder}/BUILD"
        if script:
            assert re.search(
                rf'node_build_script\(entry_point="{re.escape(script)}"', build
            ), f"{row['target']}: no node_build_script {script!r} in {folder}/BUILD"
        assert (ROOT / row["dockerfile"]).is_file()
        assert row["dockerfile"] == f"{folder}/Dockerfile"


def test_pull_requests_cannot_push_and_the_pushed_digest_is_scanned() -> None:
    """images.yml: only jobs that never run on pull requests may write packages, and Trivy scans
    the digest the push step pushed (not another local build)."""
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())
    for name, job in doc["jobs"].items():
        if job["permissions"].get("packages") == "write":
            assert (
                job.get("if") == "github.event_name != 'pull_request'"
            ), f"job {name} has packages: write on pull requests"
    steps = doc["jobs"]["build"]["steps"]
    push = next(i for i, step in enumerate(steps) if step.get("id") == "push")
    scans = [s for s in steps if "aquasecurity/trivy-action" in s.get("uses", "")]
    assert scans, "the build job scans nothing"
    for scan in scans:
        assert steps.index(scan) > push, "the scan runs before the push"
        assert scan["with"]["image-ref"].endswith("@${{ steps.push.outputs.digest }}")
