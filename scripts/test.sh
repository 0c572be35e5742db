#!/usr/bin/env bash
# `make test`: start every server the suite needs on 127.0.0.1, run pytest, stop them all.
#
# Servers: the Google Pub/Sub + Firestore emulators (scripts/emulators.sh) and bqemulator (scripts/bqemulator.sh).
# The e2e tests start their own functions-framework processes and an SMTP/HTTP sink where they need them.
# Without the gcloud emulators (a laptop without the components) the emulator tests are skipped with one loud line;
# under CI=true a missing emulator is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup() {
  scripts/emulators.sh stop >/dev/null 2>&1 || true
  scripts/bqemulator.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

rc=0
scripts/emulators.sh start || rc=$?
if [[ $rc -eq 0 ]]; then
  eval "$(scripts/emulators.sh env)"
elif [[ $rc -eq 3 && "${CI:-}" != "true" ]]; then
  echo "!!!!! SKIPPING EMULATOR TESTS: Google Pub/Sub/Firestore emulators not installed." \
       "Install: gcloud components install pubsub-emulator cloud-firestore-emulator (needs Java 17+) !!!!!" >&2
else
  echo "emulators failed to start (rc=$rc)" >&2
  exit 1
fi

rc=0
scripts/bqemulator.sh start || rc=$?
if [[ $rc -eq 0 ]]; then
  eval "$(scripts/bqemulator.sh env)"
elif [[ "${CI:-}" != "true" ]]; then
  echo "!!!!! SKIPPING BQEMULATOR TESTS: bqemulator could not start (see .emulators/). !!!!!" >&2
else
  echo "bqemulator failed to start (rc=$rc)" >&2
  exit 1
fi

# Headless Chromium + chromedriver + selenium for tests/ui/test_browser.py (fails under CI=true if not installable).
scripts/browser.sh || exit 1

scripts/pytest_strict.sh "$@"  # its exit status is the script's (set -e); the EXIT trap stops the servers
