"""Dead letters on the embedded runtime: listed with their run/stage and reason, replayed after a bug fix so the run
then succeeds exactly once, a finished stage's replay changing nothing, purge audited."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

import shared.runs.engine as engine
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage
from shared.contracts.state_paths import run_path
from shared.errors import NotFound
from shared.runs import dead_letters
from shared.runs.store import list_runs, list_stages
from shared.runtime.settings import Settings
from shared.tenancy.audit import list_audit
from tests.conftest import run_to_end


class WorkerBug(BaseException):
    """A bug in the stage worker itself (not a step failure): every delivery of the task dies and is nacked."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A worker bug, not capacity: the stage fails at its first dead letter instead of being re-dispatched first."""
    return dataclasses.replace(settings, stage_redispatches=0)


@pytest.fixture
def buggy_stage_b(monkeypatch: Any) -> dict[str, bool]:
    """Stage b's task crashes the worker until the bug is 'fixed' (the flag flipped)."""
    bug = {"present": True}
    real_claim = engine._claim

    def claim(ctx: Any, task: Any, attempt: int, now: Any) -> None:
        if bug["present"] and task.stage_id == "b":
            raise WorkerBug("stage worker bug")
        real_claim(ctx, task, attempt, now)

    monkeypatch.setattr(engine, "_claim", claim)
    return bug


def _runs(runtime: Any) -> list[dict[str, Any]]:
    return [r for r in list_runs(runtime.context.state, "testco", None, "fan_join", 50)]


def test_replay_after_the_bug_is_fixed_succeeds_exactly_once(make_runtime: Any, buggy_stage_b: dict[str, bool]) -> None:
    runtime = make_runtime(max_delivery_attempts=3)
    ctx, queue = runtime.context, runtime.bus
    failed = run_to_end(runtime, "testco", "fan_join")
    assert failed["status"] == "FAILED"  # maintenance ended the run when b's task died

    listed = dead_letters.list_dead_letters(ctx, queue)
    assert len(listed) == 1
    letter = listed[0]
    assert (letter["kind"], letter["tenant_id"], letter["run_id"], letter["stage_id"]) == (
        "stage.task",
        "testco",
        failed["run_id"],
        "b",
    )
    assert letter["delivery_count"] == 3 and letter["source_subscription"] == "cdp-stage-tasks--stage-worker"
    assert letter["source_topic"] == topics.STAGE_TASKS
    assert letter["run_status"] == "FAILED" and letter["stage_status"] == "FAILED"
    assert dead_letters.list_dead_letters(ctx, queue) == listed  # listing consumed nothing

    buggy_stage_b["present"] = False  # the fix is deployed
    outcomes = dead_letters.replay(ctx, queue, runtime.bus, None, "test", "op@example.com")
    assert runtime.wait_idle(30)
    assert [o["action"] for o in outcomes] == ["resumed"]
    rerun = ctx.state.get(run_path(outcomes[0]["run_id"]))
    assert rerun["status"] == "SUCCEEDED" and rerun["resume_from_run"] == failed["run_id"]
    stages = {s["stage_id"]: s for s in list_stages(ctx.state, rerun["run_id"])}
    assert stages["a"].get("carried_from") == failed["run_id"]  # a is not run again
    assert [a["status"] for a in stages["b"]["attempts"]] == ["SUCCEEDED"]
    assert dead_letters.list_dead_letters(ctx, queue) == []  # acked once replayed

    # A second replay: the dead letter is gone; and the same dead letter delivered again (say its ack was lost)
    # finds the re-run already made.
    with pytest.raises(NotFound):
        dead_letters.replay(ctx, queue, runtime.bus, [letter["dead_letter_id"]], "test", None)
    runtime.bus.publish(topics.DEAD_LETTERS, [OutboundMessage(json.dumps(_task(failed, "b")).encode(), _dl_attrs())])
    assert runtime.wait_idle(30)
    again = dead_letters.replay(ctx, queue, runtime.bus, None, "test", None)
    assert runtime.wait_idle(30)
    assert again[0]["action"] == "resumed" and again[0]["run_id"] == rerun["run_id"]
    assert "already resumed" in again[0]["detail"]
    statuses = sorted(r["status"] for r in _runs(runtime))
    assert statuses == ["FAILED", "SUCCEEDED"]  # exactly one successful run
    audit = [a for a in list_audit(ctx, "testco") if a["action"] == "dead_letter.replayed"]
    assert len(audit) == 2 and audit[-1]["user_id"] == "op@example.com"


def _task(run: dict[str, Any], stage_id: str) -> dict[str, Any]:
    return {
        "kind": "stage.task",
        "version": 1,
        "run_id": run["run_id"],
        "tenant_id": "testco",
        "pipeline_id": run["pipeline_id"],
        "stage_id": stage_id,
    }


def _dl_attrs() -> dict[str, str]:
    return {
        "kind": "stage.task",
        "CloudPubSubDeadLetterSourceDeliveryCount": "3",
        "CloudPubSubDeadLetterSourceSubscription": topics.subscription_name(topics.STAGE_TASKS),
    }


def test_replaying_a_finished_stage_does_nothing(runtime: Any) -> None:
    ctx = runtime.context
    run = run_to_end(runtime, "testco", "fan_join")
    assert run["status"] == "SUCCEEDED"
    before = {s["stage_id"]: s for s in list_stages(ctx.state, run["run_id"])}
    events_before = len(list(ctx.state.list("events")))
    # a duplicate of b's task that died while b was already done (maintenance ignores it: stage terminal)
    runtime.bus.publish(topics.DEAD_LETTERS, [OutboundMessage(json.dumps(_task(run, "b")).encode(), _dl_attrs())])
    assert runtime.wait_idle(30)

    outcomes = dead_letters.replay(ctx, runtime.bus, runtime.bus, None, "test", None)
    assert runtime.wait_idle(30)
    assert [(o["action"], o["topic"]) for o in outcomes] == [("republished", topics.STAGE_TASKS)]
    after = {s["stage_id"]: s for s in list_stages(ctx.state, run["run_id"])}
    assert after == before  # no attempt, no status change
    assert len(list(ctx.state.list("events"))) == events_before
    assert sorted(r["status"] for r in _runs(runtime)) == ["SUCCEEDED"]


def test_purge_acks_and_audits_and_unknown_ids_are_404(runtime: Any) -> None:
    ctx = runtime.context
    runtime.bus.publish(topics.DEAD_LETTERS, [OutboundMessage(b"not json", {"cdp_dead_letter_reason": "garbage"})])
    assert runtime.wait_idle(30)
    [letter] = dead_letters.list_dead_letters(ctx, runtime.bus)
    assert letter["kind"] == "undecodable" and letter["reason"] == "garbage" and letter["source_topic"] is None
    shown = dead_letters.describe(ctx, dead_letters.find_dead_letter(runtime.bus, letter["dead_letter_id"]), True)
    assert shown["message"] == "not json"
    skipped = dead_letters.replay(ctx, runtime.bus, runtime.bus, None, "test", None)
    assert skipped[0]["action"] == "skipped"  # nowhere to send it: it stays for a purge
    with pytest.raises(NotFound) as refused:
        dead_letters.purge(ctx, runtime.bus, ["999999"], "test", None)
    assert refused.value.details["field"] == "dead_letter_id"
    purged = dead_letters.purge(ctx, runtime.bus, [letter["dead_letter_id"]], "test", "op")
    assert [p["action"] for p in purged] == ["purged"]
    assert dead_letters.list_dead_letters(ctx, runtime.bus) == []
    audit = [d for _, d in ctx.state.list("audit") if d["action"] == "dead_letter.purged"]
    assert len(audit) == 1 and audit[0]["details"]["reason"] == "garbage"


def test_admin_api_lists_replays_and_purges_with_the_admin_credential(runtime: Any) -> None:
    headers = {"X-Admin-Token": runtime.admin_token, "X-User-ID": "ops@example.com"}
    run = run_to_end(runtime, "testco", "fan_join")
    runtime.bus.publish(topics.DEAD_LETTERS, [OutboundMessage(json.dumps(_task(run, "b")).encode(), _dl_attrs())])
    assert runtime.wait_idle(30)
    assert runtime.call_api("GET", "/api/v1/admin/dead-letters").status == 401
    listed = runtime.call_api("GET", "/api/v1/admin/dead-letters", headers=headers, query={"tenant_id": "testco"})
    assert listed.status == 200 and listed.body["count"] == 1
    dead_letter_id = listed.body["dead_letters"][0]["dead_letter_id"]
    shown = runtime.call_api("GET", f"/api/v1/admin/dead-letters/{dead_letter_id}", headers=headers)
    assert shown.status == 200 and shown.body["message"]["stage_id"] == "b"
    assert runtime.call_api("GET", "/api/v1/admin/dead-letters/424242", headers=headers).status == 404
    for body, field in (({}, "<body>"), ({"ids": ["1"], "all": True}, "<body>"), ({"ids": ["a b"]}, "ids.0")):
        refused = runtime.call_api("POST", "/api/v1/admin/dead-letters/replay", body, headers)
        assert refused.status == 400 and refused.body["details"]["field"] == field, (body, refused.body)
    bad_limit = runtime.call_api("GET", "/api/v1/admin/dead-letters", headers=headers, query={"limit": "0"})
    assert bad_limit.status == 400 and bad_limit.body["details"]["field"] == "limit"
    replayed = runtime.call_api("POST", "/api/v1/admin/dead-letters/replay", {"ids": [dead_letter_id]}, headers)
    assert replayed.status == 200 and replayed.body["outcomes"][0]["action"] == "republished"
    assert runtime.wait_idle(30)
    assert runtime.call_api("GET", "/api/v1/admin/dead-letters", headers=headers).body["count"] == 0
    purged = runtime.call_api("POST", "/api/v1/admin/dead-letters/purge", {"all": True}, headers)
    assert purged.status == 200 and purged.body["count"] == 0


def test_cli_dead_letters_on_the_embedded_runtime(runtime: Any, settings: Any) -> None:
    from click.testing import CliRunner

    from shared.cli.main import cli

    run = run_to_end(runtime, "testco", "fan_join")
    runtime.bus.publish(topics.DEAD_LETTERS, [OutboundMessage(json.dumps(_task(run, "b")).encode(), _dl_attrs())])
    runtime.bus.publish(topics.DEAD_LETTERS, [OutboundMessage(b"garbage", {"cdp_dead_letter_reason": "bad json"})])
    assert runtime.wait_idle(30)
    runtime.close()  # a later process: the CLI finds what this one dead-lettered
    env = {"CLOUDACT_HOME": str(settings.home), "CLOUDACT_CONFIG_DIR": str(settings.config_dir)}

    def cloudact(*args: str) -> Any:
        return CliRunner().invoke(cli, ["dead-letters", *args], env=env)

    listed = cloudact("list", "--json")
    assert listed.exit_code == 0, listed.output
    letters = json.loads(listed.output)
    assert [d["kind"] for d in letters] == ["stage.task", "undecodable"]
    task_id, garbage_id = letters[0]["dead_letter_id"], letters[1]["dead_letter_id"]
    assert f"testco/{run['run_id']}/b" in cloudact("list").output
    assert '"stage_id": "b"' in cloudact("show", task_id).output
    assert cloudact("show", "9999").exit_code == 1
    assert cloudact("replay").exit_code == 2 and cloudact("replay", task_id, "--all").exit_code == 2
    assert cloudact("purge", garbage_id).exit_code == 2  # no --yes
    replayed = cloudact("replay", task_id)
    assert replayed.exit_code == 0 and f"{task_id}: republished" in replayed.output
    purged = cloudact("purge", "--all", "--yes")
    assert purged.exit_code == 0 and json.loads(purged.output) == {"purged": [garbage_id]}
    assert cloudact("list").output.strip() == "no dead letters"
