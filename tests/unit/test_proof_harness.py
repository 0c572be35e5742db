"""The bench and reliability harnesses (issue 7): what they print and how they exit, without running any drill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import harness as bh
from bench.pipelines import fan_out, sequential
from reliability import harness as rh


def test_percentiles_interpolate_between_ranks() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert bh.median(values) == 3.0
    assert bh.percentile(values, 0) == 1.0 and bh.percentile(values, 100) == 5.0
    assert bh.percentile([1.0, 2.0], 95) == pytest.approx(1.95)
    with pytest.raises(ValueError):
        bh.percentile([], 50)


def test_pending_case_prints_what_it_needs_and_carries_no_number() -> None:
    result = bh.pending("P9", "future figure", "a feature (issue 99)").run(bh.Options())
    assert (result.status, result.figures) == ("pending", [])
    assert result.reason == "not measured yet: needs a feature (issue 99)"
    table = bh.render_table([result], bh.machine_info(), "abc1234", "2026-11-25")
    assert "P9" in table and "not measured yet: needs a feature (issue 99)" in table


def test_a_broken_case_is_an_error_and_a_skipped_one_says_why() -> None:
    def broken(options: bh.Options) -> bh.CaseResult:
        raise RuntimeError("boom")

    def skipped(options: bh.Options) -> bh.CaseResult:
        raise bh.Skip("no emulators here")

    assert bh.Case("PX", "x", broken).run(bh.Options()).status == "error"
    result = bh.Case("PY", "y", skipped).run(bh.Options())
    assert (result.status, result.reason) == ("skipped", "not measured: no emulators here")


def test_table_marks_missed_targets_and_the_record_is_written_twice(tmp_path: Path) -> None:
    figures = [
        bh.Figure("fast", 0.1, "s", bh.Target("<=", 0.15), samples=9),
        bh.Figure("slow", 2.0, "s", bh.Target("<=", 1.5)),
    ]
    result = bh.CaseResult("P1", "title", "measured", figures)
    table = bh.render_table([result], bh.machine_info(), "abc1234", "2026-11-25")
    assert "met (n=9)" in table and "MISSED" in table
    data = bh.record([result], bh.utc_now(), ["python -m bench"])
    named, latest = bh.write_record(data, tmp_path)
    assert named.name == f"{data['date']}-{data['commit']}.json" and latest.name == "latest.json"
    saved = json.loads(latest.read_text())
    assert saved["cases"][0]["figures"][1] == {
        "name": "slow",
        "value": 2.0,
        "unit": "s",
        "target": {"op": "<=", "value": 1.5},
        "met": False,
    }
    assert not list(tmp_path.glob("*.tmp"))


def test_generated_bench_pipelines_are_valid_chains_and_fans() -> None:
    from shared.catalog.loader import parse_pipeline
    from shared.plans import PLANS

    seq = parse_pipeline(sequential("seq10", 10), "seq10.yaml")
    assert [s.depends_on for s in seq.steps[1:]] == [[seq.steps[i].step_id] for i in range(9)]
    # the bench tenant is on the enterprise plan (bench/pipelines.py): a fan of 100 is over the default plan's caps
    fan = parse_pipeline(fan_out("fan100", 100), "fan100.yaml", plan=PLANS["enterprise"])
    assert len(fan.steps) == 101 and all(s.depends_on == ["root"] for s in fan.steps[1:])


def test_reliability_exit_status_counts_only_losses_unless_strict() -> None:
    passed = rh.figure("c", "lost", 0, True, "0")
    pending = rh.pending("x", "later", "a feature").execute(rh.Options())
    assert [f.verdict for f in pending] == ["NOT MEASURED"]
    assert "not measured yet: needs a feature" in pending[0].render()
    assert rh.exit_status([passed, *pending], strict=False) == 0
    assert rh.exit_status([passed, *pending], strict=True) == 2
    assert rh.exit_status([passed, rh.figure("c", "lost", 3, False, "0")], strict=False) == 1
    assert "1 figures passed, 0 failed, 1 not measured" in rh.summary([passed, *pending])


def test_a_drill_that_breaks_is_a_failure_not_a_crash() -> None:
    def broken(options: rh.Options) -> list[rh.Figure]:
        raise KeyError("stage")

    figures = rh.Check("b", "broken drill", broken).execute(rh.Options())
    assert [(f.verdict, f.name) for f in figures] == [("FAIL", "drill completed")]
    assert rh.exit_status(figures, strict=False) == 1
