"""Ending a run: its terminal status from its stages, then its side effects, the alert first.

"Every run ends in exactly one terminal state, with its alert and history, even after crashes" decides the order:
1. the terminal run event (what the notifier alerts on) is published on every finalisation attempt until `alerted`
   is recorded; its event id is deterministic, so the notifier drops repeats. It never waits for the warehouse;
2. the run's quota slot is given back (idempotent), and a backfill's held-back dates may start;
3. the history rows are written under a short lease, because two writers' replace-by-run-id must not interleave.
   When the warehouse fails, or another live delivery holds the lease, the run stays `finalized: false` (with
   `history_error`), the message is acked, and the watchdog's next pass writes the rows: on GCP every few minutes
   from Cloud Scheduler, on the embedded runtime from its maintenance ticker. However long the warehouse is down,
   nothing is lost and nothing is redelivered in a loop to the dead-letter topic.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from shared import logs
from shared import metadata_tables as metadata
from shared.clock import iso, parse_iso, utc_now
from shared.contracts.messages import EventType
from shared.contracts.state_paths import run_path
from shared.contracts.states import FAILURES, RunStatus, is_terminal
from shared.error_text import without_local_paths
from shared.ports.state import set_fields_if
from shared.runs.events import publish_status_event
from shared.runs.machine import transition_run
from shared.runs.plan import derive_run_status
from shared.runs.records import RunRecord
from shared.runs.store import list_stages
from shared.runtime.context import Context

log = logs.get_logger(__name__)
FINALIZE_LEASE_S = 30.0
"""Long enough for the history write; a writer that died lets it lapse and the watchdog writes the rows."""
RUN_EVENT_TYPES: dict[RunStatus, EventType] = {
    RunStatus.SUCCEEDED: "run.succeeded",
    RunStatus.FAILED: "run.failed",
    RunStatus.CANCELLED: "run.cancelled",
    RunStatus.TIMED_OUT: "run.timed_out",
}


def finish_run(ctx: Context, run: dict[str, Any], stages: list[dict[str, Any]]) -> None:
    """Move a run whose stages have all ended to its terminal status (once), then finalise it."""
    status, error = derive_run_status(stages)
    failed = next((s["stage_id"] for s in stages if s["status"] in FAILURES), None)
    result = transition_run(ctx.state, run["run_id"], status, error=error, failed_stage=failed)
    if result.applied or is_terminal(result.status):
        finalize_if_needed(ctx, result.doc, stages)


def finalize_if_needed(ctx: Context, run: dict[str, Any], stages: list[dict[str, Any]] | None = None) -> None:
    """Finalise a terminal run that is not finalised yet (its stages are listed when not given, by the delivery that
    takes the history lease: see finalize_run)."""
    if run and RunRecord.from_doc(run).finalize_pending:
        finalize_run(ctx, run, stages)


def finalize_run(
    ctx: Context, run: dict[str, Any], stages: list[dict[str, Any]] | None, now: datetime | None = None
) -> bool:
    """Alert, slot, history (see the module docstring). True when the run is finalised after the call.

    `stages` None: listed only once this delivery holds the history lease. A late copy of a stage task that finds its
    run ended helps finalise it, and while another delivery is writing the history it has no use for them (a wide
    run's stages are its biggest read)."""
    record = RunRecord.from_doc(run)
    path = run_path(record.run_id)
    if not record.alerted:
        event = RUN_EVENT_TYPES[record.status]
        publish_status_event(ctx.bus, run, event, record.status, error=record.error, duration_ms=record.duration_ms)
        set_fields_if(ctx.state, path, {"alerted": True}, lambda d: not d.get("alerted"))
    from shared.runs.admission import release_run_slot  # tenancy sits above runs; imported where it is used

    release_run_slot(ctx, run)
    if (record.trigger or {}).get("type") == "backfill":
        _start_next_backfill_dates(ctx, run)
    return _write_history(ctx, run, stages, now or utc_now())


def _start_next_backfill_dates(ctx: Context, run: dict[str, Any]) -> None:
    """A backfill holds dates back past its max_active_runs: this run's end lets the next ones start now. Best
    effort: what fails here is started by the maintenance tick (shared.runs.backfill.advance_waiting)."""
    from shared.runs.backfill import advance_for_run  # scheduling sits above runs

    try:
        advance_for_run(ctx, run)
    except Exception:
        log.exception("backfill of run %s: next dates not started (the maintenance tick will)", run["run_id"])


def _write_history(ctx: Context, run: dict[str, Any], stages: list[dict[str, Any]] | None, now: datetime) -> bool:
    path = run_path(run["run_id"])
    holder = secrets.token_hex(6)

    def lease_free(doc: dict[str, Any]) -> bool:
        until = doc.get("finalizing_until")
        return not doc.get("finalized") and (not until or parse_iso(until) <= now)

    lease = {"finalizing_until": iso(now + timedelta(seconds=FINALIZE_LEASE_S)), "finalizing_by": holder}
    if not set_fields_if(ctx.state, path, lease, lease_free):
        done = bool((ctx.state.get(path) or {}).get("finalized"))
        if not done:
            log.info("another delivery is writing this run's history; the watchdog checks it later")
        return done
    try:
        metadata.record_run(ctx, run, stages if stages is not None else list_stages(ctx.state, str(run["run_id"])))
    except Exception as exc:  # the warehouse is down or locked: the alert went out; the watchdog retries the rows
        error = without_local_paths(f"{type(exc).__name__}: {exc}")[:500]
        log.warning("run history not written yet (the watchdog retries): %s", error)
        set_fields_if(
            ctx.state,
            path,
            {"finalizing_until": None, "history_error": error},
            lambda d: d.get("finalizing_by") == holder and not d.get("finalized"),
        )
        return False
    set_fields_if(
        ctx.state,
        path,
        {"finalized": True, "finalizing_until": None, "history_error": None},
        lambda d: not d.get("finalized"),
    )
    log.info("run %s in %s ms", run["status"], run.get("duration_ms"))
    return True
