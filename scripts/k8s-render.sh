#!/usr/bin/env bash
# Render what `kubectl apply -k` and the Helm charts would install, offline, into dist/k8s/:
#   dist/k8s/kustomize-<env>.yaml and dist/k8s/helm-<env>.yaml for env in alpha beta prod.
# Uses kubectl (kustomize) and the Helm engine of helm-python-sdk, from the `tools` resolve.
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist/k8s
mkdir -p "$out"
MYAPP_REPO_ROOT="$PWD" ./pants run tests/python/deploy/render.py -- "$PWD/$out"
