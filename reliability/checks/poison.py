"""Poison messages on the embedded runtime (bus: 5 delivery attempts, then the dead-letter topic -> maintenance).

- undecodable bytes on each consumed topic: dead-lettered with a reason at the first delivery, never retried;
- a run.requested / a stage.task that fails on every delivery (an injected bug): dead-lettered after exactly the
  subscription's max attempts, the run ends FAILED and its run.failed event (what alerting acts on) is recorded;
- a stage whose worker dies on every attempt: its lease runs out each time, the stage is FAILED after the step's
  retries.max_attempts, the run FAILED and alerted;
- and the opposite: a transient failure whose retry backoff outlasts the bus's redeliveries is not poison: the retry
  must still run (the run SUCCEEDED).
"""

from __future__ import annotations

import threading
from typing import Any

from reliability.drill import embedded_drill
from reliability.faults import CrashPoint, FaultInjector, PoisonedSeam
from reliability.harness import Figure, Options, figure, info

NAME = "poison messages"
MAX_DELIVERIES = 5
GARBAGE = b"\xff\xfe this is not a message"


class DeadLetterInbox:
    """A second subscription on the dead-letter topic (like the emulator stack's `--inspect` pull subscription)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, message: Any) -> None:
        with self._lock:
            self.messages.append(message)

    def matching(self, **attributes: str) -> list[Any]:
        with self._lock:
            return [m for m in self.messages if all(m.attributes.get(k) == v for k, v in attributes.items())]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _alerted(drill: Any, run_id: str) -> bool:
    return any(e["type"] == "run.failed" for e in drill.events(run_id))


def run(options: Options) -> list[Figure]:
    import shared.runs.engine as engine
    import shared.runs.run_start as run_start
    from shared.contracts import topics
    from shared.contracts.envelope import OutboundMessage
    from shared.runtime.settings import Settings

    out: list[Figure] = []
    injector = FaultInjector()
    injector.install()
    try:
        with (
            embedded_drill(max_delivery_attempts=MAX_DELIVERIES, max_backoff_s=1.0) as drill,
            PoisonedSeam(run_start, "find_pipeline", lambda *a, **k: a[2] == "poison_start") as bad_start,
            PoisonedSeam(
                engine, "run_plan", lambda run, *a, **k: run.get("pipeline_id") == "poison_stage"
            ) as bad_stage,
        ):
            inbox = DeadLetterInbox()
            drill.bus.subscribe(topics.DEAD_LETTERS, inbox, "drill-dead-letter-inbox")
            # The slow one first: a worker that dies on every attempt waits out a lease per attempt (~1 min each).
            injector.plan(
                "crash-loop",
                CrashPoint("doomed dies on every attempt", "transition", "after", "RUNNING", "doomed"),
                times=99,
            )
            crash_loop = drill.start("crash_loop", key="crash-loop")
            nacked_before = drill.bus.stats.nacked
            consumed = [topics.RUN_REQUESTS, topics.STAGE_TASKS, topics.RUN_EVENTS]
            for topic in consumed:
                drill.bus.publish(topic, [OutboundMessage(GARBAGE, {"tenant_id": "relyco", "drill": "undecodable"})])
            patient = drill.start("retry_backoff", key="retry-backoff")
            start_run = drill.start("poison_start", key="poison-start")
            stage_run = drill.start("poison_stage", key="poison-stage")
            runs = drill.wait_terminal([start_run, stage_run, crash_loop, patient], 300)
            undecodable = inbox.matching(drill="undecodable")
            reasons = [m for m in undecodable if m.attributes.get("cdp_dead_letter_reason")]
            redelivered = [m for m in undecodable if m.attributes.get("CloudPubSubDeadLetterSourceDeliveryCount")]
            dead_start = inbox.matching(run_id=start_run)
            dead_stage = inbox.matching(run_id=stage_run, stage_id="a")
            alerts = {run_id: _alerted(drill, run_id) for run_id in runs}
            nacks_total = drill.bus.stats.nacked - nacked_before
            dropped = drill.bus.stats.dropped
    finally:
        injector.uninstall()

    def delivery_count(messages: list[Any]) -> str:
        counts = sorted({m.attributes.get("CloudPubSubDeadLetterSourceDeliveryCount", "?") for m in messages})
        return ",".join(counts) or "none"

    out.append(
        figure(
            NAME,
            "undecodable messages dead-lettered at their first delivery, with a reason",
            f"{len(reasons)}/{len(consumed)}",
            len(reasons) == len(consumed) and not redelivered,
            "3/3",
            "topics: run requests, stage tasks, run events",
        )
    )
    # A stage task that ran out of deliveries is re-dispatched (capacity throttling must never fail a stage) up to
    # Settings.stage_redispatches times; a task that keeps dying fails its stage after that many more cycles.
    cycles = {start_run: 1, stage_run: 1 + Settings().stage_redispatches}
    for label, run_id, dead, calls in (
        ("run.requested failing every delivery", start_run, dead_start, bad_start.calls),
        ("stage.task failing every delivery", stage_run, dead_stage, bad_stage.calls),
    ):
        run_doc = runs[run_id]
        ok = (
            delivery_count(dead) == str(MAX_DELIVERIES)
            and len(dead) == cycles[run_id]
            and calls == MAX_DELIVERIES * cycles[run_id]
            and run_doc["status"] == "FAILED"
            and alerts[run_id]
        )
        out.append(
            figure(
                NAME,
                f"{label}: dead-lettered after max attempts ({cycles[run_id]} cycle(s)), run FAILED, alert",
                f"{len(dead)} dead letter(s) after {delivery_count(dead)} deliveries ({calls} handled), "
                f"run {run_doc['status']}, alert {'yes' if alerts[run_id] else 'no'}",
                ok,
                f"{cycles[run_id]} after {MAX_DELIVERIES}, FAILED, yes",
                str(run_doc.get("error"))[:120],
            )
        )
    loop = runs[crash_loop]
    doomed = next(s for s in loop["stages"] if s["stage_id"] == "doomed")
    made = int(doomed.get("attempt") or 0)
    recorded = len(doomed.get("attempts") or [])
    out.append(
        figure(
            NAME,
            "worker dies on every attempt: stage FAILED after retries.max_attempts, run FAILED, alert",
            f"{doomed['status']} after attempt {made}, run {loop['status']}, alert {_yes(alerts[crash_loop])}",
            doomed["status"] == "FAILED" and made == 2 and loop["status"] == "FAILED" and alerts[crash_loop],
            "FAILED after attempt 2, run FAILED, alert yes",
            str(doomed.get("error"))[:120],
        )
    )
    out.append(
        figure(
            NAME,
            "worker dies on every attempt: lost attempts kept in the stage's history",
            f"{recorded}/{made}",
            recorded == made,
            f"{made}/{made}",
            "; ".join(
                f"{a.get('attempt')}: {a.get('status')} {a.get('error') or ''}".strip()
                for a in doomed.get("attempts") or []
            ),
        )
    )
    retried = runs[patient]
    flaky = retried["stages"][0]
    out.append(
        figure(
            NAME,
            "transient failure with a 15 s retry backoff: retried, not dead-lettered",
            f"run {retried['status']} after {len(flaky.get('attempts') or [])} attempts",
            retried["status"] == "SUCCEEDED",
            "run SUCCEEDED after 2 attempts",
            str(retried.get("error") or "")[:120],
        )
    )
    out.append(figure(NAME, "messages dropped with nowhere to go", dropped, dropped == 0, "0"))
    out.append(info(NAME, "nacks during the drill", nacks_total, "retries before dead-lettering, by design"))
    return out
