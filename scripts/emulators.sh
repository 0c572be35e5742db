#!/usr/bin/env bash
# Start/stop the Google Pub/Sub and Firestore emulators for the `emulators` runtime and the contract tests.
#
#   scripts/emulators.sh start    # idempotent; waits until both answer "Ok" (60 s max)
#   scripts/emulators.sh stop     # kills both process groups and waits for them to exit
#   scripts/emulators.sh status   # exit 0 when both are up
#   scripts/emulators.sh env      # eval "$(scripts/emulators.sh env)"
#
# Java is started directly (not through `gcloud emulators ...`): it is ready about 1 s sooner and the pid we record is
# the JVM itself, so `stop` cannot leave an orphan behind. Each emulator runs in its own session (setsid) so stopping
# it kills its whole process group. Logs and pid files live in .emulators/, named by port so two checkouts or CI jobs
# on different ports (CLOUDACT_PUBSUB_PORT / CLOUDACT_FIRESTORE_PORT) do not step on each other.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$REPO_ROOT/.emulators"
SDK_ROOT="${CLOUDSDK_ROOT:-/usr/lib/google-cloud-sdk}"
HOST=127.0.0.1
PUBSUB_PORT="${CLOUDACT_PUBSUB_PORT:-8085}"
FIRESTORE_PORT="${CLOUDACT_FIRESTORE_PORT:-8080}"
PUBSUB_BIN="$SDK_ROOT/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
FIRESTORE_JAR="$SDK_ROOT/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
READY_TIMEOUT_S=60
INSTALL_HINT="install them with: gcloud components install pubsub-emulator cloud-firestore-emulator (and Java 17+)"

port_of() { if [[ "$1" == pubsub ]]; then echo "$PUBSUB_PORT"; else echo "$FIRESTORE_PORT"; fi; }
pid_file() { echo "$RUN_DIR/$1-$(port_of "$1").pid"; }
log_file() { echo "$RUN_DIR/$1-$(port_of "$1").log"; }

# The pid recorded by `start`, only if that process is still alive.
live_pid() {
  local f pid
  f="$(pid_file "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    echo "$pid"
  else
    rm -f "$f"
    return 1
  fi
}

# Both emulators answer GET / with "Ok" once they serve requests.
is_ready() { curl -sf --max-time 2 "http://$HOST:$1/" 2>/dev/null | grep -q Ok; }

# Something (anything) accepts TCP connections on the port.
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

java_major() {
  local v
  v="$(java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\)\(\.[^"]*\)\{0,1\}".*/\1/p' | head -n1)"
  echo "${v:-0}"
}

check_installed() {
  local missing=()
  [[ -x "$PUBSUB_BIN" ]] || missing+=("$PUBSUB_BIN")
  [[ -f "$FIRESTORE_JAR" ]] || missing+=("$FIRESTORE_JAR")
  if ! command -v java >/dev/null 2>&1; then
    missing+=("java")
  elif (("$(java_major)" < 17)); then
    missing+=("Java 17+ (found Java $(java_major))")
  fi
  if ((${#missing[@]})); then
    echo "!!! EMULATORS NOT INSTALLED (missing: ${missing[*]}): $INSTALL_HINT; set CLOUDSDK_ROOT if the SDK is elsewhere !!!" >&2
    exit 3
  fi
}

launch() {
  local name="$1" port pid
  port="$(port_of "$name")"
  if pid="$(live_pid "$name")"; then
    echo "$name emulator already running (pid $pid, port $port)"
    return 0
  fi
  if is_ready "$port"; then
    echo "$name: port $port already serves an emulator not started by this script; using it (stop will not touch it)"
    return 0
  fi
  if port_busy "$port"; then
    local var=CLOUDACT_PUBSUB_PORT
    [[ "$name" == pubsub ]] || var=CLOUDACT_FIRESTORE_PORT
    echo "$name: port $port is taken by another program; free it or pick another port with $var=..." >&2
    rollback
    exit 1
  fi
  : >"$(log_file "$name")"
  # A backgrounded child of a non-interactive shell is not a group leader, so setsid execs in place: $! is the JVM
  # (the pubsub bin script execs java too) and is the leader of its own process group.
  if [[ "$name" == pubsub ]]; then
    JAVA_OPTS="-Xmx256m -XX:+UseSerialGC" setsid "$PUBSUB_BIN" --host="$HOST" --port="$port" \
      </dev/null >>"$(log_file "$name")" 2>&1 &
  else
    setsid java -Xmx256m -XX:+UseSerialGC -Duser.language=en -cp "$FIRESTORE_JAR" \
      com.google.cloud.datastore.emulator.firestore.CloudFirestore start --host="$HOST" --port="$port" \
      </dev/null >>"$(log_file "$name")" 2>&1 &
  fi
  echo $! >"$(pid_file "$name")"
  LAUNCHED+=("$name")
  echo "$name emulator starting (pid $!, port $port, log $(log_file "$name"))"
}

# A failed start leaves nothing behind: stop whatever this invocation launched (not what was already running).
LAUNCHED=()
rollback() {
  local name
  for name in "${LAUNCHED[@]}"; do stop_one "$name" >/dev/null 2>&1 || true; done
}

fail_with_log() {
  local name="$1" why="$2"
  echo "$name emulator $why; last lines of $(log_file "$name"):" >&2
  tail -n 30 "$(log_file "$name")" >&2 || true
  rollback
  exit 1
}

wait_ready() {
  local name="$1" port deadline
  port="$(port_of "$name")"
  deadline=$((SECONDS + READY_TIMEOUT_S))
  until is_ready "$port"; do
    if [[ -f "$(pid_file "$name")" ]] && ! live_pid "$name" >/dev/null; then
      fail_with_log "$name" "exited before becoming ready"
    fi
    # The pubsub JVM survives a failed bind (other threads keep it alive), so read the log instead of waiting 60 s.
    if grep -q "BindException\|Address already in use" "$(log_file "$name")" 2>/dev/null; then
      fail_with_log "$name" "could not bind $HOST:$port"
    fi
    ((SECONDS < deadline)) || fail_with_log "$name" "not ready on port $port after ${READY_TIMEOUT_S}s"
    sleep 0.1
  done
  echo "$name emulator ready on $HOST:$port"
}

stop_one() {
  local name="$1" pid pgid i
  if ! pid="$(live_pid "$name")"; then
    echo "$name emulator not running"
    return 0
  fi
  pgid="$(ps -o pgid= -p "$pid" | tr -d ' ')"
  if [[ -n "$pgid" && "$pgid" == "$pid" ]]; then
    kill -TERM -- "-$pgid" 2>/dev/null || true
  else
    kill -TERM "$pid" 2>/dev/null || true
  fi
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$name emulator ignored SIGTERM for 10 s; sending SIGKILL" >&2
    if [[ "$pgid" == "$pid" ]]; then kill -KILL -- "-$pgid" 2>/dev/null || true; else kill -KILL "$pid" 2>/dev/null || true; fi
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$(pid_file "$name")"
  echo "$name emulator stopped (pid $pid)"
}

status_one() {
  local name="$1" port pid
  port="$(port_of "$name")"
  if pid="$(live_pid "$name")"; then
    if is_ready "$port"; then echo "$name: running (pid $pid, $HOST:$port)"; return 0; fi
    echo "$name: starting or unhealthy (pid $pid, $HOST:$port not answering)"
    return 1
  fi
  if is_ready "$port"; then echo "$name: running, not started by this script ($HOST:$port)"; return 0; fi
  echo "$name: stopped"
  return 1
}

cmd="${1:-}"
case "$cmd" in
  start)
    check_installed
    mkdir -p "$RUN_DIR"
    launch pubsub
    launch firestore
    wait_ready pubsub
    wait_ready firestore
    ;;
  stop)
    stop_one pubsub
    stop_one firestore
    ;;
  status)
    rc=0
    status_one pubsub || rc=1
    status_one firestore || rc=1
    exit "$rc"
    ;;
  env)
    echo "export PUBSUB_EMULATOR_HOST=$HOST:$PUBSUB_PORT FIRESTORE_EMULATOR_HOST=$HOST:$FIRESTORE_PORT"
    ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
