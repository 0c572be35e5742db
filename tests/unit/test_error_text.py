"""What of an error's text reaches a tenant: host paths never, the description of its own mistake always."""

from __future__ import annotations

import pytest

from shared.error_text import without_local_paths


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'IO Error: Could not set lock on file "/home/ops/.cloudact/warehouse/acme.duckdb": Conflicting lock is '
            "held in /usr/bin/python3.11 (PID 4242)",
            'IO Error: Could not set lock on file "<path>": Conflicting lock is held in <path> (PID 4242)',
        ),
        ("[Errno 2] No such file or directory: '/srv/my data/x.csv'", "[Errno 2] No such file or directory: '<path>'"),
        ('Cannot access directory "/root/.duckdb/extensions/v2.0.1"', 'Cannot access directory "<path>"'),
        ("key in ~/.ssh/id_rsa", "key in <path>"),
        ("open file:///etc/passwd failed", "open <path> failed"),
        ("read /etc/passwd: denied", "read <path>: denied"),
    ],
)
def test_paths_on_the_host_are_replaced(text: str, expected: str) -> None:
    assert without_local_paths(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "GET https://api.example.com/v1/items/42 answered 500",
        "gs://acme-landing/exports/2026/11/01.parquet not found",
        "SAFE_DIVIDE(a, b) / c and a/b on 2026/11/01",
        "Catalog Error: Table with name orders does not exist!",
        'Binder Error: Referenced column "amount" not found in FROM clause!',
        "a lone /tmp is no layout",
    ],
)
def test_everything_else_is_left_as_it_was(text: str) -> None:
    assert without_local_paths(text) == text
