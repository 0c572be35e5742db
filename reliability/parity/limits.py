"""Limits audit: the biggest pipeline and run the plans allow, against the service limits GCP enforces and the
emulators do not.

- Pub/Sub: a message (data + attributes) is at most 10 MB (https://cloud.google.com/pubsub/quotas#resource_limits).
- Firestore: a document is at most 1 MiB, with at most 20,000 fields (nested map fields included) and 40,000 index
  entries (https://cloud.google.com/firestore/quotas#limits); sizes computed as
  https://cloud.google.com/firestore/docs/storage-size describes.
- Cloud Functions gen2: an event-driven function runs at most 540 s (https://cloud.google.com/functions/quotas#time_limits);
  a push subscription's ack deadline is at most 600 s (https://cloud.google.com/pubsub/docs/push#ack_deadline).
- BigQuery: 1,500 table operations (load jobs among them) per table per day
  (https://cloud.google.com/bigquery/quotas#standard_tables); streaming inserts and DML have no per-table daily job
  cap.

The documents and messages are built with the code's own builders (shared.runs.store, shared.contracts.messages,
shared.catalog.loader.snapshot, shared.runs.attempts) from a synthetic pipeline at the largest plan's caps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reliability.parity import terraform as tf

PUBSUB_MESSAGE_LIMIT = 10_000_000
FIRESTORE_DOC_LIMIT = 1_048_576
FIRESTORE_FIELD_LIMIT = 20_000
FIRESTORE_INDEX_ENTRY_LIMIT = 40_000
EVENT_FUNCTION_MAX_S = 540
PUSH_ACK_DEADLINE_MAX_S = 600
TABLE_OPERATIONS_PER_DAY = 1_500
ERROR_TEXT_BYTES = 64 * 1024
"""An attempt's error text is not capped by the code; a BigQuery error can echo the statement, capped at 64 KiB
(shared/pipelines/sql_check: query text). Assumed as the largest error an attempt records."""
WORST_CHAR = "\x01"
"""A parameter character JSON escapes to 6 bytes (`\\u0001`): the largest message a parameter value can make."""


def firestore_size(value: Any) -> int:
    """Storage size of a value (https://cloud.google.com/firestore/docs/storage-size)."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, (int, float)):
        return 8
    if isinstance(value, str):
        return len(value.encode()) + 1
    if isinstance(value, list):
        return sum(firestore_size(v) for v in value)
    if isinstance(value, Mapping):
        return sum(len(str(k).encode()) + 1 + firestore_size(v) for k, v in value.items())
    return len(str(value).encode()) + 1


def document_size(path: str, doc: Mapping[str, Any]) -> int:
    name = sum(len(seg.encode()) + 1 for seg in path.split("/")) + 16
    return name + firestore_size(doc) + 32


def field_count(value: Any) -> int:
    """Fields, nested map fields included (maps inside arrays counted too: the conservative reading)."""
    if isinstance(value, Mapping):
        return sum(1 + field_count(v) for v in value.values())
    if isinstance(value, list):
        return sum(field_count(v) for v in value)
    return 0


def index_entries(doc: Mapping[str, Any], exempt: set[str]) -> int:
    """Automatic single-field entries: 2 per non-array field (asc, desc), 1 per distinct array element; none under an
    exempted top-level field."""

    def entries(value: Any) -> int:
        if isinstance(value, Mapping):
            return 2 + sum(entries(v) for v in value.values())
        if isinstance(value, list):
            return len({json.dumps(v, sort_keys=True, default=str) for v in value})
        return 2

    return sum(entries(v) for k, v in doc.items() if k not in exempt)


@dataclass
class Figure:
    name: str
    value: float
    limit: float
    unit: str = "bytes"
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.value <= self.limit

    def text(self) -> str:
        mark = "ok" if self.ok else "OVER"
        note = f" ({self.note})" if self.note else ""
        return f"{self.name} {self.value:,.0f} / {self.limit:,.0f} {self.unit} {mark}{note}"


@dataclass
class LimitsReport:
    figures: list[Figure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.figures)

    def lines(self) -> list[str]:
        over = [f for f in self.figures if not f.ok]
        head = f"limits: {len(self.figures)} figures, " + ("all within limits" if not over else f"{len(over)} OVER")
        return [f"  {'OVER ' if not f.ok else ''}{f.text()}" for f in self.figures] + [head]


def biggest_plan() -> Any:
    from shared.plans import PLANS

    return max(PLANS.values(), key=lambda p: (p.pipelines.pipeline_bytes, p.pipelines.steps))


def max_pipeline_yaml(plan: Any) -> str:
    """`plan.pipelines.steps` chained debug.noop steps, padded to just under `pipeline_bytes`."""
    steps = plan.pipelines.steps
    head = "pipeline_id: biggest\nsteps:\n"
    body = [
        f"  - step_id: s{i:04d}\n    ps_type: debug.noop\n" + (f"    depends_on: [s{i - 1:04d}]\n" if i else "")
        for i in range(steps)
    ]
    base = head + "".join(body)
    room = plan.pipelines.pipeline_bytes - len(base.encode()) - steps * 24
    pad = max(0, room // steps)
    padded = [b + f"    config: {{pad: '{'x' * pad}'}}\n" for b in body]
    return head + "".join(padded)


def audit(root: tf.Module, audit_dir: Path | None = None) -> LimitsReport:
    import yaml

    from bench.local_stack import HTTP_FUNCTIONS
    from shared.catalog.loader import snapshot
    from shared.contracts.messages import RunRequest, StageTask, StatusEvent, Trigger
    from shared.pipelines.spec import PipelineSpec, StepSpec
    from shared.processors.jobs import IN_INVOCATION_MAX_MINUTES
    from shared.runs.attempts import MAX_ERROR_CHARS, attempt_record, capped
    from shared.runs.stage_jobs import POLL_WINDOW_S
    from shared.runs.store import join_groups, new_stage_doc, snapshot_documents

    plan = biggest_plan()
    report = LimitsReport()
    now = datetime(2026, 12, 6, tzinfo=UTC)
    limits = plan.pipelines
    params = {f"p{i:03d}": WORST_CHAR * limits.parameter_bytes for i in range(limits.parameters)}
    run_id, tenant_id, pipeline_id = "r" * 32, "t" * 50, "p" * 64
    ids = {"run_id": run_id, "tenant_id": tenant_id, "pipeline_id": pipeline_id}
    request = RunRequest(
        run_id=run_id,
        tenant_id=tenant_id,
        pipeline_id=pipeline_id,
        parameters=params,
        trigger=Trigger(type="api", user_id="u" * 256),
        requested_at=now,
    )
    report.figures.append(
        Figure(
            f"pubsub run.requested ({plan.name}: {limits.parameters} params x {limits.parameter_bytes} B)",
            len(request.to_bytes()),
            PUBSUB_MESSAGE_LIMIT,
        )
    )
    task = StageTask(run_id=run_id, tenant_id=tenant_id, pipeline_id=pipeline_id, stage_id="s" * 64)
    report.figures.append(Figure("pubsub stage.task", len(task.to_bytes()), PUBSUB_MESSAGE_LIMIT))
    event = StatusEvent(
        event_id="e" * 64,
        type="stage.failed",
        run_id=run_id,
        tenant_id=tenant_id,
        pipeline_id=pipeline_id,
        stage_id="s" * 64,
        status="FAILED",
        error="x" * ERROR_TEXT_BYTES,
        occurred_at=now,
    )
    report.figures.append(Figure("pubsub status.event (64 KiB error)", len(event.to_bytes()), PUBSUB_MESSAGE_LIMIT))

    text = max_pipeline_yaml(plan)
    spec = PipelineSpec.model_validate(yaml.safe_load(text))
    run_doc: dict[str, Any] = {
        **ids,
        "status": "RUNNING",
        "parameters": params,
        "trigger": {"type": "api", "user_id": "u" * 256},
        "idempotency_key": "k" * 200,
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
        "run_date": "2026-12-06",
        "finalized": False,
        "traceparent": "00-" + "0" * 32 + "-" + "0" * 16 + "-01",
        "stage_order": [s.step_id for s in spec.steps],
        "expire_at": now.isoformat(),
    }
    exempt = {f for c, f in _exemptions(root) if c == "runs"}
    label = f"{plan.name}: {limits.steps} steps, {len(text.encode()):,} B YAML, {limits.parameters} params"
    report.figures.append(
        Figure(f"firestore run doc ({label})", document_size("runs/" + "r" * 32, run_doc), FIRESTORE_DOC_LIMIT)
    )
    report.figures.append(Figure("firestore run doc fields", field_count(run_doc), FIRESTORE_FIELD_LIMIT, "fields"))
    report.figures.append(
        Figure(
            "firestore run doc index entries",
            index_entries(run_doc, exempt),
            FIRESTORE_INDEX_ENTRY_LIMIT,
            "entries",
            f"exempted: {sorted(exempt) or 'none'}",
        )
    )
    # The pipeline snapshot lives apart from the run document (shared/runs/store.py), compressed and chunked.
    snapshot_docs = snapshot_documents(run_doc, snapshot(spec))
    biggest = max(document_size(path, doc) for path, doc in snapshot_docs)
    report.figures.append(
        Figure(
            f"firestore run snapshot doc, largest of {len(snapshot_docs)}",
            biggest,
            FIRESTORE_DOC_LIMIT,
            note=f"{len(json.dumps(snapshot(spec))):,} B of JSON before compression",
        )
    )
    max_attempts = int(_le(StepSpec, "retries", default=20))
    step = spec.steps[-1]
    stage = new_stage_doc(run_doc, step, now.isoformat())
    stage["attempts"] = [
        attempt_record({**stage, "attempt": n}, "FAILED", "x" * ERROR_TEXT_BYTES, now)
        for n in range(1, max_attempts + 1)
    ]
    stage["last_error"] = capped("x" * ERROR_TEXT_BYTES)
    stage["error"] = capped("x" * ERROR_TEXT_BYTES)
    stage["parents_done"] = {f"#g{i}": "SUCCEEDED" for i in range(join_groups(limits.fan_in))}
    report.figures.append(
        Figure(
            f"firestore stage doc ({max_attempts} attempts, 64 KiB errors cut to {MAX_ERROR_CHARS:,} chars)",
            document_size("runs/r/stages/s", stage),
            FIRESTORE_DOC_LIMIT,
        )
    )

    # A step that is not a job runs inside one invocation: at most IN_INVOCATION_MAX_MINUTES (validation refuses
    # more, the engine caps the default); a job step's timeout bounds a chain of short invocations instead.
    in_invocation_s = IN_INVOCATION_MAX_MINUTES * 60
    job_max_s = float(_le(StepSpec, "timeout_minutes")) * 60
    for inst in tf.every_instance(root, "google_cloudfunctions2_function"):
        timeout = _number(inst.attrs["service_config"][0].get("timeout_seconds"))
        if timeout is None:
            continue
        if str(inst.key) not in HTTP_FUNCTIONS:
            report.figures.append(Figure(f"function {inst.key} timeout", timeout, EVENT_FUNCTION_MAX_S, "s"))
        if str(inst.key) == "stage_worker":
            report.figures.append(
                Figure(
                    "in-invocation step timeout max vs stage_worker timeout",
                    in_invocation_s,
                    timeout,
                    "s",
                    f"job steps may run {job_max_s:,.0f} s as rounds of {POLL_WINDOW_S:g} s",
                )
            )
    for inst in tf.every_instance(root, "google_pubsub_subscription"):
        ack = _number(inst.attrs["ack_deadline_seconds"]) if "ack_deadline_seconds" in inst.attrs else 10
        if ack is not None and "push_config" in inst.attrs:
            report.figures.append(Figure(f"push {inst.key} ack deadline", ack, PUSH_ACK_DEADLINE_MAX_S, "s"))
    report.figures.extend(_table_quota(audit_dir))
    return report


def _table_quota(audit_dir: Path | None) -> list[Figure]:
    """Load jobs per table per run (from the recording) x the plans' runs per day, for history tables."""
    from shared.plans import PLANS

    if audit_dir is None:
        return []
    loads: dict[str, int] = {}
    runs = 0  # run.requested messages published: one per admitted run
    for path in sorted(audit_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            dest = (record.get("job") or {}).get("destination")
            if (record.get("job") or {}).get("type") == "load" and dest and "_metadata." in dest:
                table = dest.split("_metadata.", 1)[1]
                loads[table] = loads.get(table, 0) + 1
            if str(record.get("method", "")).endswith("/Publish") and str(record.get("resource")).endswith(
                "cdp-run-requests"
            ):
                runs += record.get("function") != "pytest"
    if not loads:
        return [
            Figure(
                "bigquery history load jobs per run (none recorded: streaming/DML)",
                0,
                TABLE_OPERATIONS_PER_DAY,
                "jobs/day",
            )
        ]
    out = []
    per_run = max(loads.values()) / max(1, runs)
    for plan in PLANS.values():
        out.append(
            Figure(
                f"bigquery load jobs on one history table/day at {plan.name}'s {plan.runs_per_day:,} runs",
                per_run * plan.runs_per_day,
                TABLE_OPERATIONS_PER_DAY,
                "jobs",
                f"{per_run:.2f} per run recorded",
            )
        )
    return out


def _exemptions(root: tf.Module) -> set[tuple[str, str]]:
    from reliability.parity.indexes import exempted_fields

    return exempted_fields(root)[0]


def _le(model: Any, name: str, default: float | None = None) -> float:
    """The `le=` bound of a pydantic field (or of the same-named field of its nested model)."""
    info = model.model_fields[name]
    for meta in info.metadata:
        if getattr(meta, "le", None) is not None:
            return float(meta.le)
    annotation = info.annotation
    nested = getattr(annotation, "model_fields", None)
    if nested and "max_attempts" in nested:
        return _le(annotation, "max_attempts")
    if default is not None:
        return default
    raise ValueError(f"{model.__name__}.{name} has no upper bound")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
