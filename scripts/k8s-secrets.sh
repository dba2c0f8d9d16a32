#!/usr/bin/env bash
# Create (or replace) the one Secret every workload references, myapp-secrets in namespace myapp,
# with random values. Usage: scripts/k8s-secrets.sh [KUBE_CONTEXT]
# Prints the admin password once; nothing is written to disk. The connector's webhooks come from
# CONNECTOR_WEBHOOKS in the environment (JSON [{"name","url","secret"}], default none).
set -euo pipefail
context=(); [[ -n "${1:-}" ]] && context=(--context "$1")
rand() { openssl rand -base64 48 | tr -dc 'A-Za-z0-9' | head -c "$1"; }
admin_password=$(rand 24)
kubectl "${context[@]}" create namespace myapp --dry-run=client -o yaml | kubectl "${context[@]}" apply -f -
kubectl "${context[@]}" -n myapp create secret generic myapp-secrets \
  --from-literal=jwt-secret="$(rand 48)" \
  --from-literal=db-password="$(rand 32)" \
  --from-literal=admin-password="$admin_password" \
  --from-literal=connector-webhooks="${CONNECTOR_WEBHOOKS:-[]}" \
  --from-literal=connector-ingest-token="$(rand 32)" \
  --dry-run=client -o yaml | kubectl "${context[@]}" apply -f -
echo "k8s-secrets: myapp-secrets ready; admin@example.com password: $admin_password"
