"""What a test does when a server it needs is not running.

`make test` starts every server (scripts/test.sh); a test that finds one missing is skipped with the reason on a
plain `pytest`, fails under CI=true (CI must run it), and fails under `make test-fast` (CLOUDACT_TEST_FAST=1), which
starts no server and runs only tests that need none: a test that does need one must carry the `emulator` or
`bqemulator` marker (test-fast deselects those) and must not live in tests/unit.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

FAST_ENV = "CLOUDACT_TEST_FAST"
SERVER_MARKERS = ("emulator", "bqemulator")
PUBSUB_MISSING = "Pub/Sub emulator not running: `make test` starts it (gcloud components install pubsub-emulator)"


def fast_run() -> bool:
    return os.environ.get(FAST_ENV) == "1"


def server_missing(problem: str) -> NoReturn:
    if fast_run():
        pytest.fail(
            f"{problem} [make test-fast starts no server: a test that needs one is marked "
            f"{' or '.join('@pytest.mark.' + m for m in SERVER_MARKERS)} and runs under make test]"
        )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{problem} [CI=true: this test must run]")
    pytest.skip(problem)
