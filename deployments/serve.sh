#!/usr/bin/env bash
# Start a local Prefect server, apply SceneFlow's deployments and start process workers.
#
#   deployments/serve.sh          run in the foreground; Ctrl-C stops everything
#   deployments/serve.sh stop     stop what a detached run started
#
# Settings (environment variables, all optional):
#   SCENEFLOW_PREFECT_HOST   address the server listens on        (127.0.0.1)
#   SCENEFLOW_PREFECT_PORT   its port                             (4200)
#   PREFECT_HOME             server database, logs and pid file    (.sceneflow/prefect)
#   SCENEFLOW_WORKERS        process workers to start             (1)
#   SCENEFLOW_MANIFEST       also apply this deployments manifest  (none)
#   SCENEFLOW_SERVE_DETACH   1: leave everything running and exit  (0)
#   SCENEFLOW_SERVE_TIMEOUT  seconds to wait for the server        (90)
#   SCENEFLOW_BIN            folder holding prefect and sceneflow  (.venv/bin)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

BIN="${SCENEFLOW_BIN:-$REPO/.venv/bin}"
HOST="${SCENEFLOW_PREFECT_HOST:-127.0.0.1}"
PORT="${SCENEFLOW_PREFECT_PORT:-4200}"
POOL="sceneflow-pool"  # the name prefect.yaml's work pool anchor uses
export PREFECT_HOME="${PREFECT_HOME:-$REPO/.sceneflow/prefect}"
export PREFECT_API_URL="http://$HOST:$PORT/api"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
# Workers, flow runs and the CLI must all see one SceneFlow database and the same checkout.
export SCENEFLOW_HOME="${SCENEFLOW_HOME:-$REPO/.sceneflow}"
export SCENEFLOW_REPO="$REPO"
RUN_DIR="$PREFECT_HOME/serve"
PIDS="$RUN_DIR/pids"
mkdir -p "$RUN_DIR"

stop() {
  [[ -f "$PIDS" ]] || return 0
  # Each process was started as its own process group leader (setsid), so the group takes its
  # children (uvicorn, flow runs) with it. Workers go first with a short grace period: a
  # Prefect 3.9 worker often hangs on SIGTERM, and then the server.
  tail -n +2 "$PIDS" | while read -r pid; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 5
  tail -n +2 "$PIDS" | while read -r pid; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  kill -TERM -- "-$(head -n 1 "$PIDS")" 2>/dev/null || true
  rm -f "$PIDS"
}

if [[ "${1:-}" == "stop" ]]; then
  stop
  echo "Stopped the SceneFlow server and workers."
  exit 0
fi
if [[ -s "$PIDS" ]]; then
  echo "A serve run is already active (pids in $PIDS); run '$0 stop' first." >&2
  exit 1
fi

healthy() {
  "$BIN/python" - "$PREFECT_API_URL/health" <<'PY'
import sys

import httpx

try:
    sys.exit(0 if httpx.get(sys.argv[1], timeout=2).status_code == 200 else 1)
except httpx.HTTPError:
    sys.exit(1)
PY
}

launch() {  # launch NAME COMMAND...: start in its own process group, log to RUN_DIR/NAME.log
  local name="$1"
  shift
  setsid "$@" >"$RUN_DIR/$name.log" 2>&1 &
  echo "$!" >>"$PIDS"
}

[[ "${SCENEFLOW_SERVE_DETACH:-0}" == "1" ]] || trap stop EXIT INT TERM

echo "Starting the Prefect server on $HOST:$PORT (PREFECT_HOME=$PREFECT_HOME)..."
launch server "$BIN/prefect" server start --host "$HOST" --port "$PORT"
server_pid="$(head -n1 "$PIDS")"
deadline=$((SECONDS + ${SCENEFLOW_SERVE_TIMEOUT:-90}))
until healthy; do
  if ! kill -0 "$server_pid" 2>/dev/null || ((SECONDS > deadline)); then
    echo "The Prefect server did not become healthy; its log ($RUN_DIR/server.log) ends:" >&2
    tail -n 30 "$RUN_DIR/server.log" >&2
    exit 1
  fi
  sleep 1
done

"$BIN/prefect" work-pool inspect "$POOL" >/dev/null 2>&1 ||
  "$BIN/prefect" work-pool create "$POOL" --type process
"$BIN/prefect" --no-prompt deploy --all
if [[ -n "${SCENEFLOW_MANIFEST:-}" ]]; then
  "$BIN/sceneflow" deployments apply "$SCENEFLOW_MANIFEST"
fi
for n in $(seq 1 "${SCENEFLOW_WORKERS:-1}"); do
  launch "worker-$n" "$BIN/prefect" worker start --pool "$POOL" --name "sceneflow-worker-$n"
done

cat <<EOF_MSG

SceneFlow is being served.
  Prefect UI:   http://$HOST:$PORT
  API:          export PREFECT_API_URL=$PREFECT_API_URL
  Logs:         $RUN_DIR/
EOF_MSG
if [[ "${SCENEFLOW_SERVE_DETACH:-0}" == "1" ]]; then
  echo "  Stop with:    $0 stop"
  exit 0
fi
echo "Press Ctrl-C to stop the server and workers."
wait
