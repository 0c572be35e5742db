#!/usr/bin/env bash
# The browser for tests/ui/test_browser.py: Debian's chromium + chromium-driver (apt-get) and selenium (pip, pinned in
# requirements-dev.txt). Idempotent: does nothing when all three are there.
#
# Under CI=true a browser that cannot be installed is a failure (exit 1). Elsewhere (a laptop without root or apt)
# it prints ONE loud line and exits 0; the browser test then skips itself with the same kind of line.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

have_browser() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
have_selenium() { "$BIN/python" -c 'import selenium' >/dev/null 2>&1; }

fail() {
  if [[ "${CI:-}" == "true" ]]; then
    echo "browser.sh: $1" >&2
    exit 1
  fi
  echo "!!!!! BROWSER TEST WILL BE SKIPPED: $1 !!!!!" >&2
  exit 0
}

if ! have_browser; then
  if ! command -v apt-get >/dev/null 2>&1; then
    fail "chromium/chromedriver missing and no apt-get here (install chromium and its chromedriver)"
  fi
  SUDO=""
  if [[ "$(id -u)" != "0" ]]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo -n" \
      || fail "chromium/chromedriver missing and apt-get needs root (sudo apt-get install chromium chromium-driver)"
  fi
  echo "browser.sh: installing chromium + chromium-driver with apt-get" >&2
  $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    chromium chromium-driver >/dev/null || fail "apt-get install chromium chromium-driver failed"
  have_browser || fail "chromium/chromedriver still missing after apt-get"
fi

if ! have_selenium; then
  pin="$(grep -E '^selenium==' requirements-dev.txt || true)"
  [[ -n "$pin" ]] || fail "selenium is not pinned in requirements-dev.txt"
  "$BIN/pip" install -q "$pin" || fail "pip install $pin failed"
  have_selenium || fail "selenium still not importable"
fi
echo "browser.sh: $(chromium --version 2>/dev/null | head -1); $(chromedriver --version | head -1 | cut -d' ' -f1-2)" >&2
