"""`make k8s-render`: write every rendered environment to a folder (default dist/k8s)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from deploy.manifests import ENVIRONMENTS, helm_environment, kustomize, repo_root


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "dist/k8s").resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = repo_root()
    for env in ENVIRONMENTS:
        for kind, objs in (
            ("kustomize", kustomize(root / "k8s" / "kustomize" / "overlays" / env)),
            ("helm", helm_environment(env)),
        ):
            path = out / f"{kind}-{env}.yaml"
            path.write_text(yaml.safe_dump_all(objs, sort_keys=False))
            print(f"{path}: {len(objs)} objects")


if __name__ == "__main__":
    main()
