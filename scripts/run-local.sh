#!/usr/bin/env bash
# `make run`: the product on this machine, on the embedded SQLite database.
#   API   http://127.0.0.1:5000  (development server, data in ./data, seeded admin)
#   WebUI http://127.0.0.1:3000  (Express serving the SPA, /api proxied to the API)
# Both are built by Pants first (one invocation), then run straight from dist/ so Pants is not
# held busy while they run. Ctrl-C stops both. The fast path needs root and an interface; start
# it separately (see README) and set FASTPATH_ADDR to connect the API to it. Both run with
# APP_ENV=development (the images' default is production) unless APP_ENV says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

API_PORT="${API_PORT:-5000}"
WEBUI_PORT="${PORT:-3000}"

./pants package src/python/myapp/api:api-dev src/js/webui:webui#bundle
webui=$(scripts/unpack-webui.sh)

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

APP_ENV="${APP_ENV:-development}" API_PORT="$API_PORT" dist/src.python.myapp.api/api-dev.pex &
pids+=($!)
APP_ENV="${APP_ENV:-development}" API_URL="http://127.0.0.1:$API_PORT" PORT="$WEBUI_PORT" \
  HOST="${HOST:-127.0.0.1}" node "$webui/server/main.mjs" &
pids+=($!)

# Report once both answer, then stay in the foreground until Ctrl-C or one of them exits.
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$API_PORT/healthz" >/dev/null 2>&1 &&
     curl -fsS "http://127.0.0.1:$WEBUI_PORT/healthz" >/dev/null 2>&1; then
    echo
    echo "myapp is running: WebUI http://127.0.0.1:$WEBUI_PORT  API http://127.0.0.1:$API_PORT"
    echo "Ctrl-C stops both."
    break
  fi
  sleep 0.2
done
wait -n "${pids[@]}"
