"""The runs API on the embedded runtime: quota under 200 concurrent executes, rate limits, cancel, re-run from the
failed step, backfill (idempotent, resumable), pipelines and usage."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.clock import utc_now
from shared.contracts.state_paths import run_path
from tests.conftest import auth, execute, run_to_end, wait_for
from tests.manual_clock import ManualClock, installed


def admin(runtime: Any) -> dict[str, str]:
    return {"X-Admin-Token": runtime.admin_token}


def set_limits(runtime: Any, tenant: str, **limits: int) -> None:
    response = runtime.call_api("PATCH", f"/api/v1/admin/tenants/{tenant}", {"limits": limits}, admin(runtime))
    assert response.status == 200, response.body


def test_200_concurrent_executes_against_a_daily_limit_of_50_admit_exactly_50(runtime: Any) -> None:
    set_limits(runtime, "testco", runs_per_day=50, concurrent_runs=1000, requests_per_minute=100_000)
    barrier = threading.Barrier(200)
    statuses: list[int] = []
    bodies: list[Any] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        barrier.wait()
        response = execute(runtime, "testco", "fan_join", idempotency_key=f"burst-{i}")
        with lock:
            statuses.append(response.status)
            bodies.append(response.body)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert Counter(statuses) == {202: 50, 429: 150}, Counter(statuses)
    refused = [b for b in bodies if b.get("error") == "TOO_MANY_REQUESTS"]
    assert {b["details"]["limit"] for b in refused} == {"runs_per_day"}
    assert runtime.wait_idle(120)
    runs = [d for _, d in runtime.context.state.list("runs")]
    assert len(runs) == 50 and all(r["status"] == "SUCCEEDED" for r in runs)
    usage = runtime.call_api("GET", "/api/v1/tenants/testco/usage", headers=auth(runtime, "testco")).body
    assert usage["runs_today"] == 50 and usage["concurrent_runs"] == 0  # every slot released at the end


def test_tenant_rate_limit_is_429_with_retry_after_and_ratelimit_headers(runtime: Any) -> None:
    set_limits(runtime, "testco", requests_per_minute=3)
    next_minute = utc_now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    with installed(ManualClock(next_minute + timedelta(seconds=1))) as clock:  # one second into a one-minute window
        key = auth(runtime, "testco")
        seen = [runtime.call_api("GET", "/api/v1/tenants/testco/pipelines", headers=key) for _ in range(4)]
        assert [r.status for r in seen] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in seen] == ["2", "1", "0", "0"]
        assert all(r.headers["X-RateLimit-Limit"] == "3" for r in seen)
        limited = seen[-1]
        assert limited.headers["Retry-After"] == limited.headers["X-RateLimit-Reset"] == "59"
        assert limited.body["details"]["scope"] == "tenant"
        other = runtime.call_api("GET", "/api/v1/tenants/acme/pipelines", headers=auth(runtime, "acme"))
        assert other.status == 200  # limits are per tenant
        clock.advance(58)
        assert runtime.call_api("GET", "/api/v1/tenants/testco/pipelines", headers=key).status == 429
        clock.advance(1)  # the next window
        assert runtime.call_api("GET", "/api/v1/tenants/testco/pipelines", headers=key).status == 200


def _write_pipeline(runtime: Any, name: str, text: str) -> Path:
    path = Path(runtime.settings.config_dir) / "testco" / "pipelines" / f"{name}.yaml"
    path.write_text(text)
    return path


def test_cancel_cancels_queued_stages_releases_the_slot_and_is_idempotent(runtime: Any) -> None:
    _write_pipeline(
        runtime,
        "long_chain",
        "pipeline_id: long_chain\nsteps:\n"
        "  - {step_id: first, ps_type: debug.noop, config: {sleep_ms: 1500}}\n"
        "  - {step_id: second, ps_type: debug.noop, depends_on: [first]}\n",
    )
    key = auth(runtime, "testco")
    run_id = execute(runtime, "testco", "long_chain").body["run_id"]
    wait_for(lambda: (runtime.context.state.get(run_path(run_id)) or {}).get("status") == "RUNNING")
    path = f"/api/v1/tenants/testco/metadata/executions/{run_id}/cancel"
    cancelled = runtime.call_api("POST", path, None, {**key, "X-User-ID": "carol"})
    assert cancelled.status == 200 and cancelled.body["status"] == "CANCELLED"
    assert cancelled.body["cancelled_by"] == "carol"
    assert {s["stage_id"]: s["status"] for s in cancelled.body["stages"]}["second"] == "CANCELLED"
    assert runtime.call_api("POST", path, None, key).status == 200  # idempotent
    usage = runtime.call_api("GET", "/api/v1/tenants/testco/usage", headers=key).body
    assert usage["concurrent_runs"] == 0
    assert runtime.wait_idle(30)
    final = runtime.call_api("GET", f"/api/v1/tenants/testco/metadata/executions/{run_id}", headers=key).body
    assert final["status"] == "CANCELLED"  # the running stage finished; its result did not revive the run
    events = [d["type"] for _, d in runtime.context.state.list("events") if d["run_id"] == run_id]
    assert events.count("run.cancelled") == 1
    done = run_to_end(runtime, "testco", "fan_join")
    again = runtime.call_api("POST", f"/api/v1/tenants/testco/metadata/executions/{done['run_id']}/cancel", None, key)
    assert again.status == 409 and again.body["details"]["status"] == "SUCCEEDED"


def test_rerun_resumes_from_the_failed_step(runtime: Any) -> None:
    failed = run_to_end(runtime, "testco", "broken")
    assert failed["status"] == "FAILED"
    broken = Path(runtime.settings.config_dir) / "testco" / "pipelines" / "broken.yaml"
    broken.write_text(broken.read_text().replace("config: {fail_terminal: true}", "config: {rows: 3}"))  # fixed
    key = {**auth(runtime, "testco"), "X-User-ID": "dave"}
    path = f"/api/v1/tenants/testco/metadata/executions/{failed['run_id']}/rerun"
    response = runtime.call_api("POST", path, {"idempotency_key": "fix-1"}, key)
    assert response.status == 202 and response.body["resume_from_run"] == failed["run_id"]
    assert runtime.call_api("POST", path, {"idempotency_key": "fix-1"}, key).body["run_id"] == response.body["run_id"]
    assert runtime.wait_idle(30)
    rerun = runtime.call_api(
        "GET", f"/api/v1/tenants/testco/metadata/executions/{response.body['run_id']}", headers=key
    ).body
    assert rerun["status"] == "SUCCEEDED" and rerun["trigger"] == {"type": "rerun", "user_id": "dave"}
    stages = {s["stage_id"]: s for s in rerun["stages"]}
    for carried in ("side_branch", "alert_on_failure"):  # succeeded before: not run again
        assert stages[carried]["carried_from"] == failed["run_id"] and stages[carried]["attempts"] == []
    for ran in ("extract", "transform", "publish"):
        assert stages[ran]["status"] == "SUCCEEDED" and len(stages[ran]["attempts"]) == 1
    assert stages["extract"]["rows_out"] == 3
    not_failed = runtime.call_api(
        "POST", f"/api/v1/tenants/testco/metadata/executions/{rerun['run_id']}/rerun", {}, key
    )
    assert not_failed.status == 409


def test_backfill_is_one_idempotent_run_per_date_and_resumes_after_a_quota_stop(runtime: Any) -> None:
    set_limits(runtime, "testco", runs_per_day=3)
    key = auth(runtime, "testco")
    path = "/api/v1/tenants/testco/pipelines/fan_join/backfill"
    body = {"start_date": "2026-01-01", "end_date": "2026-01-05"}
    first = runtime.call_api("POST", path, body, key)
    assert first.status == 202, first.body
    assert [r["run_date"] for r in first.body["runs"]] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert first.body["pending_dates"] == ["2026-01-04", "2026-01-05"] and not first.body["complete"]
    assert first.body["stopped_because"]["details"]["limit"] == "runs_per_day"
    assert runtime.call_api("POST", path, body, key).status == 200  # nothing new admitted: 200, same runs
    set_limits(runtime, "testco", runs_per_day=10)
    resumed = runtime.call_api("POST", path, body, key)
    assert resumed.status == 202 and resumed.body["complete"]
    by_date = {r["run_date"]: r for r in resumed.body["runs"]}
    assert [by_date[d]["created"] for d in sorted(by_date)] == [False, False, False, True, True]
    assert {r["run_id"] for r in first.body["runs"]} <= {r["run_id"] for r in resumed.body["runs"]}
    assert runtime.wait_idle(60)
    runs = [d for _, d in runtime.context.state.list("runs")]
    assert sorted(r["run_date"] for r in runs) == [f"2026-01-0{i}" for i in range(1, 6)]
    assert all(r["status"] == "SUCCEEDED" and r["trigger"]["type"] == "backfill" for r in runs)
    bad = runtime.call_api("POST", path, {**body, "end_date": "2025-12-31"}, key)
    assert bad.status == 400 and bad.body["details"]["field"] == "end_date"
    missing = runtime.call_api("POST", "/api/v1/tenants/testco/pipelines/nope/backfill", body, key)
    assert missing.status == 404


def test_pipelines_and_usage(runtime: Any) -> None:
    key = auth(runtime, "testco")
    listed = runtime.call_api("GET", "/api/v1/tenants/testco/pipelines", headers=key).body
    by_id = {p["pipeline_id"]: p for p in listed["pipelines"]}
    assert {"fan_join", "broken", "warehouse_rows"} <= set(by_id)
    assert [s["step_id"] for s in by_id["fan_join"]["steps"]] == ["a", "b", "c", "d"]
    ended = [run_to_end(runtime, "testco", p)["status"] for p in ("fan_join", "broken", "slow")]
    assert ended == ["SUCCEEDED", "FAILED", "TIMED_OUT"]
    usage = runtime.call_api("GET", "/api/v1/tenants/testco/usage", headers=key).body
    assert usage["runs_today"] == 3 and usage["plan"]["name"] == "starter"
    assert usage["concurrent_runs"] == 0  # every terminal state gave its slot back
    assert usage["remaining"]["runs_today"] == usage["plan"]["runs_per_day"] - 3


def test_execute_records_the_user_id_for_audit_only(runtime: Any) -> None:
    headers = {**auth(runtime, "testco"), "X-User-ID": "erin@example.com"}
    response = runtime.call_api(
        "POST", "/api/v1/tenants/testco/pipelines/execute", {"pipeline_id": "fan_join"}, headers
    )
    assert response.status == 202
    run = runtime.context.state.get(run_path(response.body["run_id"]))
    assert run["trigger"] == {"type": "api", "user_id": "erin@example.com"}
