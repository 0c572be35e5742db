#!/usr/bin/env bash
# pytest with one rule of this project: "no tests collected" (pytest's exit 5) is a failure, never a silent pass.
# Used by scripts/test.sh (make test) and scripts/test_fast.sh (make test-fast).
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/pytest "$@"
status=$?
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit $status
