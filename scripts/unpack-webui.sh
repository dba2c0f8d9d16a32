#!/usr/bin/env bash
# Unpack the Pants-built WebUI bundle (dist/src.js.webui/webui-bundle.tar.gz, from
# `./pants package src/js/webui:webui#bundle`) into dist/webui-run/ and print the directory that
# holds server/ and dist/, for running it on this machine (`make run`, `make run-webui`,
# `make bench-webui`). The tarball is what the WebUI image unpacks too.
set -euo pipefail
cd "$(dirname "$0")/.."
tarball=dist/src.js.webui/webui-bundle.tar.gz
[[ -f $tarball ]] || { echo "unpack-webui: $tarball is missing; run ./pants package src/js/webui:webui#bundle" >&2; exit 1; }
rm -rf dist/webui-run
mkdir -p dist/webui-run
tar -xzf "$tarball" -C dist/webui-run
echo dist/webui-run/bundle
