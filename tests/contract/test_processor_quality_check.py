"""quality.check: every check type on both warehouses, severities, dq_results rows and their idempotency."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa
import pytest

from shared.errors import TerminalError
from shared.metadata_tables import latest_sql, read_dq_results
from shared.pipelines.spec import StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors import quality_check
from tests.processor_support import StepEnv, engine_fixture, env_fixture, warehouse_fixture  # noqa: F401

UTC = dt.UTC


def _costs() -> pa.Table:
    return pa.table(
        {
            "day": [dt.date(2026, 11, 1), dt.date(2026, 11, 1), dt.date(2026, 11, 2), None],
            "project": ["web-prod", "data-prod", "web-prod", "Bad Project!"],
            "currency": ["USD", "USD", "EUR", "GBP"],
            "cost": [10.0, 250.0, -3.0, 7.5],
            "seen": pa.array(
                [dt.datetime(2026, 11, 2, h, tzinfo=UTC) for h in (1, 2, 3, 4)], pa.timestamp("us", tz="UTC")
            ),
        }
    )


def _step(checks: list[dict[str, Any]], source: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "step_id": "dq",
        "ps_type": "quality.check",
        "source": {"dataset": "billing", "table": "costs"} if source is None else source,
        "config": {"checks": checks},
    }


def _results(env: StepEnv, run_id: str) -> dict[str, dict[str, Any]]:
    rows = env.warehouse.query(
        f"SELECT * FROM {env.tenant_id}_metadata.dq_results WHERE run_id = @run_id", {"run_id": run_id}
    ).to_pylist()
    return {r["check_name"]: r for r in rows}


ALL_CHECKS: list[dict[str, Any]] = [
    {"type": "not_null", "columns": ["day", "project"]},
    {"type": "unique", "columns": ["day", "project"]},
    {"type": "accepted_values", "column": "currency", "values": ["USD", "EUR"], "severity": "warn"},
    {"type": "range", "column": "cost", "min": 0, "max": 1000, "severity": "warn"},
    {"type": "regex", "column": "project", "pattern": "^[a-z][a-z0-9-]+$", "severity": "warn"},
    {"type": "row_count", "min": 1, "max": 10},
    {"type": "freshness", "column": "seen", "max_age_hours": 24, "reference": "run_date"},
    {
        "type": "freshness",
        "column": "seen",
        "max_age_hours": 1,
        "reference": "run_date",
        "name": "stale_days",
        "severity": "warn",
    },
    {
        "type": "custom_sql",
        "name": "no_big_costs",
        "sql": "SELECT * FROM {tenant_id}_billing.costs WHERE cost > @limit",
    },
]


def test_every_check_type_is_computed_and_recorded(env: StepEnv) -> None:
    env.load("billing", "costs", _costs())
    result = env.run(_step(ALL_CHECKS[1:]), run_id="run_all", parameters={"limit": 500})
    got = _results(env, "run_all")
    assert {k: v["status"] for k, v in got.items()} == {
        "unique_day_project": "pass",
        "accepted_values_currency": "fail",
        "range_cost": "fail",
        "regex_project": "fail",
        "row_count": "pass",
        "freshness_seen": "pass",
        "stale_days": "fail",
        "no_big_costs": "pass",
    }
    assert got["accepted_values_currency"]["failed_rows"] == 1
    assert json.loads(got["accepted_values_currency"]["observed"]) == {"unexpected": {"GBP": 1}}
    assert got["range_cost"]["failed_rows"] == 1 and json.loads(got["range_cost"]["observed"]) == {
        "min": -3.0,
        "max": 250.0,
    }
    assert got["regex_project"]["failed_rows"] == 1
    assert got["row_count"]["total_rows"] == 4 and got["row_count"]["execution_date"] == dt.date(2026, 11, 2)
    assert json.loads(got["freshness_seen"]["observed"])["age_hours"] == 20.0
    assert got["stale_days"]["severity"] == "warn"
    assert result.details["warnings"] == ["accepted_values_currency", "range_cost", "regex_project", "stale_days"]
    assert result.details["failed"] == [] and result.rows_in == 4


def test_an_error_check_fails_the_step_after_recording_everything(env: StepEnv) -> None:
    env.load("billing", "costs", _costs())
    checks = [
        *ALL_CHECKS[:2],
        {"type": "custom_sql", "name": "big", "sql": "SELECT * FROM {tenant_id}_billing.costs WHERE cost > 100"},
    ]
    with pytest.raises(TerminalError, match=r"2 data-quality check\(s\) failed: not_null_day_project .*; big") as err:
        env.run(_step(checks), run_id="run_fail")
    assert "1 of 4 rows have a null" in str(err.value)
    got = _results(env, "run_fail")
    assert {k: v["status"] for k, v in got.items()} == {
        "not_null_day_project": "fail",
        "unique_day_project": "pass",
        "big": "fail",
    }
    assert json.loads(got["not_null_day_project"]["observed"]) == {"nulls": {"day": 1, "project": 0}}


def test_a_rerun_leaves_readers_one_result_per_check(env: StepEnv) -> None:
    """Results are appended (no DELETE: BigQuery refuses DML on streamed rows); readers keep the latest per check."""
    env.load("billing", "costs", _costs())
    for _ in range(2):
        env.run(_step([ALL_CHECKS[1], ALL_CHECKS[5]]), run_id="run_same")
    env.run(_step([ALL_CHECKS[5]]), run_id="run_other")
    latest = latest_sql(f"{env.tenant_id}_metadata.dq_results")
    total = env.warehouse.query(f"SELECT COUNT(*) AS n FROM ({latest})")
    assert total.column("n")[0].as_py() == 3
    same = read_dq_results(env.warehouse, env.tenant_id, "run_same", "check_name, checked_at")
    assert sorted(r["check_name"] for r in same) == ["row_count", "unique_day_project"]
    every = env.warehouse.query(
        f"SELECT MAX(checked_at) AS last FROM {env.tenant_id}_metadata.dq_results WHERE run_id = 'run_same'"
    )
    assert {r["checked_at"] for r in same} == {every.column("last")[0].as_py()}  # the second run's rows won


def test_a_broken_check_is_an_error_result_not_a_crash(env: StepEnv) -> None:
    env.load("billing", "costs", _costs())
    checks = [
        {"type": "not_null", "columns": ["no_such_column"], "severity": "warn"},
        {"type": "row_count", "min": 1},
    ]
    result = env.run(_step(checks), run_id="run_broken")
    got = _results(env, "run_broken")
    assert got["not_null_no_such_column"]["status"] == "error" and got["row_count"]["status"] == "pass"
    assert "no_such_column" in got["not_null_no_such_column"]["message"]
    assert result.details["warnings"] == ["not_null_no_such_column"]


def test_custom_sql_may_not_read_another_tenant(env: StepEnv) -> None:
    env.load("billing", "costs", _costs())
    check = {"type": "custom_sql", "name": "peek", "sql": "SELECT * FROM othertenant_billing.costs"}
    with pytest.raises(TerminalError, match=r"peek \(error: query refused: .*othertenant_billing"):
        env.run(_step([check]), run_id="run_peek")
    assert _results(env, "run_peek")["peek"]["status"] == "error"


def test_an_empty_table_is_not_fresh(env: StepEnv) -> None:
    env.load("billing", "costs", _costs().slice(0, 0))
    with pytest.raises(TerminalError, match="no rows: nothing is fresh"):
        env.run(_step([{"type": "freshness", "column": "seen", "max_age_hours": 24}, {"type": "row_count", "min": 0}]))


# -- validation --------------------------------------------------------------------------------------------------


def _issues(raw: dict[str, Any], tenant: str = "acme") -> dict[tuple[str | int, ...], str]:
    step = StepSpec.model_validate(raw)
    scope = ValidationScope(tenant_id=tenant, parameter_types={"limit": "number"})
    return {i.path: i.message for i in quality_check.SPEC.validate(step, scope)}


def test_validation_names_the_check_and_key() -> None:
    assert _issues(_step(ALL_CHECKS)) == {}
    found = _issues(
        _step(
            [
                {"type": "not_null"},
                {"type": "range", "column": "cost"},
                {"type": "regex", "column": "p", "pattern": "("},
                {"type": "median", "column": "cost"},
                {"type": "row_count", "severity": "fatal"},
                {"type": "custom_sql", "sql": "SELECT * FROM beta_sales.orders"},
            ]
        )
    )
    assert found[("config", "checks", 0, "columns")] == "Field required"
    assert "needs min, max or both" in found[("config", "checks", 1)]
    assert "invalid regular expression" in found[("config", "checks", 2, "pattern")]
    assert "does not match any of the expected tags" in found[("config", "checks", 3)]
    assert "'error' or 'warn'" in found[("config", "checks", 4, "severity")]
    assert "not one of this tenant's datasets" in found[("config", "checks", 5, "sql")]
    twice = _issues(_step([{"type": "row_count"}, {"type": "row_count", "max": 5}]))
    assert "must be unique in the step (set `name`): row_count" in twice[("config", "checks")]


def test_a_source_is_needed_unless_every_check_is_sql() -> None:
    sql_only = _step([{"type": "custom_sql", "sql": "SELECT 1 AS x FROM {tenant_id}_a.b WHERE FALSE"}], source={})
    sql_only.pop("source")
    assert _issues(sql_only) == {}
    table_check = _step([{"type": "row_count"}])
    table_check.pop("source")
    assert "source {dataset, table} is required" in _issues(table_check)[()]
