"""Run documents: creation with idempotency keys, reads and listings. Status changes go through machine.transition."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.clock import iso, utc_now
from shared.contracts.messages import Trigger
from shared.contracts.state_paths import run_path, spec_path, stages_collection
from shared.contracts.states import RunStatus, StageStatus
from shared.errors import NotFound
from shared.observability import current_traceparent
from shared.pipelines.spec import StepSpec
from shared.ports.state import EXPIRE_AT, Doc, Filter, StateStore, expires_in

JOIN_GROUP_SIZE = 32
"""A stage with more dependencies than this collects their ends in groups of this many (shared/runs/dag.py), so no
single write ever carries more than this many entries however wide the join."""


def join_groups(dependencies: int) -> int:
    """How many entries a stage's `parents_done` reaches: its dependencies, or their groups for a wide join."""
    return dependencies if dependencies <= JOIN_GROUP_SIZE else -(-dependencies // JOIN_GROUP_SIZE)


DEFAULT_RUN_RETENTION_DAYS = 400.0
"""Settings.run_retention_days' default, for callers without settings (tests, tools)."""


def new_run_id() -> str:
    """Time-ordered and unguessable: `run_<ms since epoch, hex><10 random hex>`."""
    return f"run_{int(time.time() * 1000):011x}{secrets.token_hex(5)}"


def idempotency_path(tenant_id: str, key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"idempotency/{tenant_id}:{digest}"


@dataclass(frozen=True)
class CreatedRun:
    run_id: str
    created: bool
    """False when the idempotency key already named a run: no second run was made."""
    doc: Doc


def create_run(
    store: StateStore,
    tenant_id: str,
    pipeline_id: str,
    parameters: dict[str, Any],
    trigger: Trigger,
    idempotency_key: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
    retention_days: float = DEFAULT_RUN_RETENTION_DAYS,
) -> CreatedRun:
    """Record a QUEUED run. With an idempotency key, a repeat returns the first run instead of making another.

    The key document is created first (create() fails if it exists), then the run document; a crash between the
    two leaves a key pointing at a missing run, which the next call with the same key repairs by creating it.
    """
    now = now or utc_now()
    run_id = run_id or new_run_id()
    # Firestore TTL deletes the run, its key, its stages and its snapshot at the same time (shared.ports.state)
    expire_at = expires_in(retention_days, now)
    if idempotency_key:
        key_path = idempotency_path(tenant_id, idempotency_key)
        key_doc = {"run_id": run_id, "tenant_id": tenant_id, "created_at": iso(now), EXPIRE_AT: expire_at}
        if not store.create(key_path, key_doc):
            existing = store.get(key_path) or {}
            run_id = str(existing.get("run_id", run_id))
            existing_run = store.get(run_path(run_id))
            if existing_run is not None:
                return CreatedRun(run_id, False, existing_run)
    doc: Doc = {
        "run_id": run_id,
        "tenant_id": tenant_id,
        "pipeline_id": pipeline_id,
        "status": str(RunStatus.QUEUED),
        "parameters": parameters,
        "trigger": trigger.model_dump(mode="json", exclude_none=True),
        "idempotency_key": idempotency_key,
        "created_at": iso(now),
        "updated_at": iso(now),
        "run_date": str(parameters.get("run_date") or (trigger.scheduled_for or now).date().isoformat()),
        "finalized": False,
        "traceparent": current_traceparent(),
        EXPIRE_AT: expire_at,
    }
    if not store.create(run_path(run_id), doc):
        return CreatedRun(run_id, False, store.get(run_path(run_id)) or doc)
    return CreatedRun(run_id, True, doc)


def get_run(store: StateStore, tenant_id: str, run_id: str) -> Doc:
    """A tenant's run; another tenant's run id is reported exactly like a missing one."""
    doc = store.get(run_path(run_id)) if run_id.startswith("run_") else None
    if doc is None or doc.get("tenant_id") != tenant_id:
        raise NotFound(f"tenant {tenant_id!r} has no run {run_id!r}", {"field": "run_id"})
    return doc


SNAPSHOT_CHUNK_CHARS = 900_000
"""Characters of compressed snapshot per document: under Firestore's 1 MiB per document with room for the rest."""


def snapshot_documents(run: Doc, spec: dict[str, Any]) -> list[tuple[str, Doc]]:
    """The documents a run's pipeline snapshot is stored in: its JSON, zlib-compressed and base64-encoded (one string
    field: no per-step fields to count or index), in chunks of SNAPSHOT_CHUNK_CHARS. The biggest pipeline a plan
    allows (1 MiB of YAML, 2,000 steps) is about 2 MB of JSON; compressed, one or two documents."""
    packed = base64.b64encode(zlib.compress(json.dumps(spec, separators=(",", ":")).encode(), 6)).decode()
    parts = [packed[i : i + SNAPSHOT_CHUNK_CHARS] for i in range(0, len(packed), SNAPSHOT_CHUNK_CHARS)] or [""]
    base = spec_path(str(run["run_id"]))
    expiry = _expiry_of(run)
    first: Doc = {"run_id": run["run_id"], "chunks": len(parts), "spec_z": parts[0], **expiry}
    return [(base, first)] + [(f"{base}.{i}", {"spec_z": part, **expiry}) for i, part in enumerate(parts[1:], 1)]


def save_run_spec(store: StateStore, run: Doc, spec: dict[str, Any]) -> None:
    """Record a starting run's pipeline snapshot once (a redelivered start finds it there and keeps it). The first
    document is written last, so a reader that finds it finds every chunk."""
    docs = snapshot_documents(run, spec)
    for path, doc in reversed(docs):
        store.create(path, doc)


def load_run_spec(store: StateStore, run: Doc) -> dict[str, Any]:
    """A started run's pipeline snapshot ({} before it started). Runs recorded before the snapshot had its own
    document carry it in the run document."""
    if isinstance(run.get("spec"), dict):
        return dict(run["spec"])
    base = spec_path(str(run["run_id"]))
    first = store.get(base)
    if not first:
        return {}
    if isinstance(first.get("spec"), dict):  # stored uncompressed by an earlier version
        return dict(first["spec"])
    parts = [str(first.get("spec_z") or "")]
    for i in range(1, int(first.get("chunks") or 1)):
        parts.append(str((store.get(f"{base}.{i}") or {}).get("spec_z") or ""))
    data: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode("".join(parts))))
    return data


def _expiry_of(run: Doc) -> Doc:
    """The run's own `expire_at`, for the documents that belong to it (none for a run recorded without one)."""
    return {EXPIRE_AT: run[EXPIRE_AT]} if run.get(EXPIRE_AT) else {}


def list_stages(store: StateStore, run_id: str) -> list[Doc]:
    return [doc for _, doc in store.list(stages_collection(run_id))]


def list_runs(
    store: StateStore,
    tenant_id: str | None = None,
    status: str | None = None,
    pipeline_id: str | None = None,
    limit: int = 50,
    created_after: str | None = None,
    created_before: str | None = None,
) -> list[Doc]:
    """Newest first. `created_after` (inclusive) / `created_before` (exclusive) are ISO timestamps as `iso()` writes
    them (UTC, microseconds), so they compare as strings; a range on the ordering field needs no extra index."""
    filters = [Filter("tenant_id", "==", tenant_id)] if tenant_id else []
    if status:
        filters.append(Filter("status", "==", status))
    if pipeline_id:
        filters.append(Filter("pipeline_id", "==", pipeline_id))
    if created_after:
        filters.append(Filter("created_at", ">=", created_after))
    if created_before:
        filters.append(Filter("created_at", "<", created_before))
    return [doc for _, doc in store.list("runs", filters, order_by="created_at", descending=True, limit=limit)]


def public_run(doc: Doc, stages: list[Doc] | None = None) -> Doc:
    """The API/CLI view of a run: the stored spec snapshot is internal."""
    out = {k: v for k, v in doc.items() if k not in ("spec", "finalized")}
    if stages is not None:
        order = {sid: i for i, sid in enumerate(doc.get("stage_order") or [])}
        out["stages"] = sorted(stages, key=lambda s: order.get(str(s.get("stage_id")), len(order)))
    return out


def new_stage_doc(
    run: dict[str, Any], step: StepSpec, now: str, parents_done: dict[str, str] | None = None
) -> dict[str, Any]:
    """A QUEUED stage. `parents_done` (dependency -> its terminal status) is filled by each dependency as it ends, so
    the last one to end sees the stage ready without reading its siblings; a re-run starts it with the carried ones."""
    return {
        "stage_id": step.step_id,
        "run_id": run["run_id"],
        "tenant_id": run["tenant_id"],
        "pipeline_id": run["pipeline_id"],
        "ps_type": step.ps_type,
        "depends_on": list(step.depends_on),
        "parents_total": join_groups(len(step.depends_on)),
        "parents_done": dict(parents_done or {}),
        "status": str(StageStatus.QUEUED),
        "attempt": 0,
        "max_attempts": step.retries.max_attempts,
        "attempts": [],
        "created_at": now,
        **_expiry_of(run),
    }


def carried_stages(store: StateStore, source_run_id: Any, now: str) -> dict[str, dict[str, Any]]:
    """A re-run (`resume_from_run`): the source run's SUCCEEDED stages start SUCCEEDED here and are not run again."""
    if not source_run_id:
        return {}
    return {
        str(s["stage_id"]): {
            "status": str(StageStatus.SUCCEEDED),
            "carried_from": source_run_id,
            **{k: s.get(k) for k in ("rows_in", "rows_out", "bytes_processed", "details")},
            "ended_at": now,
            "duration_ms": 0,
        }
        for s in list_stages(store, str(source_run_id))
        if s.get("status") == StageStatus.SUCCEEDED
    }
