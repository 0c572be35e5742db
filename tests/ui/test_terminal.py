"""The same run in the terminal: `cloudact runs show` draws the stage timeline (attempts, retries, waits and skipped
stages visible without colour), its data-quality results and notifications; `cloudact runs watch` follows a live
run until it ends, with a progress display on a terminal and one line per change in a pipe."""

from __future__ import annotations

import io
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from shared.cli.main import cli
from shared.cli.watch import watch_run
from tests.conftest import execute, run_to_end

SHOWCASE = """\
pipeline_id: showcase
description: a step retried twice, a data-quality step, then a failure that skips the last step
steps:
  - step_id: extract
    ps_type: bigquery.query
    retries: {max_attempts: 3, backoff_seconds: 0.05}
    source: {query: "SELECT x AS id FROM UNNEST(GENERATE_ARRAY(1, 30)) AS x"}
    destination: {dataset: show, table: items, write_mode: truncate}
  - step_id: flaky
    ps_type: debug.noop
    depends_on: [extract]
    retries: {max_attempts: 3, backoff_seconds: 0.05}
    config: {fail_transient_attempts: 2, rows: 30}
  - step_id: check
    ps_type: quality.check
    depends_on: [flaky]
    source: {dataset: show, table: items}
    config:
      checks:
        - {type: row_count, min: 1}
        - {type: range, column: id, max: 10, severity: warn}
  - step_id: transform
    ps_type: debug.noop
    depends_on: [check]
    config: {fail_terminal: true}
  - step_id: publish
    ps_type: debug.noop
    depends_on: [transform]
"""
SLOW = """\
pipeline_id: slowish
steps:
  - {step_id: first, ps_type: debug.noop, config: {sleep_ms: 300}}
  - {step_id: second, ps_type: debug.noop, depends_on: [first], config: {sleep_ms: 300, rows: 3}}
"""


@pytest.fixture
def cli_env(settings: Any, config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    (config_dir / "testco" / "pipelines" / "showcase.yaml").write_text(SHOWCASE)
    (config_dir / "testco" / "pipelines" / "slowish.yaml").write_text(SLOW)
    env = {"CLOUDACT_HOME": str(settings.home), "CLOUDACT_CONFIG_DIR": str(config_dir), "CLOUDACT_RUNTIME": "embedded"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def row(output: str, stage: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(stage + " ")]
    assert len(lines) == 1, (stage, output)
    return lines[0]


def test_runs_show_draws_attempts_retries_waits_and_skips(runtime: Any, cli_env: dict[str, str]) -> None:
    run = run_to_end(runtime, "testco", "showcase")
    assert run["status"] == "FAILED"
    result = CliRunner().invoke(cli, ["runs", "show", run["run_id"]])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"run {run['run_id']}  testco/showcase  FAILED" in out
    flaky = row(out, "flaky")
    assert "SUCCEEDED" in flaky and "3 (2 retries)" in flaky
    bar = re.search(r"(▒+)[^▒█]*(·+)[^█]*(█+)", flaky)  # failed attempts, the wait, then the one that succeeded
    assert bar, flaky
    assert "FAILED" in row(out, "transform") and "▒" in row(out, "transform")
    publish = row(out, "publish")
    assert "SKIPPED" in publish and "╌skipped╌" in publish and "█" not in publish
    assert "1 (" not in row(out, "extract") and "█" in row(out, "extract")
    assert "transform: step transform is configured to fail" in out
    assert "data quality:" in out and re.search(r"check\s+range_id\s+warn\s+fail\s+20", out), out
    assert "notifications: alerts_slack QUEUED in the local outbox" in out or "notifications: oncall_email" in out
    assert "SENT" not in out.split("notifications:")[1]  # written to the outbox is not sent
    assert "█ attempt succeeded" in out  # the legend says what the glyphs mean


def test_runs_show_of_an_unknown_run_is_a_clear_error(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["runs", "show", "run_0123"])
    assert result.exit_code == 1 and "no run 'run_0123'" in result.output


def _watch_in_cli(run_id: str, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["runs", "watch", run_id, "--interval", "0.05", *extra])


def test_runs_watch_follows_a_live_run_to_the_end(runtime: Any, cli_env: dict[str, str]) -> None:
    accepted = execute(runtime, "testco", "slowish")
    assert accepted.status == 202
    result = _watch_in_cli(accepted.body["run_id"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("RUNNING     first") < out.index("SUCCEEDED   first") < out.index("SUCCEEDED   second")
    assert "2/2 stages done" in out and re.search(r"second\s+SUCCEEDED\s+1\s+\d+ ms\s+█", out), out


def test_runs_watch_exits_1_for_a_failed_run_and_2_when_it_gives_up(runtime: Any, cli_env: dict[str, str]) -> None:
    failed = run_to_end(runtime, "testco", "always_failing")
    result = _watch_in_cli(failed["run_id"])
    assert result.exit_code == 1 and "FAILED" in result.output
    slow = execute(runtime, "testco", "slowish").body["run_id"]
    gave_up = _watch_in_cli(slow, "--timeout", "0.1")
    assert gave_up.exit_code == 2 and f"cloudact runs watch {slow}" in gave_up.output
    assert runtime.wait_idle(30)
    assert _watch_in_cli("run_0123").exit_code == 1


def test_watch_on_a_terminal_redraws_a_progress_display(runtime: Any, cli_env: dict[str, str]) -> None:
    run_id = execute(runtime, "testco", "slowish").body["run_id"]
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=150, color_system="standard")
    outcome: dict[str, str] = {}
    watcher = threading.Thread(
        target=lambda: outcome.update(status=watch_run(runtime.context.state, run_id, console, 0.05))
    )
    watcher.start()
    watcher.join(30)
    assert outcome == {"status": "SUCCEEDED"}
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "\x1b[" in screen.getvalue()  # redrawn in place with cursor movements and colour
    assert "0/2 stages done" in text or "1/2 stages done" in text  # seen while it ran
    assert text.rstrip().splitlines()[-1].startswith("█ attempt succeeded")  # the final frame stays on screen
    assert "2/2 stages done" in text and "SUCCEEDED" in text


def test_a_running_attempt_is_drawn_up_to_now() -> None:
    from datetime import UTC, datetime

    from shared.cli.timeline import progress_view, timeline_table

    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def at(seconds: float) -> str:
        return (t0 + timedelta(seconds=seconds)).isoformat()

    run = {
        "run_id": "run_1",
        "tenant_id": "testco",
        "pipeline_id": "p",
        "status": "RUNNING",
        "started_at": at(0),
        "stages": [
            {"stage_id": "done", "status": "SUCCEEDED", "attempt": 1, "duration_ms": 2000,
             "attempts": [{"attempt": 1, "status": "SUCCEEDED", "started_at": at(0), "ended_at": at(2)}]},
            {"stage_id": "again", "status": "RUNNING", "attempt": 2, "attempt_started_at": at(5),
             "attempts": [{"attempt": 1, "status": "FAILED", "started_at": at(2), "ended_at": at(3)}]},
            {"stage_id": "later", "status": "QUEUED", "attempt": 0, "attempts": []},
        ],
    }  # fmt: skip
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(timeline_table(run, now=t0 + timedelta(seconds=10), width=40))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert re.search(r"again\s+RUNNING\s+2 \(1 retry\)\s+-\s+(\s*)▒+·+░+\s", out), out  # 20% failed, wait, running
    assert re.search(r"later\s+QUEUED\s+-\s+-\s+\s{40}", out), out
    assert "10.00 s (so far)" in out
    console.print(progress_view(run, now=t0 + timedelta(seconds=10)))
    assert "1/3 stages done, 1 running" in console.file.getvalue()  # type: ignore[attr-defined]
