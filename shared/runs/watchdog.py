"""The maintenance function's watchdog: ends or restarts what the happy path left behind.

Each pass (a Cloud Scheduler tick, every few minutes) looks for:
- RUNNING runs past their deadline -> every unfinished stage TIMED_OUT, the run TIMED_OUT and finalised (history,
  `run.timed_out` event for alerts, quota slot released);
- RUNNING stages whose lease expired (the worker vanished) and dispatched stages nobody picked up -> re-published;
- orphaned claims: a claim whose attempt never started (the worker died between claiming and starting) blocks that
  attempt forever -> deleted and the stage re-published; claims of finished runs -> deleted (garbage);
- QUEUED runs that never started (the run.requested publish was lost) -> re-published, then FAILED after a bound;
- terminal runs never finalised (a crash between the run's last transition and `finalized`) -> finalised;
- the dead-letter backlog: dead letters recorded by the maintenance function, and how many nobody could act on.

Everything it does is a guarded transition or an idempotent re-publish, so two overlapping passes are harmless.
Work on a run is traced inside the run's own trace (the traceparent stored on the run).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared import logs, observability
from shared.clock import iso, parse_iso, utc_now
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage, ReceivedMessage
from shared.contracts.messages import RunRequest, Trigger
from shared.contracts.state_paths import run_path, stage_path
from shared.contracts.states import RunStatus, StageStatus, is_terminal
from shared.errors import TransientError
from shared.ports.state import EXPIRE_AT, Doc, Filter, expires_in, set_fields_if
from shared.runs import stage_jobs, stage_slots
from shared.runs.dag import advance
from shared.runs.events import publish_stage_tasks
from shared.runs.finalize import finalize_run, finish_run
from shared.runs.machine import TransitionRequest, transition, transition_run
from shared.runs.records import RunRecord, StageRecord
from shared.runs.store import list_stages
from shared.runtime.context import Context

log = logs.get_logger(__name__)


@dataclass(frozen=True)
class WatchdogLimits:
    queued_republish_after: timedelta = timedelta(minutes=2)
    """A QUEUED run not started this long after it was created is re-published (its request was lost)."""
    queued_give_up_after: timedelta = timedelta(hours=1)
    """... and FAILED once it is this old: something keeps it from starting and nobody should wait longer."""
    stalled_dispatch_after: timedelta = timedelta(minutes=10)
    """A dispatched QUEUED stage untouched this long is re-published (its task message was lost)."""
    orphan_claim_after: timedelta = timedelta(minutes=2)
    """A claim whose attempt has not started after this long belongs to a worker that died."""
    dead_letter_window: timedelta = timedelta(hours=24)
    scan_limit: int = 500
    """Documents examined per category per pass; the next pass continues."""


def watchdog(ctx: Context, now: datetime | None = None, limits: WatchdogLimits | None = None) -> dict[str, int]:
    """One pass. Returns counts of what was done (logged by the maintenance function, asserted by tests)."""
    now = now or utc_now()
    limits = limits or WatchdogLimits()
    report: dict[str, int] = {}
    report.update(_running_runs(ctx, now, limits))
    report.update(_queued_runs(ctx, now, limits))
    report.update(_claims(ctx, now, limits))
    report.update(_unfinalized_runs(ctx, now, limits))
    report["parked_stages_woken"] = stage_slots.sweep(ctx, now, limits.scan_limit)
    report.update(dead_letter_backlog(ctx, now, limits))
    report["expired_documents_purged"] = ctx.state.purge_expired(expires_in(0, now))  # SQLite; Firestore: its TTL
    if report.get("dead_letters_unresolved"):
        log.warning("dead-letter backlog: %d message(s) need an operator", report["dead_letters_unresolved"])
    return report


def _unfinalized_runs(ctx: Context, now: datetime, limits: WatchdogLimits) -> dict[str, int]:
    """Terminal runs whose finalisation (history rows, run event, quota slot) was cut short by a crash."""
    redone = 0
    for _, run in ctx.state.list("runs", [Filter("finalized", "==", False)], limit=limits.scan_limit):
        if not RunRecord.from_doc(run).is_terminal:
            continue
        with _run_scope(run):
            try:
                finalize_run(ctx, run, list_stages(ctx.state, str(run["run_id"])), now=now)
            except TransientError as exc:  # a live finaliser holds the lease: the next pass looks again
                log.info("finalisation in progress elsewhere: %s", exc)
                continue
        redone += 1
    return {"runs_finalized": redone}


@contextlib.contextmanager
def _run_scope(run: Doc, stage_id: str | None = None) -> Iterator[None]:
    """Log lines carry the run's ids; the span joins the run's own trace."""
    with (
        logs.log_context(run_id=run["run_id"], tenant_id=run["tenant_id"], stage_id=stage_id),
        observability.run_span("watchdog", run, **{"cdp.stage_id": stage_id}),
    ):
        yield


# ------------------------------------------------------------------------------------------------ RUNNING runs
def _running_runs(ctx: Context, now: datetime, limits: WatchdogLimits) -> dict[str, int]:
    counts = {"timed_out": 0, "redispatched": 0, "finished": 0, "dag_repaired": 0}
    for _, run in ctx.state.list("runs", [Filter("status", "==", RunStatus.RUNNING)], limit=limits.scan_limit):
        with _run_scope(run):
            stages = list_stages(ctx.state, run["run_id"])
            if RunRecord.from_doc(run).past_deadline(now):
                _time_out(ctx, run, stages)
                counts["timed_out"] += 1
                continue
            by_id = {str(s["stage_id"]): s for s in stages}
            if any(_undecided(s, by_id, now, limits) for s in stages):
                # A delivery died between its stage's end and recording it in a dependant, and was never redelivered
                # (e.g. dead-lettered): record every ended stage again (idempotent), which decides what was missed.
                log.warning("stage(s) whose dependencies all ended were never dispatched or skipped: repairing")
                advance(ctx, run, actor="maintenance")
                counts["dag_repaired"] += 1
                stages = list_stages(ctx.state, run["run_id"])
                by_id = {str(s["stage_id"]): s for s in stages}
            stuck = [
                s["stage_id"]
                for s in stages
                if _lost(s, now)
                or (
                    _stalled(run, s, by_id, now, limits)
                    and not stage_slots.is_parked(ctx, run["run_id"], s["stage_id"])
                )
            ]
            if stuck:
                log.warning("re-dispatching %d stage(s) nobody is working on: %s", len(stuck), ", ".join(stuck))
                publish_stage_tasks(ctx.bus, run, stuck)
                counts["redispatched"] += len(stuck)
            if stages and all(is_terminal(str(s["status"])) for s in stages):
                finish_run(ctx, run, stages)
                counts["finished"] += 1
    return counts


def _lost(doc: Doc, now: datetime) -> bool:
    """RUNNING past its lease, or a job whose chain of re-checks broke (shared/runs/stage_jobs.py)."""
    stage = StageRecord.from_doc(doc)
    if stage.status == StageStatus.RUNNING and stage.job_id and stage.polled_at:
        return stage.poll_stale(now, stage_jobs.STALE_AFTER_S)
    return stage.lease_expired(now)


def _undecided(stage: Doc, by_id: dict[str, Doc], now: datetime, limits: WatchdogLimits) -> bool:
    """QUEUED, not dispatched, every dependency ended `stalled_dispatch_after` ago or more."""
    if stage["status"] != StageStatus.QUEUED or stage.get("dispatched_by") or not stage.get("depends_on"):
        return False
    deps = [by_id.get(d) for d in stage["depends_on"]]
    if any(d is None or not is_terminal(str(d["status"])) for d in deps):
        return False
    ended = max(str(d.get("ended_at") or "") for d in deps if d is not None)
    return bool(ended) and now - parse_iso(ended) > limits.stalled_dispatch_after


def _stalled(run: Doc, stage: Doc, by_id: dict[str, Doc], now: datetime, limits: WatchdogLimits) -> bool:
    """Dispatched (all dependencies ended) yet untouched for `stalled_dispatch_after` since it became ready."""
    if stage["status"] != StageStatus.QUEUED or not stage.get("dispatched_by"):
        return False
    if StageRecord.from_doc(stage).in_backoff(now):
        return False
    ready_since = [str(by_id[d].get("ended_at") or "") for d in stage.get("depends_on") or [] if d in by_id]
    touched = max([stage.get("updated_at") or "", *ready_since]) or run.get("started_at")
    return isinstance(touched, str) and bool(touched) and now - parse_iso(touched) > limits.stalled_dispatch_after


def _time_out(ctx: Context, run: Doc, stages: list[Doc]) -> None:
    log.error("run passed its deadline %s: timing out", run["deadline_at"])
    for stage in stages:
        if not is_terminal(str(stage["status"])):
            transition(
                ctx.state,
                stage_path(run["run_id"], stage["stage_id"]),
                TransitionRequest(
                    "stage", StageStatus.TIMED_OUT, fields={"error": "run deadline passed", "lease_until": None}
                ),
            )
    stages = list_stages(ctx.state, run["run_id"])
    if stages:
        finish_run(ctx, run, stages)  # TIMED_OUT (or FAILED if a stage had failed): finalize releases the slot
        return
    moved = transition_run(ctx.state, run["run_id"], RunStatus.TIMED_OUT, error="run deadline passed")
    if moved.applied or (is_terminal(moved.status) and not moved.doc.get("finalized")):
        finalize_run(ctx, moved.doc, [])


# ------------------------------------------------------------------------------------------------ QUEUED runs
def _queued_runs(ctx: Context, now: datetime, limits: WatchdogLimits) -> dict[str, int]:
    counts = {"requeued": 0, "never_started": 0}
    for _, run in ctx.state.list("runs", [Filter("status", "==", RunStatus.QUEUED)], limit=limits.scan_limit):
        age = now - parse_iso(run["created_at"])
        if age <= limits.queued_republish_after:
            continue
        with _run_scope(run):
            if age > limits.queued_give_up_after:
                error = f"not started within {limits.queued_give_up_after} (re-published {run.get('requeued', 0)}x)"
                moved = transition(
                    ctx.state,
                    run_path(run["run_id"]),
                    TransitionRequest(
                        "run", RunStatus.FAILED, only_from=frozenset({RunStatus.QUEUED}), fields={"error": error}
                    ),
                )
                if moved.applied:
                    log.error("run never started: %s", error)
                    finalize_run(ctx, moved.doc, [])
                    counts["never_started"] += 1
                continue
            _republish_request(ctx, run)
            set_fields_if(
                ctx.state,
                run_path(run["run_id"]),
                {"requeued": int(run.get("requeued", 0)) + 1},
                lambda d: d.get("status") == RunStatus.QUEUED,
            )
            counts["requeued"] += 1
    return counts


def _republish_request(ctx: Context, run: Doc) -> None:
    log.warning("run still QUEUED %s after creation: re-publishing its request", run["created_at"])
    message = RunRequest(
        run_id=run["run_id"],
        tenant_id=run["tenant_id"],
        pipeline_id=run["pipeline_id"],
        parameters=dict(run.get("parameters") or {}),
        trigger=Trigger.model_validate(run.get("trigger") or {}),
        requested_at=parse_iso(run["created_at"]),
    )
    attributes = {"tenant_id": run["tenant_id"], "run_id": run["run_id"], "pipeline_id": run["pipeline_id"]}
    attributes["kind"] = "run.requested"
    ctx.bus.publish(
        topics.RUN_REQUESTS, [OutboundMessage(message.to_bytes(), observability.with_trace_context(attributes))]
    )


# ------------------------------------------------------------------------------------------------ claims
def _claims(ctx: Context, now: datetime, limits: WatchdogLimits) -> dict[str, int]:
    """Claims are `claims/{run}:{stage}:{attempt}` with `at`; only old ones are looked at."""
    counts = {"orphaned_claims": 0, "claims_cleaned": 0}
    cutoff = iso(now - limits.orphan_claim_after)
    for claim_id, _claim in ctx.state.list("claims", [Filter("at", "<", cutoff)], limit=limits.scan_limit):
        run_id, _, rest = claim_id.partition(":")
        stage_id, _, attempt_text = rest.rpartition(":")
        run = ctx.state.get(run_path(run_id))
        if run is None or is_terminal(str(run["status"])):
            ctx.state.delete(f"claims/{claim_id}")  # nothing can deliver to a finished run's stages any more
            counts["claims_cleaned"] += 1
            continue
        stage = ctx.state.get(stage_path(run_id, stage_id))
        if stage is None or not attempt_text.isdigit():
            continue
        if stage["status"] == StageStatus.QUEUED and int(stage.get("attempt", 0)) < int(attempt_text):
            with _run_scope(run, stage_id):
                log.warning("attempt %s was claimed but never started: releasing the claim", attempt_text)
                ctx.state.delete(f"claims/{claim_id}")
                publish_stage_tasks(ctx.bus, run, [stage_id])
            counts["orphaned_claims"] += 1
    return counts


# ------------------------------------------------------------------------------------------------ dead letters
def dead_letter_id(received: ReceivedMessage) -> str:
    if received.message_id:
        return received.message_id
    digest = hashlib.sha256(received.data + repr(sorted(received.attributes.items())).encode()).hexdigest()
    return f"sha-{digest[:32]}"


def record_dead_letter(ctx: Context, received: ReceivedMessage, outcome: str) -> None:
    """Keep one document per dead letter (a redelivery of the same one finds it), for the backlog report."""
    attrs = received.attributes
    ctx.state.create(
        f"dead_letters/{dead_letter_id(received)}",
        {
            "received_at": iso(utc_now()),
            "source_subscription": attrs.get("CloudPubSubDeadLetterSourceSubscription"),
            "source_function": attrs.get("cdp_source_function"),
            "kind": attrs.get("kind"),
            "run_id": attrs.get("run_id"),
            "tenant_id": attrs.get("tenant_id"),
            "reason": attrs.get("cdp_dead_letter_reason")
            or f"{attrs.get('CloudPubSubDeadLetterSourceDeliveryCount', '?')} failed deliveries",
            "outcome": outcome,
            "resolved": outcome != "logged",
            EXPIRE_AT: expires_in(ctx.settings.notification_retention_days),  # Firestore TTL (shared.ports.state)
        },
    )


def dead_letter_backlog(ctx: Context, now: datetime, limits: WatchdogLimits) -> dict[str, int]:
    """Dead letters of the last window, and those the maintenance function could not act on (an operator's)."""
    since = iso(now - limits.dead_letter_window)
    recent = ctx.state.list("dead_letters", [Filter("received_at", ">=", since)], limit=limits.scan_limit)
    unresolved = [doc for _, doc in recent if not doc.get("resolved")]
    for doc in unresolved[:5]:
        log.warning(
            "unresolved dead letter from %s: %s",
            doc.get("source_subscription") or doc.get("source_function") or "?",
            doc.get("reason"),
            extra={"fields": {"dead_letter_kind": doc.get("kind")}},
        )
    return {"dead_letters_recent": len(recent), "dead_letters_unresolved": len(unresolved)}


def summary(report: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in report.items() if v) or "nothing to do"
