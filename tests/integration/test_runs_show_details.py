"""`cloudact runs show` tells the whole story of a run: the errors of attempts that were retried (also when the
stage then succeeded) and the data-quality table of a quality.check that failed (its results live in the warehouse,
since the failing check raised)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from shared.cli.main import cli
from shared.runtime.settings import Settings
from tests.conftest import run_to_end

CHECKED = """pipeline_id: checked
steps:
  - step_id: extract
    ps_type: debug.noop
    retries: {max_attempts: 3, backoff_seconds: 0.05}
    config: {fail_transient_attempts: 2}
  - step_id: numbers
    ps_type: bigquery.query
    depends_on: [extract]
    source: {query: "SELECT n FROM UNNEST(GENERATE_ARRAY(1, 10)) AS n"}
    destination: {dataset: work, table: checked_numbers}
  - step_id: check
    ps_type: quality.check
    depends_on: [numbers]
    source: {dataset: work, table: checked_numbers}
    config:
      checks:
        - {name: at_most_five, type: row_count, max: 5}
        - {name: n_present, type: not_null, columns: [n]}
"""


def test_runs_show_prints_retried_errors_and_a_failed_checks_table(
    make_runtime: Any, settings: Settings, config_dir: Path, monkeypatch: Any
) -> None:
    (config_dir / "testco" / "pipelines" / "checked.yaml").write_text(CHECKED)
    runtime = make_runtime()
    run = run_to_end(runtime, "testco", "checked")
    assert run["status"] == "FAILED", run
    runtime.close()
    monkeypatch.setenv("CLOUDACT_HOME", str(settings.home))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(config_dir))
    shown = CliRunner().invoke(cli, ["runs", "show", run["run_id"]])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "extract attempt 1 (failed): TransientError: step extract: injected transient failure on attempt 1" in text
    assert "extract attempt 2 (failed): TransientError: step extract: injected transient failure on attempt 2" in text
    assert "extract attempt 3" not in text  # it succeeded
    assert "check: 1 data-quality check(s) failed" in text
    assert "data quality:" in text
    rows = [line.split() for line in shown.output.splitlines() if line.strip().startswith("check ")]
    by_check = {r[1]: r for r in rows if len(r) > 3}
    assert by_check["at_most_five"][2:4] == ["error", "fail"], shown.output
    assert by_check["n_present"][2:4] == ["error", "pass"], shown.output
