"""A tenant's step, end to end on the embedded runtime: what its error shows, and that its work ends with its time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_to_end


@pytest.fixture
def typo_pipeline(config_dir: Path) -> str:
    (config_dir / "testco" / "pipelines" / "typo.yaml").write_text(
        """pipeline_id: typo
steps:
  - step_id: make
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS id"}
    destination: {dataset: work, table: orders, write_mode: truncate}
  - step_id: misspelt
    ps_type: bigquery.query
    depends_on: [make]
    source: {query: "SELECT id FROM {tenant_id}_work.order"}
    destination: {dataset: work, table: copy, write_mode: truncate}
"""
    )
    return "typo"


def test_the_error_a_tenant_reads_names_its_mistake_and_nothing_else(runtime: Any, typo_pipeline: str) -> None:
    run = run_to_end(runtime, "testco", typo_pipeline)
    assert run["status"] == "FAILED"
    stage = next(s for s in run["stages"] if s["stage_id"] == "misspelt")
    texts = [stage["error"], *(a["error"] for a in stage["attempts"])]
    for text in texts:
        assert "Table with name order does not exist" in text
        assert "Did you mean" not in text and "LINE 1" not in text and "DuckDB SQL" not in text
        assert str(runtime.context.settings.home) not in text and str(Path.home()) not in text
