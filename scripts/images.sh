#!/usr/bin/env bash
# Build every service image with podman from what Pants packages (the same Dockerfiles and the
# same context layout, dist/, that CI's images.yml gives buildx).
#   scripts/images.sh [TAG]      -> localhost/myapp-{api,webui,fastpath,connector}:TAG (default dev)
# Base images come from scripts/images-base.sh (built once, cached).
set -euo pipefail
cd "$(dirname "$0")/.."

TAG="${1:-dev}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/config/containers/containers.conf}"
# service  pants target                              Dockerfile folder
SERVICES=(
  "api       src/python/myapp/api:api                src/python/myapp/api"
  "fastpath  src/python/myapp/fastpath:fastpath      src/python/myapp/fastpath"
  "connector src/python/myapp/connector:connector    src/python/myapp/connector"
  "webui     src/js/webui:webui#bundle               src/js/webui"
)

scripts/images-base.sh
targets=()
for row in "${SERVICES[@]}"; do read -r _ target _ <<<"$row"; targets+=("$target"); done
./pants package "${targets[@]}"

version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
for row in "${SERVICES[@]}"; do
  read -r service _ folder <<<"$row"
  start=$(date +%s)
  # docker format: OCI images cannot carry HEALTHCHECK. buildah 1.28 reuses a multi-stage build's
  # cached LABEL layer whatever the build args, so the WebUI is built without cache.
  no_cache=(); [[ $service == webui ]] && no_cache=(--no-cache)
  podman build -q --format docker --pull=never "${no_cache[@]}" -f "$folder/Dockerfile" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
    -t "localhost/myapp-$service:$TAG" dist/ >/dev/null
  size=$(podman image inspect --format '{{.Size}}' "localhost/myapp-$service:$TAG")
  echo "images: localhost/myapp-$service:$TAG built in $(( $(date +%s) - start )) s, $(( size / 1048576 )) MiB"
done
