"""What ends runs that the happy path cannot: dead-lettered messages (the stuck-run watchdog is in watchdog.py).

A dead-lettered stage task whose stage is still live (running under a valid lease) is re-published rather than
failed: the nacks that exhausted it came from duplicates waiting for that attempt. Anything else dead-lettered ends
its stage/run FAILED, so a run never stays RUNNING because a message died.
"""

from __future__ import annotations

import json
from typing import Any

from shared import logs
from shared.clock import utc_now
from shared.contracts.envelope import ReceivedMessage
from shared.contracts.messages import StageTask
from shared.contracts.state_paths import run_path, stage_path
from shared.contracts.states import RunStatus, StageStatus
from shared.ports.state import set_fields_if
from shared.runs.dag import advance
from shared.runs.events import publish_stage_tasks
from shared.runs.finalize import finalize_if_needed
from shared.runs.machine import TransitionRequest, transition
from shared.runs.records import RunRecord, StageRecord
from shared.runtime.context import Context

log = logs.get_logger(__name__)


def handle_dead_letter(ctx: Context, received: ReceivedMessage) -> str:
    """Returns what was done (for the log line and tests)."""
    reason = received.attributes.get("cdp_dead_letter_reason") or (
        f"dead-lettered after {received.attributes.get('CloudPubSubDeadLetterSourceDeliveryCount', '?')} deliveries"
    )
    try:
        payload: Any = json.loads(received.data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        payload = None
    kind = payload.get("kind") if isinstance(payload, dict) else None
    if kind == "stage.task":
        return _dead_stage_task(ctx, StageTask.model_validate(payload), reason)
    if kind == "run.requested" and isinstance(payload.get("run_id"), str):
        moved = transition(
            ctx.state,
            run_path(payload["run_id"]),
            TransitionRequest(
                "run",
                RunStatus.FAILED,
                only_from=frozenset({RunStatus.QUEUED}),
                fields={"error": f"run request {reason}"},
            ),
        )
        if moved.applied:
            finalize_if_needed(ctx, moved.doc)
            return "run failed"
        return f"run already {moved.status}"
    if kind == "status.event":  # the notifier kept failing: tell the operators on the root channels
        from shared.notify import alert_dead_lettered_event

        log.error("status event dead-lettered: %s", reason)
        return alert_dead_lettered_event(ctx, payload, reason)
    log.error("dead letter recorded: %s", reason, extra={"fields": {"dead_letter_kind": kind}})
    return "logged"


def _dead_stage_task(ctx: Context, task: StageTask, reason: str) -> str:
    """A stage task whose deliveries ran out. Capacity throttling is never a failure: while the stage has not ended
    it is re-dispatched (its own attempt accounting still decides retries and failures), up to
    `settings.stage_redispatches` times, after which a task that keeps dying fails its stage."""
    with logs.log_context(run_id=task.run_id, tenant_id=task.tenant_id, stage_id=task.stage_id):
        run = ctx.state.get(run_path(task.run_id))
        spath = stage_path(task.run_id, task.stage_id)
        doc = ctx.state.get(spath)
        stage = StageRecord.from_doc(doc) if doc is not None else None
        if run is None or stage is None or stage.is_terminal:
            return "ignored: stage already terminal"
        if RunRecord.from_doc(run).is_terminal:  # its delivery would only cancel it
            queued = frozenset({StageStatus.QUEUED})
            transition(ctx.state, spath, TransitionRequest("stage", StageStatus.CANCELLED, only_from=queued))
            finalize_if_needed(ctx, run)
            return f"ignored: run already {run['status']}"
        now = utc_now()
        if stage.lease_active(now):
            publish_stage_tasks(ctx.bus, run, [task.stage_id])  # a live attempt: its lease bounds it, not this count
            return "republished: attempt still running"
        if stage.in_backoff(now):
            publish_stage_tasks(ctx.bus, run, [task.stage_id])  # a retry backoff longer than the redelivery window
            return "republished: waiting for its retry backoff"
        done = stage.redispatched
        if done < ctx.settings.stage_redispatches and set_fields_if(
            ctx.state, spath, {"redispatched": done + 1}, lambda d: int(d.get("redispatched", 0)) == done
        ):
            publish_stage_tasks(ctx.bus, run, [task.stage_id])
            log.warning(
                "stage task ran out of deliveries (%s): re-dispatched (%d/%d)",
                reason,
                done + 1,
                ctx.settings.stage_redispatches,
            )
            return f"republished: re-dispatch {done + 1} of {ctx.settings.stage_redispatches}"
        moved = transition(
            ctx.state,
            spath,
            TransitionRequest(
                "stage",
                StageStatus.FAILED,
                only_from=frozenset({StageStatus.QUEUED, StageStatus.RUNNING}),
                fields={"error": f"stage task {reason}, re-dispatched {done} time(s)", "lease_until": None},
            ),
        )
        log.error("stage task dead-lettered: %s", reason)
        if moved.applied:
            advance(ctx, run, actor="maintenance", finished=task.stage_id)
        return "stage failed" if moved.applied else f"stage already {moved.status}"
