#!/usr/bin/env bash
# Create (or replace) the Secrets the workloads reference:
# - myapp-secrets (namespace myapp), random values. The connector's webhooks come from
#   CONNECTOR_WEBHOOKS in the environment (JSON [{"name","url","secret"}], default none).
# - the fast path's mutual TLS, made by myapp.common.pki: fastpath-ca (the CA and its key, and the
#   trust bundle; namespace myapp-fastpath), fastpath-tls (the agents' server certificate,
#   myapp-fastpath) and flask-backend-fastpath-tls (the API's client certificate, myapp). The CA
#   in fastpath-ca is kept; the two certificates are issued afresh on every run.
#
# Usage: scripts/k8s-secrets.sh [--tls-only] [--rotate-ca | --drop-old-ca] [--dry-run] [KUBE_CONTEXT]
#   --tls-only     leave myapp-secrets alone (renew the certificates only)
#   --rotate-ca    step 1 of a CA rotation: a new CA joins every bundle (see the fast path's README)
#   --drop-old-ca  step 3: the bundles keep only the current CA
#   --dry-run      print the objects (YAML/JSON) instead of applying them; the cluster is not read
# Prints the admin password once; nothing is written to disk outside a private temporary directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tls_only=false dry_run=false pki_args=() context=()
for arg in "$@"; do
  case "$arg" in
    --tls-only) tls_only=true ;;
    --rotate-ca | --drop-old-ca) pki_args+=("$arg") ;;
    --dry-run) dry_run=true ;;
    -*) echo "k8s-secrets: unknown option $arg" >&2; exit 2 ;;
    *) context=(--context "$arg") ;;
  esac
done
kube() { kubectl "${context[@]}" "$@"; }
apply() { if $dry_run; then cat; echo "---"; else kube apply -f -; fi; }
rand() { openssl rand -base64 48 | tr -dc 'A-Za-z0-9' | head -c "$1"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for namespace in myapp myapp-fastpath; do
  kube create namespace "$namespace" --dry-run=client -o yaml | apply
done

if ! $tls_only; then
  admin_password=$(rand 24)
  kube -n myapp create secret generic myapp-secrets \
    --from-literal=jwt-secret="$(rand 48)" \
    --from-literal=db-password="$(rand 32)" \
    --from-literal=admin-password="$admin_password" \
    --from-literal=connector-webhooks="${CONNECTOR_WEBHOOKS:-[]}" \
    --from-literal=connector-ingest-token="$(rand 32)" \
    --dry-run=client -o yaml | apply
fi

if ! $dry_run; then
  kube -n myapp-fastpath get secret fastpath-ca -o json --ignore-not-found >"$work/ca.json"
  [[ -s "$work/ca.json" ]] && pki_args+=(--existing-ca "$work/ca.json")
fi
(cd "$root" && ./pants run src/python/myapp/common/pki.py -- k8s-secrets "${pki_args[@]}") \
  >"$work/tls.json"
apply <"$work/tls.json"

if ! $tls_only; then
  echo "k8s-secrets: myapp-secrets ready; admin@example.com password: $admin_password" >&2
fi
echo "k8s-secrets: fastpath-ca, fastpath-tls, flask-backend-fastpath-tls ready" \
  "(the agents and the API pick up new files by themselves within a minute or two)" >&2
