#!/usr/bin/env bash
# bqemulator (a DuckDB-backed BigQuery REST emulator) for the BigQueryWarehouse contract tests.
#
#   scripts/bqemulator.sh start   # install once into .venv-bqemu/, start, wait for /healthz (idempotent)
#   scripts/bqemulator.sh env     # print the export line for CLOUDACT_BIGQUERY_ENDPOINT
#   scripts/bqemulator.sh stop    # kill the emulator's process group
#
# Why a separate venv: bqemulator pins protobuf 6.x while the project's clients need 7.x.
# Why the pinned duckdb + extension wheels: bqemulator runs `INSTALL spatial` at startup, which downloads the
# extension from the internet; copying the extension wheels into ~/.duckdb/extensions makes it start offline.
# numpy is an undeclared dependency of bqemulator.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-bqemu"
STATE="$ROOT/.emulators"
PORT="${CLOUDACT_BQEMU_PORT:-9050}"
GRPC_PORT="${CLOUDACT_BQEMU_GRPC_PORT:-9060}"
# Named by port (as scripts/emulators.sh does): with one shared pid file, a start or stop on other ports (make test
# beside make gcp-parity, two checkouts) found this emulator "running but unhealthy" and killed it.
PIDFILE="$STATE/bqemulator-$PORT.pid"
LOGFILE="$STATE/bqemulator-$PORT.log"
PYTHON="${PYTHON:-python3}"
DUCKDB_VERSION="1.5.5"
URL="http://127.0.0.1:$PORT"

install() {
  if [[ -x "$VENV/bin/bqemulator" && -f "$VENV/.cloudact-ready" ]]; then
    return 0
  fi
  echo "bqemulator: installing into $VENV (once)..." >&2
  "$PYTHON" -m venv "$VENV"
  # (pip's "Location ... is ignored" notes come from this machine's pip config and are noise: filtered out.)
  "$VENV/bin/pip" install --quiet --disable-pip-version-check bqemulator numpy \
    "duckdb==$DUCKDB_VERSION" "duckdb-extensions==$DUCKDB_VERSION" \
    "duckdb-extension-spatial==$DUCKDB_VERSION" "duckdb-extension-avro==$DUCKDB_VERSION" 2>&1 |
    { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
  fix_extensions
  touch "$VENV/.cloudact-ready"
}

fix_extensions() {
  # Copies the wheel-shipped extensions into ~/.duckdb/extensions/v$DUCKDB_VERSION/<platform>/ so INSTALL is offline.
  "$VENV/bin/python" -c "from duckdb_extensions import import_extension as i; i('spatial'); i('avro')"
}

running() {
  # Also checks the command line, so a stale pid file never makes `stop` kill an unrelated process that reused the pid.
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid="$(cat "$PIDFILE")"
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q bqemulator
}

port_busy() {
  (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null
}

show_log() {
  echo "bqemulator: $1; errors in $LOGFILE, then its tail:" >&2
  grep -iE "error|exception" "$LOGFILE" | head -n 10 >&2 || true
  echo "---" >&2
  tail -n 25 "$LOGFILE" >&2
}

healthy() {
  curl -sf --max-time 2 "$URL/healthz" >/dev/null 2>&1
}

start() {
  if running && healthy; then
    echo "bqemulator: already running at $URL (pid $(cat "$PIDFILE"))" >&2
    return 0
  fi
  if running; then
    stop
  fi
  if healthy; then
    echo "bqemulator: port $PORT already serves a bqemulator not started by this script; using it" >&2
    return 0
  fi
  for p in "$PORT" "$GRPC_PORT"; do
    if port_busy "$p"; then
      echo "bqemulator: port $p is taken by another program; set CLOUDACT_BQEMU_PORT / CLOUDACT_BQEMU_GRPC_PORT" >&2
      return 1
    fi
  done
  install
  # The extension copy lives in $HOME, not in the venv: redo it if a fresh HOME lost it (cheap).
  if ! compgen -G "$HOME/.duckdb/extensions/v$DUCKDB_VERSION/*/spatial.duckdb_extension" >/dev/null; then
    fix_extensions
  fi
  mkdir -p "$STATE"
  local t0=$SECONDS
  setsid "$VENV/bin/bqemulator" start --rest-host 127.0.0.1 --rest-port "$PORT" \
    --grpc-host 127.0.0.1 --grpc-port "$GRPC_PORT" --project cloudact-test \
    --log-format console --log-level info >"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + 60))
  until healthy; do
    if ! running; then
      show_log "exited during startup"
      rm -f "$PIDFILE"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      show_log "not healthy after 60 s"
      stop
      return 1
    fi
    sleep 0.2
  done
  echo "bqemulator: ready at $URL in $((SECONDS - t0)) s (pid $(cat "$PIDFILE"), log $LOGFILE)" >&2
}

stop() {
  if [[ ! -f "$PIDFILE" ]]; then
    echo "bqemulator: not running" >&2
    return 0
  fi
  if ! running; then
    rm -f "$PIDFILE"
    echo "bqemulator: not running (stale pid file removed)" >&2
    return 0
  fi
  local pid
  pid="$(cat "$PIDFILE")"
  # setsid made the emulator a process-group leader: kill the whole group (it may fork workers).
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  echo "bqemulator: stopped" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "export CLOUDACT_BIGQUERY_ENDPOINT=$URL" ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
