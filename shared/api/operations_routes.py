"""Operator routes (platform admin credential): the dead-letter queue, and offboarding a tenant.

The logic is in shared/runs/dead_letters.py and shared/lifecycle/offboarding.py, shared with `cloudact dead-letters`
and `cloudact tenants offboard`; every change is audited with the caller's X-User-ID.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.api.base import ApiRequest, ApiResponse, IntQuery, PatternQuery, Route, validate_body
from shared.lifecycle.offboarding import offboard_tenant
from shared.runs import dead_letters
from shared.runtime.context import Context
from shared.tenancy.tenants import TENANT_ID

_ID = r"^[A-Za-z0-9_\-.]{1,100}$"


class DeadLetterSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(pattern=_ID)]] | None = Field(
        default=None, min_length=1, max_length=dead_letters.MAX_DEAD_LETTERS
    )
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> DeadLetterSelection:
        if (self.ids is None) == (not self.all):
            raise ValueError("give either ids or all=true")
        return self

    def selected(self) -> list[str] | None:
        return None if self.all else list(self.ids or [])


class OffboardBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: str | None = Field(
        default=None,
        max_length=50,
        description="Repeat the tenant id to delete its datasets and secrets; without it nothing is deleted.",
    )


DEAD_LETTERS_TENANT = PatternQuery("tenant_id", "Only this tenant's.", pattern=TENANT_ID.pattern, meaning="a tenant id")
DEAD_LETTERS_LIMIT = IntQuery("limit", default=100, low=1, high=dead_letters.MAX_DEAD_LETTERS)
ACTOR = "admin"
"""Who acts on these routes: the platform admin credential (X-User-ID says which person, for the audit)."""


def list_dead_letters(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    tenant_id, limit = DEAD_LETTERS_TENANT.read(req.query), DEAD_LETTERS_LIMIT.read(req.query)
    queue = dead_letters.dead_letter_queue(ctx)
    found = dead_letters.list_dead_letters(ctx, queue, tenant_id, limit)
    return ApiResponse(200, {"dead_letters": found, "count": len(found)})


def show_dead_letter(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    queue = dead_letters.dead_letter_queue(ctx)
    letter = dead_letters.find_dead_letter(queue, params["dead_letter_id"])
    return ApiResponse(200, dead_letters.describe(ctx, letter, with_message=True))


def replay_dead_letters(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    body: DeadLetterSelection = validate_body(DeadLetterSelection, req.json_body)
    queue = dead_letters.dead_letter_queue(ctx)
    outcomes = dead_letters.replay(ctx, queue, ctx.bus, body.selected(), ACTOR, req.user_id)
    return ApiResponse(200, {"outcomes": outcomes, "count": len(outcomes)})


def purge_dead_letters(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    body: DeadLetterSelection = validate_body(DeadLetterSelection, req.json_body)
    queue = dead_letters.dead_letter_queue(ctx)
    outcomes = dead_letters.purge(ctx, queue, body.selected(), ACTOR, req.user_id)
    return ApiResponse(200, {"outcomes": outcomes, "count": len(outcomes)})


def offboard(ctx: Context, req: ApiRequest, params: dict[str, str]) -> ApiResponse:
    body: OffboardBody = validate_body(OffboardBody, req.json_body)
    return ApiResponse(200, offboard_tenant(ctx, params["tenant_id"], body.confirm, ACTOR, req.user_id))


_D = "/api/v1/admin/dead-letters"
_A = "/api/v1/admin/tenants"
OPERATIONS_ROUTES: list[Route] = [
    Route("GET", _D, list_dead_letters, "admin",
          "Dead letters in the queue (oldest first) with their run/stage, reason and where the run stands; "
          "consumes nothing", tag="operations",
          query=(DEAD_LETTERS_TENANT, DEAD_LETTERS_LIMIT)),
    Route("GET", f"{_D}/{{dead_letter_id}}", show_dead_letter, "admin",
          "One dead letter with its attributes and decoded message", errors=(404,), tag="operations"),
    Route("POST", f"{_D}/replay", replay_dead_letters, "admin",
          "Replay dead letters (ids or all): republished to their topic, or their FAILED run resumed once; acked "
          "after; audited", body=DeadLetterSelection, errors=(404,), tag="operations"),
    Route("POST", f"{_D}/purge", purge_dead_letters, "admin",
          "Drop dead letters for good (ids or all); audited", body=DeadLetterSelection, errors=(404,),
          tag="operations"),
    Route("DELETE", f"{_A}/{{tenant_id}}", offboard, "admin",
          "Offboard a tenant: revoke its keys, stop its runs and schedules; with confirm=<tenant_id> also delete its "
          "datasets and secrets (idempotent)", body=OffboardBody, errors=(404,), tag="admin"),
    Route("POST", f"{_A}/{{tenant_id}}/offboard", offboard, "admin",
          "Offboard a tenant (same as DELETE on the tenant)", body=OffboardBody, errors=(404,), tag="admin"),
]  # fmt: skip
