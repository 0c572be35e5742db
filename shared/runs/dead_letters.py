"""An operator's dead-letter commands: list, show, replay and purge what sits in the dead-letter queue.

They coexist with the maintenance function (recovery.py), which gets its own copy of every dead letter as it happens
and ends what cannot go on (a dead stage task fails its stage and run, so no run stays RUNNING). The queue keeps a
second copy until an operator acts, typically after fixing the bug that dead-lettered it. Replay is safe to repeat:
- a message of a run still active or already SUCCEEDED goes back to its original topic as it was: the stage worker's
  claims and guarded transitions turn a finished stage's task into nothing, and every other function is idempotent;
- a stage task or run request whose run ended FAILED/TIMED_OUT (maintenance ended it) cannot re-open that run
  (terminal statuses are final): it resumes it instead as one re-run, keyed by the failed run, so every dead letter
  of that run and every later replay find the same re-run, whose SUCCEEDED stages are carried over.
The dead letter is acked only after its replay was accepted; replays and purges are audited.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from shared import logs
from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage
from shared.contracts.messages import Trigger
from shared.contracts.state_paths import run_path, stage_path
from shared.contracts.states import RunStatus
from shared.errors import ClientError, NotFound, TerminalError
from shared.ports.bus import DeadLetter, DeadLetterQueue, MessageBus
from shared.runtime.context import Context
from shared.tenancy.audit import record_audit

log = logs.get_logger(__name__)
MAX_DEAD_LETTERS = 1000
"""One command looks at most at this many dead letters (oldest first); repeat after acting on them."""
RESUMABLE_RUN_STATUSES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT})
_TOPIC_OF_KIND = {
    "stage.task": topics.STAGE_TASKS,
    "run.requested": topics.RUN_REQUESTS,
    "status.event": topics.RUN_EVENTS,
    "schedule.tick": topics.SCHEDULE_TICKS,
    "maintenance.tick": topics.MAINTENANCE_TICKS,
}
_TOPIC_OF_SUBSCRIPTION = {topics.subscription_name(t): t for t in topics.SUBSCRIBERS}
# What dead-lettering added: stripped on replay, so the message is the original again (and maintenance does not take
# a replayed maintenance tick for a dead letter).
_DEAD_LETTER_ATTRIBUTE_PREFIXES = ("CloudPubSubDeadLetter", "cdp_dead_letter_", "cdp_source_")


def dead_letter_queue(ctx: Context) -> DeadLetterQueue:
    bus = ctx.bus
    if not isinstance(bus, DeadLetterQueue):
        raise TerminalError(f"the {ctx.settings.bus} bus keeps no dead-letter queue")
    return bus


def _payload(letter: DeadLetter) -> dict[str, Any] | None:
    try:
        payload = json.loads(letter.data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def source_topic(letter: DeadLetter) -> str | None:
    """The topic the message was first published to: said by our own dead-lettering, by Pub/Sub's source
    subscription (`<topic>--<function>`, maybe a full path), or by the message kind."""
    attrs = letter.attributes
    if attrs.get("cdp_source_topic") in topics.ALL_TOPICS:
        return attrs["cdp_source_topic"]
    subscription = attrs.get("CloudPubSubDeadLetterSourceSubscription", "").rsplit("/", 1)[-1]
    if subscription in _TOPIC_OF_SUBSCRIPTION:
        return _TOPIC_OF_SUBSCRIPTION[subscription]
    payload = _payload(letter) or {}
    return _TOPIC_OF_KIND.get(str(payload.get("kind") or attrs.get("kind")))


def describe(ctx: Context, letter: DeadLetter, with_message: bool = False) -> dict[str, Any]:
    """What it is (kind, tenant, run, stage), why it died, and where its run/stage stand now."""
    attrs, payload = letter.attributes, _payload(letter) or {}
    count = attrs.get("CloudPubSubDeadLetterSourceDeliveryCount", "")
    subscription = attrs.get("CloudPubSubDeadLetterSourceSubscription", "").rsplit("/", 1)[-1] or None
    run_id = _text(payload.get("run_id")) or _text(attrs.get("run_id"))
    stage_id = _text(payload.get("stage_id")) or _text(attrs.get("stage_id"))
    out: dict[str, Any] = {
        "dead_letter_id": letter.dead_letter_id,
        "dead_lettered_at": letter.publish_time,
        "kind": _text(payload.get("kind")) or _text(attrs.get("kind")) or ("undecodable" if not payload else None),
        "tenant_id": _text(payload.get("tenant_id")) or _text(attrs.get("tenant_id")),
        "pipeline_id": _text(payload.get("pipeline_id")) or _text(attrs.get("pipeline_id")),
        "run_id": run_id,
        "stage_id": stage_id,
        "source_topic": source_topic(letter),
        "source_subscription": subscription or attrs.get("cdp_source_function"),
        "delivery_count": int(count) if count.isdigit() else None,
        "reason": attrs.get("cdp_dead_letter_reason") or f"{count or '?'} failed deliveries",
        "run_status": None,
        "stage_status": None,
        "last_error": None,
    }
    run = ctx.state.get(run_path(run_id)) if run_id else None
    if run is not None:
        out["run_status"] = run.get("status")
        out["last_error"] = run.get("error")
    stage = ctx.state.get(stage_path(run_id, stage_id)) if run_id and stage_id else None
    if stage is not None:
        out["stage_status"] = stage.get("status")
        out["last_error"] = stage.get("last_error") or stage.get("error") or out["last_error"]
    if with_message:
        out["attributes"] = dict(attrs)
        out["message"] = payload or letter.data.decode("utf-8", "replace")[:10_000]
    return out


def list_dead_letters(
    ctx: Context, queue: DeadLetterQueue, tenant_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    letters = queue.peek_dead_letters(MAX_DEAD_LETTERS)
    described = [describe(ctx, letter) for letter in letters]
    return [d for d in described if tenant_id is None or d["tenant_id"] == tenant_id][:limit]


def find_dead_letter(queue: DeadLetterQueue, dead_letter_id: str) -> DeadLetter:
    for letter in queue.peek_dead_letters(MAX_DEAD_LETTERS):
        if letter.dead_letter_id == dead_letter_id:
            return letter
    raise NotFound(f"no dead letter {dead_letter_id!r} in the queue", {"field": "dead_letter_id"})


def _selected(queue: DeadLetterQueue, ids: Sequence[str] | None) -> list[DeadLetter]:
    """Every queued dead letter (ids None), or exactly the named ones: an unknown id is a 404 before any is touched."""
    letters = queue.peek_dead_letters(MAX_DEAD_LETTERS)
    if ids is None:
        return letters
    by_id = {letter.dead_letter_id: letter for letter in letters}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise NotFound(f"no dead letter {missing[0]!r} in the queue", {"field": "dead_letter_id", "missing": missing})
    return [by_id[i] for i in dict.fromkeys(ids)]


@dataclass(frozen=True)
class Outcome:
    dead_letter_id: str
    action: str
    """republished | resumed | skipped | purged"""
    detail: str
    topic: str | None = None
    run_id: str | None = None


def replay(
    ctx: Context, queue: DeadLetterQueue, bus: MessageBus, ids: Sequence[str] | None, actor: str, user_id: str | None
) -> list[dict[str, Any]]:
    """Replay the named dead letters (all of them with ids None); each is acked once its replay is accepted."""
    outcomes = []
    for letter in _selected(queue, ids):
        outcome = _replay_one(ctx, letter, bus, actor, user_id)
        if outcome.action != "skipped":
            queue.ack_dead_letters([letter.dead_letter_id])
            info = describe(ctx, letter)
            record_audit(ctx, "dead_letter.replayed", info["tenant_id"], actor, user_id, asdict(outcome))
        outcomes.append(asdict(outcome))
    return outcomes


def _replay_one(ctx: Context, letter: DeadLetter, bus: MessageBus, actor: str, user_id: str | None) -> Outcome:
    topic = source_topic(letter)
    if topic is None or topic == topics.DEAD_LETTERS:
        return Outcome(letter.dead_letter_id, "skipped", "its original topic is unknown: purge it once understood")
    info = describe(ctx, letter)
    if info["kind"] == "undecodable":  # published again it would only be dead-lettered again: no code can read it
        return Outcome(letter.dead_letter_id, "skipped", "it cannot be decoded: purge it once understood", topic)
    if info["kind"] in ("stage.task", "run.requested") and info["run_status"] in RESUMABLE_RUN_STATUSES:
        try:
            return _resume_run(ctx, letter, info, actor, user_id)
        except ClientError as exc:
            return Outcome(letter.dead_letter_id, "skipped", f"run not resumed: {exc.message}", run_id=info["run_id"])
    attributes = {k: v for k, v in letter.attributes.items() if not k.startswith(_DEAD_LETTER_ATTRIBUTE_PREFIXES)} | {
        "cdp_replayed_from": letter.dead_letter_id
    }
    bus.publish(topic, [OutboundMessage(letter.data, attributes)])
    log.warning("dead letter %s republished to %s", letter.dead_letter_id, topic)
    return Outcome(letter.dead_letter_id, "republished", f"published again to {topic}", topic, info["run_id"])


def _resume_run(ctx: Context, letter: DeadLetter, info: dict[str, Any], actor: str, user_id: str | None) -> Outcome:
    """One re-run of the run maintenance ended, however many of its dead letters are replayed, however often."""
    from shared.runs.admission import admit_run
    from shared.runs.operations import publish_run_request  # the API's own enqueue: one way to publish a run request

    source = ctx.state.get(run_path(info["run_id"])) or {}
    trigger = Trigger(type="rerun", user_id=user_id or actor)
    created, _ = admit_run(
        ctx,
        str(source["tenant_id"]),
        str(source["pipeline_id"]),
        dict(source.get("parameters") or {}),
        trigger,
        f"dead-letter-replay:{source['run_id']}",
        extra_fields={"resume_from_run": source["run_id"]},
    )
    publish_run_request(ctx, created, trigger, retryable=True)
    detail = (
        f"run {source['run_id']} is {source['status']}: resumed as run {created.run_id}"
        if created.created
        else f"run {source['run_id']} was already resumed as run {created.run_id}"
    )
    return Outcome(letter.dead_letter_id, "resumed", detail, topics.RUN_REQUESTS, created.run_id)


def purge(
    ctx: Context, queue: DeadLetterQueue, ids: Sequence[str] | None, actor: str, user_id: str | None
) -> list[dict[str, Any]]:
    """Drop the named dead letters (all with ids None) for good; each drop is audited with what it was."""
    outcomes = []
    for letter in _selected(queue, ids):
        info = describe(ctx, letter)
        if not queue.ack_dead_letters([letter.dead_letter_id]):
            continue  # another operator acted on it in the meantime
        details = {k: info[k] for k in ("dead_letter_id", "kind", "run_id", "stage_id", "source_topic", "reason")}
        record_audit(ctx, "dead_letter.purged", info["tenant_id"], actor, user_id, details)
        outcomes.append(asdict(Outcome(letter.dead_letter_id, "purged", info["reason"], run_id=info["run_id"])))
    return outcomes
