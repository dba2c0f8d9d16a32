#!/usr/bin/env bash
# Build-system benchmark: prints cold bootstrap time, cold and warm `pants test ::` and PEX sizes.
#
# "Cold" means a fresh clone with empty Pants caches (bootstrap cache, local store, named caches)
# in a temporary directory, so nothing from this machine's earlier builds is reused; the Python
# wheels are still fetched from PyPI, as on a new machine. "Warm" is the same command again with
# pantsd up and no change. Usage: scripts/bench-build.sh   (takes several minutes)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/bench-build.XXXXXX")"
trap '(cd "$work/clone" 2>/dev/null && scripts/stop-pantsd.sh >/dev/null 2>&1) || true; rm -rf "$work"' EXIT

git clone -q "$repo" "$work/clone"
cd "$work/clone"
export PANTS_BOOTSTRAP_CACHE="$work/bootstrap"
export PANTS_LOCAL_STORE_DIR="$work/store"
export PANTS_NAMED_CACHES_DIR="$work/named"

seconds() { # seconds <command...>: runs the command quietly, prints its wall time in seconds
  local start end log="$work/last.log"
  start=$(date +%s.%N)
  if ! "$@" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "bench-build: '$*' failed" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.1f}')"
}

bootstrap=$(seconds ./pants --version)
cold=$(seconds ./pants test ::)
warm=$(seconds ./pants test ::)
seconds ./pants package :: >/dev/null

printf '\n%-40s %10s\n' "measure" "value"
printf '%-40s %9ss\n' "cold bootstrap (./pants --version)" "$bootstrap"
printf '%-40s %9ss\n' "cold ./pants test ::" "$cold"
printf '%-40s %9ss   (goal < 10 s)\n' "warm no-change ./pants test :: (pantsd)" "$warm"
while IFS= read -r pex; do
  printf '%-40s %8sMB\n' "${pex#dist/}" "$(du -sm "$pex" | cut -f1)"
done < <(find dist -maxdepth 2 -name '*.pex' | sort)
