"""Advancing a run's DAG with O(1) state work per stage transition, whatever the fan-in or the length.

A stage that ends records its terminal status in each direct dependant's `parents_done` map with one compare-and-set
(a repeat finds itself there and changes nothing). The delivery whose record completes a dependant's map decides it
in that same write: it flags the dependant `dispatched_by` itself (then publishes its task) or skips it (then
records the skip in that stage's own dependants, and so on). No stage ever reads its siblings, so a 1,000-way join
costs 1,000 small writes, not a million reads. A wide join (more than JOIN_GROUP_SIZE dependencies) collects them in
group documents `runs/{run}/stages/{join}/arrivals/g{n}` of at most 32 each; the write that completes a group records
the group's outcome in the join (SUCCEEDED, FAILED if any failed or timed out, else SKIPPED: exactly what the trigger
rules ask), so no write ever carries more than 32 entries and parents ending together contend on their group only.

The run can only have ended when a sink (a stage nothing depends on) just ended; then one `limit 1` query asks
whether any stage is still QUEUED or RUNNING. Firestore queries are strongly consistent and every delivery records
its own end before asking, so the last of two sinks ending together always sees both ended.

A delivery that crashes part-way is redelivered (its stage already ended) and redoes the same records: each is
idempotent, and the dispatcher it had flagged republishes, because `dispatched_by` names it.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.state_paths import stage_path, stages_collection
from shared.contracts.states import ACTIVE, FAILURES, StageStatus, is_terminal
from shared.errors import TransientError
from shared.ports.state import EXPIRE_AT, Filter
from shared.runs import stage_slots
from shared.runs.finalize import finish_run
from shared.runs.machine import TransitionRequest, transition
from shared.runs.plan import RunPlan, run_plan, should_run
from shared.runs.store import JOIN_GROUP_SIZE, list_stages
from shared.runtime.context import Context

_CAS_RETRIES = 50
"""A join's document takes one write per parent; parents that end together retry their compare-and-set."""


def advance(ctx: Context, run: dict[str, Any], actor: str, finished: str | None = None) -> None:
    """After `finished` ended: record it in its dependants, start or skip the ready ones, end the run after a sink.

    Without `finished` (run start, maintenance, dead-letter recovery) every stage is listed once: roots are
    dispatched and every ended stage is recorded again in its dependants, which repairs a delivery lost part-way.
    """
    plan = run_plan(run, ctx.state)
    run_id = str(run["run_id"])
    ready: list[str] = []
    freed = False
    if finished is None:
        stages = list_stages(ctx.state, run_id)
        ended = [(str(s["stage_id"]), str(s["status"])) for s in stages if is_terminal(str(s["status"]))]
        roots = [
            str(s["stage_id"])
            for s in stages
            if s["status"] == StageStatus.QUEUED and not plan.steps[s["stage_id"]].depends_on
        ]
        ready.extend(sid for sid in roots if _flag_dispatch(ctx, run_id, sid, actor))
        sink_ended = _propagate(ctx, run_id, plan, actor, ended, ready, run.get(EXPIRE_AT)) or not stages
    else:
        current = ctx.state.get(stage_path(run_id, finished))
        if current is None or not is_terminal(str(current["status"])):
            return
        # Its slot first, so a dependant it makes ready can take it; a parked stage takes what is left.
        freed = stage_slots.release(ctx, run, finished)
        ended = [(finished, str(current["status"]))]
        sink_ended = _propagate(ctx, run_id, plan, actor, ended, ready, run.get(EXPIRE_AT))
    stage_slots.dispatch(ctx, run, ready, pump_after=freed)
    if sink_ended and not ctx.state.list(
        stages_collection(run_id), [Filter("status", "in", [str(s) for s in ACTIVE])], limit=1
    ):
        finish_run(ctx, run, list_stages(ctx.state, run_id))


def _propagate(
    ctx: Context,
    run_id: str,
    plan: RunPlan,
    actor: str,
    ended: list[tuple[str, str]],
    ready: list[str],
    expire_at: str | None = None,
) -> bool:
    """Record each ended stage in its dependants (cascading skips); append the stages to dispatch to `ready`.

    Returns whether a sink is among the ended stages (so the run may have ended)."""
    sink_ended = False
    work = list(ended)
    while work:
        parent, status = work.pop()
        if parent in plan.sinks:
            sink_ended = True
        for child in plan.children.get(parent, ()):
            arrival: tuple[str, str] | None = (parent, status)
            if child in plan.join_group:
                arrival = _record_in_group(ctx, run_id, plan, child, parent, status, expire_at)
            if arrival is None:  # its group is not complete yet
                continue
            doc = _record_parent(ctx, run_id, plan, child, *arrival, actor)
            if doc is None or len(doc.get("parents_done") or {}) < int(doc.get("parents_total", 0)):
                continue
            if doc["status"] == StageStatus.QUEUED and doc.get("skip"):
                moved = transition(
                    ctx.state,
                    stage_path(run_id, child),
                    TransitionRequest("stage", StageStatus.SKIPPED, only_from=frozenset({StageStatus.QUEUED})),
                )
                doc = moved.doc or {**doc, "status": moved.status}
            # ours or a crashed delivery's skip: its dependants learn it (idempotent)
            if doc["status"] == StageStatus.SKIPPED:
                work.append((child, StageStatus.SKIPPED))
            elif doc["status"] == StageStatus.QUEUED and doc.get("dispatched_by") == actor:
                ready.append(child)
    return sink_ended


def _record_parent(
    ctx: Context, run_id: str, plan: RunPlan, child: str, parent: str, status: str, actor: str
) -> dict[str, Any] | None:
    """Add `parent: status` to the child's `parents_done`; the write that completes it also decides the child.

    A child complete but undecided (a re-run's stage whose parents were all carried over) is decided here too."""
    path = stage_path(run_id, child)
    step = plan.steps[child]
    for _ in range(_CAS_RETRIES):
        current = ctx.state.get_versioned(path)
        if current is None:
            return None
        doc = current.data
        done = dict(doc.get("parents_done") or {})
        fields: dict[str, Any] = {}
        if parent not in done:
            done[parent] = status
            fields["parents_done"] = done
        complete = len(done) >= int(doc.get("parents_total", len(step.depends_on)))
        undecided = doc.get("dispatched_by") is None and not doc.get("skip")
        if complete and undecided and doc.get("status") == StageStatus.QUEUED:
            if should_run(step.trigger, list(done.values())):
                fields["dispatched_by"] = actor
            else:
                fields["skip"] = True
        if not fields:
            return doc
        if ctx.state.update_if(path, fields, current.version):
            return {**doc, **fields}
    raise TransientError(f"{path}: too much contention recording {parent}", retry_after_seconds=0.5)


def _record_in_group(
    ctx: Context, run_id: str, plan: RunPlan, child: str, parent: str, status: str, expire_at: str | None
) -> tuple[str, str] | None:
    """Add `parent: status` to its group of the wide join `child`; the group's key and outcome once it is complete
    (on every call from then on: the join's own record of it is idempotent), else None."""
    group = plan.join_group[child][parent]
    members = min(JOIN_GROUP_SIZE, len(plan.steps[child].depends_on) - group * JOIN_GROUP_SIZE)
    path = f"{stage_path(run_id, child)}/arrivals/g{group}"
    for _ in range(_CAS_RETRIES):
        current = ctx.state.get_versioned(path)
        if current is None:
            done = {parent: status}
            if not ctx.state.create(path, {"done": done, **({EXPIRE_AT: expire_at} if expire_at else {})}):
                continue  # created by another member meanwhile
        else:
            done = dict(current.data.get("done") or {})
            if parent not in done:
                done[parent] = status
                if not ctx.state.update_if(path, {"done": done}, current.version):
                    continue
        if len(done) < members:
            return None
        outcomes = set(done.values())
        if outcomes & FAILURES:
            return f"#g{group}", StageStatus.FAILED
        return f"#g{group}", StageStatus.SUCCEEDED if outcomes == {StageStatus.SUCCEEDED} else StageStatus.SKIPPED
    raise TransientError(f"{path}: too much contention recording {parent}", retry_after_seconds=0.5)


def _flag_dispatch(ctx: Context, run_id: str, stage_id: str, actor: str) -> bool:
    """A root stage is dispatched by whoever flags it first; that same actor republishes it on redelivery."""
    path = stage_path(run_id, stage_id)
    for _ in range(_CAS_RETRIES):
        current = ctx.state.get_versioned(path)
        if current is None or current.data.get("status") != StageStatus.QUEUED:
            return False
        owner = current.data.get("dispatched_by")
        if owner is not None:
            return bool(owner == actor)
        if ctx.state.update_if(path, {"dispatched_by": actor}, current.version):
            return True
    raise TransientError(f"{path}: too much contention dispatching", retry_after_seconds=0.5)
