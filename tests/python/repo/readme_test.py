"""The README, the Makefile and CI agree: every command the README gives exists and CI runs
the README's test command."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(".")


def _make_targets() -> dict[str, str]:
    """Makefile targets -> their `## help` text ('' when missing)."""
    targets = {}
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([a-zA-Z0-9_-]+):(?!=)[^#]*(?:## (.*))?$", line)
        if match and match.group(1) != ".PHONY":
            targets[match.group(1)] = (match.group(2) or "").strip()
    return targets


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def test_every_make_command_in_the_readme_exists() -> None:
    mentioned = set(re.findall(r"\bmake ([a-z][a-z0-9-]*)", _readme()))
    assert {"run", "test"} <= mentioned, "the README must give `make run` and `make test`"
    missing = mentioned - set(_make_targets())
    assert not missing, f"README mentions make targets that do not exist: {sorted(missing)}"


def test_every_make_target_documents_itself_in_make_help() -> None:
    undocumented = [name for name, text in _make_targets().items() if not text]
    assert not undocumented, f"Makefile targets without a '## help' text: {undocumented}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci/run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE), ".ci/run must run `make test`"
    assert "set -euo pipefail" in ci, ".ci/run must stop at the first failing command"


def test_pants_aliases_used_by_the_readme_exist() -> None:
    aliases = tomllib.loads((ROOT / "pants.toml").read_text())["cli"]["alias"]
    for alias in re.findall(r"\./pants run ([a-z-]+)\b", _readme()):
        assert alias in aliases, f"README uses `./pants run {alias}` but pants.toml has no alias"
