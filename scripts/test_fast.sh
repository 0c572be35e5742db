#!/usr/bin/env bash
# `make test-fast`: the tests that need no server (no emulator, bqemulator, function process, sink or browser), in
# well under two minutes: tests/unit, and the contract suites on their embedded adapters (SQLite, DuckDB, the
# in-process bus, the local keyring) - their emulator halves carry the `emulator` / `bqemulator` markers and are
# deselected. `make test` runs everything.
#
# Guard: the emulator variables are unset and CLOUDACT_TEST_FAST=1, so a test that needs a server either fails at once
# (a marked one in tests/conftest.py, an unmarked one where it looks for its server: tests/servers.py) or, if it
# connects some other way, finds nothing to talk to; the per-test timeout turns anything that still waits into a
# failure after 60 s instead of a hang.
set -euo pipefail
cd "$(dirname "$0")/.."
unset PUBSUB_EMULATOR_HOST FIRESTORE_EMULATOR_HOST BIGQUERY_EMULATOR_HOST STORAGE_EMULATOR_HOST CLOUDACT_BIGQUERY_ENDPOINT
export CLOUDACT_TEST_FAST=1

exec scripts/pytest_strict.sh tests/unit tests/contract -m "not emulator and not bqemulator" --timeout=60 "$@"
