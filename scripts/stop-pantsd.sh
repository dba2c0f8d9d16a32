#!/usr/bin/env bash
# Stop the pantsd started from this checkout (if any), so CI leaves no daemon behind.
set -euo pipefail
cd "$(dirname "$0")/.."
for pidfile in .pids/*/pantsd/pid; do
  [[ -f "$pidfile" ]] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" && echo "stopped pantsd ($pid)"
  fi
done
