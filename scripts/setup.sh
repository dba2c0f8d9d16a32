#!/usr/bin/env bash
# Idempotent machine setup for building, running and testing the monorepo.
#
# Installs only what is missing: Debian packages (compilers, BPF toolchain, protoc, browser,
# load generator) and the Pants bootstrap (done lazily by ./pants itself). Safe to run again.
# Usage: scripts/setup.sh [--check]   (--check: report what is missing, install nothing)
set -euo pipefail

# Debian packages the build and the tests need, with the command each provides (for the
# "what to install" message when we cannot install).
APT_PACKAGES=(
  clang llvm            # BPF C compiler (clang -target bpf) and llvm-strip/objdump
  libbpf-dev libbpf1    # bpf/bpf_helpers.h for the program; libbpf.so.1 for the Python loader
  bpftool               # vmlinux.h generation, debugging
  xdp-tools             # xdp-filter, the peer the fast-path benchmark compares against
  linux-libc-dev        # uapi headers (linux/bpf.h, if_ether.h, ...)
  iproute2              # ip netns / veth for the real-traffic tests
  nftables              # the nftables baseline in the fast-path benchmark
  protobuf-compiler     # protoc, re-packed by ./pants for Pants' protobuf codegen
  libprotobuf-dev       # google/protobuf/*.proto well-known types for protoc
  protobuf-compiler-grpc  # grpc_python_plugin for grpc=True codegen
  chromium              # real browser for the WebUI end-to-end tests
  wrk                   # HTTP load generator for the API benchmark
  make curl            # make: the everyday commands; curl: make run waits for the services
  unzip                 # the common-password list out of the Django wheel (src/python/myapp/api/BUILD)
  # Container images (no Docker engine here): podman with runc, debootstrap for the local base
  # images, catatonit for `podman run --init` and pods (scripts/images*.sh, tests/python/deploy/images)
  podman buildah skopeo runc debootstrap catatonit
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# npm only fetches the pinned Node.js below (node.sh); any npm will do, so Debian's only when
# there is none (a machine may have npm from another nodejs package).
command -v npm >/dev/null || missing+=(npm)

if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ "${1:-}" == "--check" ]]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: install them with: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node.js for the WebUI (the current LTS, with npm and corepack) into .cache/node/: see node.sh.
# shellcheck source=scripts/node.sh
source "$(dirname "$0")/node.sh"
if ! node_installed "$NODE_PREFIX"; then
  if [[ "${1:-}" == "--check" ]]; then
    echo "setup: Node.js $NODE_VERSION is not installed in $NODE_PREFIX" >&2
    exit 1
  fi
  install_node "$NODE_PREFIX"
fi

# Toolchain sanity: fail with the package name rather than deep inside a build.
need() { command -v "$1" >/dev/null || { echo "setup: '$1' not found; install Debian package '$2'" >&2; exit 1; }; }
need clang clang
need protoc protobuf-compiler
need grpc_python_plugin protobuf-compiler-grpc
need npm npm
[[ -e /usr/lib/$(uname -m)-linux-gnu/libbpf.so.1 || -e /usr/lib64/libbpf.so.1 ]] || {
  echo "setup: libbpf.so.1 not found; install Debian package 'libbpf1'" >&2; exit 1; }
echo "setup: machine ready"
