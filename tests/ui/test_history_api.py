"""The routes behind the run-history page, through the real `api` entry point: where a run's notifications went,
its data-quality results, the per-pipeline summary of the last days, and the date filters of the runs list.
(Cross-tenant 403s, 401s and scopes of these routes are covered by tests/integration/test_api_auth.py, which iterates
the route table.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.clock import utc_now
from shared.contracts.messages import Trigger
from shared.runs.store import create_run
from tests.conftest import auth, run_to_end

DQ_PIPELINE = """\
pipeline_id: dq_probe
description: a table, then three checks on it (one a failing warning)
steps:
  - step_id: items
    ps_type: bigquery.query
    source: {query: "SELECT x AS id, IF(MOD(x, 4) = 0, 'b', 'a') AS kind FROM UNNEST(GENERATE_ARRAY(1, 20)) AS x"}
    destination: {dataset: dq, table: items, write_mode: truncate}
  - step_id: check_items
    ps_type: quality.check
    depends_on: [items]
    source: {dataset: dq, table: items}
    config:
      checks:
        - {type: row_count, min: 1}
        - {type: not_null, columns: [id]}
        - {type: accepted_values, column: kind, values: [a], severity: warn}
"""


def get(runtime: Any, tenant: str, path: str, key_of: str | None = None, **query: Any) -> Any:
    headers = auth(runtime, key_of or tenant)
    q = {k: str(v) for k, v in query.items()}
    return runtime.call_api("GET", f"/api/v1/tenants/{tenant}/{path}", headers=headers, query=q)


@pytest.fixture
def dq_pipeline(config_dir: Path) -> str:
    (config_dir / "testco" / "pipelines" / "dq_probe.yaml").write_text(DQ_PIPELINE)
    return "dq_probe"


def test_notifications_of_a_run_say_where_they_went_and_stay_in_the_tenant(runtime: Any) -> None:
    failed = run_to_end(runtime, "testco", "always_failing")
    assert failed["status"] == "FAILED"
    response = get(runtime, "testco", "notifications", run_id=failed["run_id"])
    assert response.status == 200, response.body
    by_channel = {d["channel"]: d for d in response.body["notifications"]}
    assert set(by_channel) == {"alerts_slack", "oncall_email"}  # testco's `failures` rule
    for delivery in by_channel.values():
        assert delivery["status"] == "sent" and delivery["rule"] == "failures"
        assert delivery["event_type"] == "run.failed" and delivery["tenant_id"] == "testco"
        assert delivery["outbox_path"]  # embedded, no secret set: the local outbox
        assert "lease_owner" not in delivery and "lease_until" not in delivery
    assert response.body["count"] == 2
    sent = get(runtime, "testco", "notifications", status="sent")
    assert {d["run_id"] for d in sent.body["notifications"]} == {failed["run_id"]}
    assert get(runtime, "testco", "notifications", status="failed").body["count"] == 0
    # acme asking about testco's run id on its own path sees nothing; on testco's path it is refused
    assert get(runtime, "acme", "notifications", run_id=failed["run_id"]).body == {"notifications": [], "count": 0}
    assert get(runtime, "testco", "notifications", key_of="acme").status == 403


@pytest.mark.parametrize(
    ("query", "field"),
    [({"status": "lost"}, "status"), ({"run_id": "../runs"}, "run_id"), ({"limit": "0"}, "limit")],
)
def test_notifications_refuse_bad_filters_naming_the_field(runtime: Any, query: dict[str, str], field: str) -> None:
    response = get(runtime, "testco", "notifications", **query)
    assert response.status == 400 and response.body["details"]["field"] == field


def test_quality_results_of_a_run_come_from_the_warehouse(runtime: Any, dq_pipeline: str) -> None:
    run = run_to_end(runtime, "testco", dq_pipeline)
    assert run["status"] == "SUCCEEDED", run  # the failing check is only a warning
    response = get(runtime, "testco", f"metadata/executions/{run['run_id']}/quality")
    assert response.status == 200, response.body
    body = response.body
    assert (body["count"], body["pass"], body["fail"], body["error"]) == (3, 2, 1, 0)
    assert body["steps"] == ["check_items"]
    by_name = {r["check_name"]: r for r in body["results"]}
    warn = by_name["accepted_values_kind"]
    assert (warn["status"], warn["severity"], warn["failed_rows"], warn["total_rows"]) == ("fail", "warn", 5, 20)
    assert warn["observed"] == {"unexpected": {"b": 5}} and warn["expected"] == {"values": ["a"]}
    assert by_name["row_count"]["observed"] == {"rows": 20}
    assert datetime.fromisoformat(warn["checked_at"]).tzinfo is not None


def test_quality_of_a_run_without_checks_is_empty_and_of_another_tenants_run_is_404(runtime: Any) -> None:
    plain = run_to_end(runtime, "testco", "fan_join")
    body = get(runtime, "testco", f"metadata/executions/{plain['run_id']}/quality").body
    assert (body["count"], body["results"], body["steps"]) == (0, [], [])
    theirs = get(runtime, "acme", f"metadata/executions/{plain['run_id']}/quality")
    assert theirs.status == 404 and theirs.body["details"]["field"] == "run_id"
    assert get(runtime, "testco", "metadata/executions/run_00000000000/quality").status == 404


def _old_run(runtime: Any, pipeline: str, days_ago: float) -> str:
    at = utc_now() - timedelta(days=days_ago)
    return create_run(runtime.context.state, "testco", pipeline, {}, Trigger(type="api"), now=at).run_id


def test_summary_buckets_runs_per_pipeline_and_day_with_success_rate_and_durations(runtime: Any) -> None:
    ok = [run_to_end(runtime, "testco", "fan_join") for _ in range(2)]
    run_to_end(runtime, "testco", "always_failing")
    _old_run(runtime, "fan_join", 10)  # still QUEUED, 10 days ago: counted as active on its day
    _old_run(runtime, "fan_join", 40)  # outside the window
    response = get(runtime, "testco", "metadata/summary")
    assert response.status == 200, response.body
    body = response.body
    today = datetime.now(UTC).date()
    assert len(body["dates"]) == 30 and body["dates"][-1] == today.isoformat()
    assert body["runs_considered"] == 4 and body["truncated"] is False
    pipelines = {p["pipeline_id"]: p for p in body["pipelines"]}
    assert set(pipelines) == {"fan_join", "always_failing"}
    fan = pipelines["fan_join"]
    assert (fan["runs"], fan["succeeded"], fan["failed"], fan["active"], fan["success_rate"]) == (3, 2, 0, 1, 1.0)
    durations = sorted(r["duration_ms"] for r in ok)
    assert fan["median_duration_ms"] == durations[0] and fan["max_duration_ms"] == durations[1]
    assert [d["date"] for d in fan["days"]] == [(today - timedelta(days=10)).isoformat(), today.isoformat()]
    assert fan["days"][0]["active"] == 1 and fan["days"][0]["success_rate"] is None
    failing = pipelines["always_failing"]
    assert (failing["failed"], failing["success_rate"]) == (1, 0.0)
    only = get(runtime, "testco", "metadata/summary", pipeline_id="always_failing", days=7).body
    assert [p["pipeline_id"] for p in only["pipelines"]] == ["always_failing"] and len(only["dates"]) == 7


def test_summary_days_start_at_the_callers_midnight(runtime: Any) -> None:
    run_to_end(runtime, "testco", "fan_join")
    for offset in (-600, 0, 840):
        body = get(runtime, "testco", "metadata/summary", days=3, utc_offset_minutes=offset).body
        local_today = (datetime.now(UTC) + timedelta(minutes=offset)).date()
        assert body["dates"][-1] == local_today.isoformat() and body["utc_offset_minutes"] == offset
        since = datetime.fromisoformat(body["since"]) + timedelta(minutes=offset)
        assert since.time() == datetime.min.time() and since.date() == local_today - timedelta(days=2)
        assert body["pipelines"][0]["days"][0]["date"] == local_today.isoformat()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"days": "0"}, "days"),
        ({"days": "91"}, "days"),
        ({"utc_offset_minutes": "900"}, "utc_offset_minutes"),
        ({"utc_offset_minutes": "east"}, "utc_offset_minutes"),
        ({"pipeline_id": "Not-An-Id"}, "pipeline_id"),
    ],
)
def test_summary_refuses_bad_parameters_naming_the_field(runtime: Any, query: dict[str, str], field: str) -> None:
    response = get(runtime, "testco", "metadata/summary", **query)
    assert response.status == 400 and response.body["details"]["field"] == field


def test_runs_list_filters_by_creation_time(runtime: Any) -> None:
    state = runtime.context.state
    base = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    ids = {
        day: create_run(state, "testco", "fan_join", {}, Trigger(type="api"), now=base + timedelta(days=day)).run_id
        for day in (0, 1, 2)
    }

    def listed(**query: str) -> list[str]:
        response = get(runtime, "testco", "metadata/executions", **query)
        assert response.status == 200, response.body
        return [r["run_id"] for r in response.body["executions"]]

    assert listed(created_after="2026-03-11") == [ids[2], ids[1]]  # a date is UTC midnight
    assert listed(created_after="2026-03-11T12:00:00Z", created_before="2026-03-12T12:00:00Z") == [ids[1]]
    assert listed(created_before="2026-03-11T13:00:00+02:00") == [ids[0]]  # = 11:00 UTC, exclusive
    assert listed(created_after="2026-03-12T12:00:00.000001+00:00") == []
    for bad in ("yesterday", "2026-13-01", "2026-03-11T25:00"):
        response = get(runtime, "testco", "metadata/executions", created_after=bad)
        assert response.status == 400 and response.body["details"]["field"] == "created_after", bad
