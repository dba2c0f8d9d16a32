#!/usr/bin/env bash
# Local stand-ins for the base images the Dockerfiles name, made with debootstrap because no
# container registry is reachable from the build machines (CI on GitHub pulls the real ones):
#   docker.io/library/python:3.11-slim-bookworm  Debian bookworm minbase + python3.11
#   docker.io/library/node:26-bookworm-slim      the same + the official node 26 binary (the
#                                                npm registry's, pinned in scripts/node.sh)
# Built once (~75 s) and kept in podman's storage; the root file system tarball is cached in
# $MYAPP_IMAGE_CACHE (default ~/.cache/myapp-images) so a wiped storage re-imports in seconds.
# Usage: scripts/images-base.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."

export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/config/containers/containers.conf}"
CACHE="${MYAPP_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/myapp-images}"
PY_IMAGE=docker.io/library/python:3.11-slim-bookworm
NODE_IMAGE=docker.io/library/node:26-bookworm-slim
# libatomic1: the official node binary needs it. The tarball's name follows the package list,
# so a changed list is not served from an older cache.
PACKAGES=python3-minimal,python3.11,ca-certificates,libstdc++6,libatomic1
ROOTFS_TAR="$CACHE/bookworm-$(sha256sum <<<"$PACKAGES" | cut -c1-12).tar"

say() { echo "images-base: $*" >&2; }
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { say "'$tool' not found: run scripts/setup.sh"; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { say "debootstrap and rootful podman need root"; exit 1; }

if [[ "${1:-}" == "--force" ]]; then
  rm -f "$ROOTFS_TAR"
  podman rmi -f "$PY_IMAGE" "$NODE_IMAGE" >/dev/null 2>&1 || true
fi
if podman image exists "$PY_IMAGE" && podman image exists "$NODE_IMAGE"; then
  say "base images present"
  exit 0
fi

mkdir -p "$CACHE"
if [[ ! -s "$ROOTFS_TAR" ]]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [[ -n "$mirror" ]] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/myapp-rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  say "debootstrap bookworm from $mirror (about a minute)"
  debootstrap --variant=minbase --include="$PACKAGES" \
    bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 ||
    { say "debootstrap failed, see $CACHE/debootstrap.log"; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
fi

if ! podman image exists "$PY_IMAGE"; then
  podman import -q --change 'CMD ["python3"]' "$ROOTFS_TAR" "$PY_IMAGE" >/dev/null
  say "imported $PY_IMAGE"
fi
if ! podman image exists "$NODE_IMAGE"; then
  # shellcheck source=scripts/node.sh
  source scripts/node.sh
  node_installed "$CACHE/node" || install_node "$CACHE/node"
  node_bin="$CACHE/node/bin/node"
  ctx=$(mktemp -d "${TMPDIR:-/tmp}/myapp-node.XXXXXX")
  cp "$(readlink -f "$node_bin")" "$ctx/node"
  printf 'FROM %s\nCOPY node /usr/local/bin/node\nCMD ["node"]\n' "$PY_IMAGE" >"$ctx/Containerfile"
  podman build -q --pull=never -t "$NODE_IMAGE" -f "$ctx/Containerfile" "$ctx" >/dev/null
  rm -rf "$ctx"
  say "built $NODE_IMAGE"
fi
