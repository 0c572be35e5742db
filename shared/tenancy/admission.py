"""Admission: the one gate shared by the HTTP and scheduled paths, and the release of what it reserved.

This is the seam the tenancy issue fills in (plans, daily/monthly counts, concurrency slots, reserved atomically).
Today it admits any run of a tenant that has a folder in tenant_configs/ and a valid pipeline, and releases nothing.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.messages import Trigger
from shared.pipelines.loader import find_pipeline
from shared.pipelines.spec import PipelineSpec
from shared.runs.store import CreatedRun, create_run
from shared.runtime.context import Context


def admit_run(
    ctx: Context,
    tenant_id: str,
    pipeline_id: str,
    parameters: dict[str, Any],
    trigger: Trigger,
    idempotency_key: str | None = None,
) -> tuple[CreatedRun, PipelineSpec]:
    """Check the pipeline exists, then record a QUEUED run (once per idempotency key). Raises ClientError."""
    spec = find_pipeline(ctx.settings.config_dir, tenant_id, pipeline_id)
    created = create_run(ctx.state, tenant_id, pipeline_id, parameters, trigger, idempotency_key)
    return created, spec


def release_run_slot(ctx: Context, run: dict[str, Any]) -> None:
    """Called once a run is terminal (any terminal state). Idempotent. Nothing is reserved yet."""
