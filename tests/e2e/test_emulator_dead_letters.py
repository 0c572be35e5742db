"""Issue 18 (dead-letter operations) on the emulator stack: real functions-framework processes behind Pub/Sub emulator
push subscriptions (max_delivery_attempts and the dead-letter topic as local_stack.provision_pubsub wires them), the
operator acting through the api function's admin routes.

- A worker bug: every delivery of fan_join's stage b task crashes the stage worker (a fault planted in every function
  process by a sitecustomize on their PYTHONPATH, present while a marker file exists), so Pub/Sub dead-letters the
  task after its delivery attempts and maintenance fails the run. The admin API lists it (kind, run, stage, reason)
  as often as asked without consuming it; the bug is fixed (marker removed) and the replay resumes the run once: the
  re-run SUCCEEDS, carrying stage a over, b runs exactly one attempt; a second replay of the same id is a 404 and
  the tenant has exactly one FAILED and one SUCCEEDED run.
- An undecodable message published to the stage-task topic is dead-lettered by the worker with its reason; replay
  skips it (no known topic), purge drops it with an audit record, a second purge of the id is a 404.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from bench.local_stack import http_json
from shared.contracts import topics
from tests.conftest import wait_for
from tests.e2e.conftest import stack_context

pytestmark = [pytest.mark.emulator, pytest.mark.bqemulator, pytest.mark.timeout(180)]

TENANT = "testco"
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"})
_BUG_FILE: list[Path] = []

_SITECUSTOMIZE = '''
"""Test-only fault for the dead-letter e2e test: stage b's task crashes the stage worker while the marker exists."""
import os

_marker = os.environ.get("CLOUDACT_E2E_WORKER_BUG_FILE")
if _marker:
    import shared.runs.engine as _engine

    _real_claim = _engine._claim

    def _claim(ctx, task, attempt, now):
        if task.stage_id == "b" and os.path.exists(_marker):
            raise RuntimeError("stage worker bug (e2e fault injection)")
        return _real_claim(ctx, task, attempt, now)

    _engine._claim = _claim
'''


def STACK_EXTRA_ENV(root: Path) -> dict[str, str]:
    """Every function process imports the fault hook at start-up; it is armed while the marker file exists."""
    hook = root / "fault-hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(_SITECUSTOMIZE))
    marker = root / "worker-bug-present"
    marker.write_text("the bug is deployed\n")
    _BUG_FILE[:] = [marker]
    # A worker bug (not capacity): fail the stage at its first dead letter instead of re-dispatching it first.
    return {"PYTHONPATH": str(hook), "CLOUDACT_E2E_WORKER_BUG_FILE": str(marker), "CLOUDACT_STAGE_REDISPATCHES": "0"}


def _admin(stack: Any) -> dict[str, str]:
    return {"X-Admin-Token": stack.env["CLOUDACT_ADMIN_TOKEN"], "X-User-ID": "oncall@example.com"}


_KEYS: dict[str, str] = {}


def _key(stack: Any) -> str:
    if stack.project not in _KEYS:
        body = json.dumps({"tenant_id": TENANT, "plan": "starter"}).encode()
        status, created = http_json("POST", f"{stack.api_url}/api/v1/admin/tenants", body, _admin(stack))
        assert status == 201, created
        _KEYS[stack.project] = created["api_key"]["api_key"]
    return _KEYS[stack.project]


def _dead_letters(stack: Any) -> list[dict[str, Any]]:
    status, body = http_json("GET", f"{stack.api_url}/api/v1/admin/dead-letters", headers=_admin(stack))
    assert status == 200, body
    return list(body["dead_letters"])


def _act(stack: Any, action: str, ids: list[str]) -> tuple[int, Any]:
    body = json.dumps({"ids": ids}).encode()
    return http_json("POST", f"{stack.api_url}/api/v1/admin/dead-letters/{action}", body, _admin(stack))


def _run(stack: Any, run_id: str) -> dict[str, Any]:
    url = f"{stack.api_url}/api/v1/tenants/{TENANT}/metadata/executions/{run_id}"
    status, body = http_json("GET", url, headers={"X-API-Key": _key(stack)})
    assert status == 200, body
    return dict(body)


def _wait_terminal(stack: Any, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
    return dict(wait_for(lambda: (r := _run(stack, run_id))["status"] in TERMINAL and r, timeout, 0.2))


def _audit(stack: Any, action: str) -> list[dict[str, Any]]:
    url = f"{stack.api_url}/api/v1/admin/tenants/{TENANT}/audit"
    status, body = http_json("GET", url, headers=_admin(stack))
    assert status == 200, body
    return [a for a in body["audit"] if a["action"] == action]


def test_worker_bug_dead_letters_then_fix_and_replay_succeeds_exactly_once(emulator_stack: Any) -> None:
    stack = emulator_stack
    assert _BUG_FILE and _BUG_FILE[0].exists()
    url = f"{stack.api_url}/api/v1/tenants/{TENANT}/pipelines/execute"
    status, body = http_json(
        "POST", url, json.dumps({"pipeline_id": "fan_join"}).encode(), {"X-API-Key": _key(stack), "X-User-ID": "e2e"}
    )
    assert status == 202, body
    started = time.monotonic()
    failed = _wait_terminal(stack, body["run_id"])
    print(f"dead-lettered and FAILED in {time.monotonic() - started:.1f}s")
    assert failed["status"] == "FAILED", failed  # maintenance ended it when b's task was dead-lettered
    stages = {s["stage_id"]: s for s in failed["stages"]}
    assert stages["a"]["status"] == "SUCCEEDED" and stages["b"]["status"] == "FAILED", stages
    assert stages["b"]["attempts"] == [], stages["b"]  # the worker died before any attempt started

    listed = wait_for(lambda: [d for d in _dead_letters(stack) if d["run_id"] == failed["run_id"]], 30, 0.2)
    assert len(listed) == 1, listed
    letter = listed[0]
    assert (letter["kind"], letter["tenant_id"], letter["pipeline_id"], letter["stage_id"]) == (
        "stage.task",
        TENANT,
        "fan_join",
        "b",
    )
    assert letter["source_topic"] == topics.STAGE_TASKS
    assert letter["source_subscription"] == topics.subscription_name(topics.STAGE_TASKS)
    assert letter["delivery_count"] is not None and letter["delivery_count"] >= 2, letter
    assert letter["reason"] == f"{letter['delivery_count']} failed deliveries"
    assert (letter["run_status"], letter["stage_status"]) == ("FAILED", "FAILED")
    status, shown = http_json(
        "GET", f"{stack.api_url}/api/v1/admin/dead-letters/{letter['dead_letter_id']}", headers=_admin(stack)
    )
    assert status == 200 and shown["message"]["stage_id"] == "b", shown
    assert [d for d in _dead_letters(stack) if d["run_id"] == failed["run_id"]] == listed  # listing consumed nothing
    assert http_json("GET", f"{stack.api_url}/api/v1/admin/dead-letters")[0] == 401  # never open

    _BUG_FILE[0].unlink()  # the fix is deployed
    status, replayed = _act(stack, "replay", [letter["dead_letter_id"]])
    assert status == 200, replayed
    [outcome] = replayed["outcomes"]
    assert outcome["action"] == "resumed" and outcome["run_id"] != failed["run_id"], outcome
    rerun = _wait_terminal(stack, outcome["run_id"])
    assert rerun["status"] == "SUCCEEDED", rerun
    stages = {s["stage_id"]: s for s in rerun["stages"]}
    assert all(s["status"] == "SUCCEEDED" for s in stages.values()), stages
    assert stages["a"]["attempts"] == [], stages["a"]  # carried over from the failed run, not run again
    assert [a["status"] for a in stages["b"]["attempts"]] == ["SUCCEEDED"]
    status, again = _act(stack, "replay", [letter["dead_letter_id"]])  # acked once replayed: gone
    assert status == 404 and again["details"]["missing"] == [letter["dead_letter_id"]], again
    runs = [
        (r["run_id"], r["status"])
        for _, r in stack_context(stack).state.list("runs")
        if r.get("tenant_id") == TENANT and r.get("pipeline_id") == "fan_join"
    ]
    assert sorted(runs) == sorted([(failed["run_id"], "FAILED"), (rerun["run_id"], "SUCCEEDED")])  # exactly once
    audit = _audit(stack, "dead_letter.replayed")
    assert len(audit) == 1 and audit[0]["user_id"] == "oncall@example.com", audit
    assert audit[0]["details"]["run_id"] == rerun["run_id"]


def test_undecodable_message_is_listed_skipped_by_replay_and_purged_with_audit(emulator_stack: Any) -> None:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    stack = emulator_stack
    _key(stack)  # the tenant exists: its audit trail is readable
    publisher = pubsub_v1.PublisherClient()
    publisher.publish(publisher.topic_path(stack.project, topics.STAGE_TASKS), b"\x00poison", tenant_id=TENANT).result(
        timeout=10
    )
    [letter] = wait_for(lambda: [d for d in _dead_letters(stack) if d["kind"] == "undecodable"], 30, 0.2)
    assert letter["tenant_id"] == TENANT and "not JSON" in letter["reason"], letter
    # Its topic is kept (the push URL names it), so an operator sees where it came from; replay still skips it.
    assert letter["source_subscription"] == "stage_worker" and letter["source_topic"] == topics.STAGE_TASKS
    assert [d for d in _dead_letters(stack) if d["kind"] == "undecodable"] == [letter]  # still there

    status, replayed = _act(stack, "replay", [letter["dead_letter_id"]])
    assert status == 200 and [o["action"] for o in replayed["outcomes"]] == ["skipped"], replayed  # kept

    status, purged = _act(stack, "purge", [letter["dead_letter_id"]])
    assert status == 200 and [o["action"] for o in purged["outcomes"]] == ["purged"], purged
    status, again = _act(stack, "purge", [letter["dead_letter_id"]])
    assert status == 404 and again["details"]["missing"] == [letter["dead_letter_id"]], again  # gone for good
    [entry] = _audit(stack, "dead_letter.purged")
    assert entry["user_id"] == "oncall@example.com" and entry["details"]["kind"] == "undecodable", entry
    assert "not JSON" in entry["details"]["reason"]
