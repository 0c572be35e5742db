"""The HTTP API's routes: thin handlers over shared/ (admission, run store). Errors are ClientErrors -> JSON 4xx."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.contracts import topics
from shared.contracts.envelope import OutboundMessage
from shared.contracts.messages import RunRequest, Trigger
from shared.errors import BadRequest, ServiceUnavailable, TransientError
from shared.pipelines.spec import IDENTIFIER
from shared.runs.machine import parse_iso, transition_run
from shared.runs.store import get_run, list_runs, list_stages, public_run
from shared.runtime.context import Context
from shared.tenancy.admission import admit_run


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json_body: Any = None


@dataclass
class ApiResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Context, ApiRequest, dict[str, str]], ApiResponse]


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pipeline_id: str = Field(pattern=IDENTIFIER.pattern, max_length=63)
    parameters: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


def _validate(model: type[BaseModel], body: Any) -> Any:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", {"field": "<body>"})
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "<body>"
        raise BadRequest(
            f"{name}: {first['msg']}",
            {
                "field": name,
                "errors": [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()],
            },
        ) from exc


def execute_pipeline(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    body: ExecuteBody = _validate(ExecuteBody, req.json_body)
    tenant_id = params["tenant_id"]
    trigger = Trigger(type="api", user_id=req.headers.get("x-user-id") or None)
    created, _spec = admit_run(ctx, tenant_id, body.pipeline_id, body.parameters, trigger, body.idempotency_key)
    run = created.doc
    if run["status"] == "QUEUED":  # (re)publish: run_starter ignores a request for a run that already started
        message = RunRequest(
            run_id=created.run_id,
            tenant_id=tenant_id,
            pipeline_id=body.pipeline_id,
            parameters=body.parameters,
            trigger=trigger,
            requested_at=parse_iso(run["created_at"]),
        )
        try:
            ctx.bus.publish(
                topics.RUN_REQUESTS,
                [
                    OutboundMessage(
                        message.to_bytes(),
                        {
                            "tenant_id": tenant_id,
                            "run_id": created.run_id,
                            "pipeline_id": body.pipeline_id,
                            "kind": "run.requested",
                        },
                    )
                ],
            )
        except TransientError as exc:
            if not body.idempotency_key:  # nobody can retry this run: end it rather than leave it QUEUED forever
                transition_run(ctx.state, created.run_id, "FAILED", error=f"could not enqueue: {exc}")
            raise ServiceUnavailable("could not enqueue the run; retry with the same idempotency_key", 2) from exc
    status = 202 if created.created else 200
    return ApiResponse(
        status,
        {"run_id": created.run_id, "status": run["status"], "created": created.created},
        {"Location": f"/api/v1/tenants/{tenant_id}/metadata/executions/{created.run_id}"},
    )


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be an integer in [{low}, {high}]", {"field": name})
    return int(raw)


def list_executions(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    status = req.query.get("status")
    if status is not None and status not in ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"):
        raise BadRequest(f"unknown status {status!r}", {"field": "status"})
    pipeline_id = req.query.get("pipeline_id")
    if pipeline_id is not None and not IDENTIFIER.match(pipeline_id):
        raise BadRequest("pipeline_id is not a valid identifier", {"field": "pipeline_id"})
    limit = _int_param(req.query, "limit", 50, 1, 500)
    runs = list_runs(ctx.state, params["tenant_id"], status, pipeline_id, limit)
    return ApiResponse(200, {"executions": [public_run(r) for r in runs], "count": len(runs)})


def get_execution(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    run = get_run(ctx.state, params["tenant_id"], params["run_id"])
    return ApiResponse(200, public_run(run, list_stages(ctx.state, run["run_id"])))


def health(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    return ApiResponse(200, {"status": "ok", "runtime": ctx.settings.runtime})


_SEG = r"(?P<{}>[A-Za-z0-9_\-]{{1,80}})"
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(r"^/api/v1/health$"), health),
    ("POST", re.compile(rf"^/api/v1/tenants/{_SEG.format('tenant_id')}/pipelines/execute$"), execute_pipeline),
    ("GET", re.compile(rf"^/api/v1/tenants/{_SEG.format('tenant_id')}/metadata/executions$"), list_executions),
    (
        "GET",
        re.compile(rf"^/api/v1/tenants/{_SEG.format('tenant_id')}/metadata/executions/{_SEG.format('run_id')}$"),
        get_execution,
    ),
]
