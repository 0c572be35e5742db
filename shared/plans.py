"""Plans: the limits a tenant buys. A tenant document names a plan and may override single limits (`limits`).

Why overrides live on the tenant and not in new plans: an operator raising one customer's concurrency for a migration
week should not mint a plan nobody else has; the override is visible on the tenant and audited like any admin change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from shared.errors import BadRequest


@dataclass(frozen=True)
class PipelineLimits:
    """How big a tenant's pipelines and run parameters may be: every cap bounds the work one file or one request can
    cause (parsing, validating, planning, storing the run snapshot), so a tenant cannot slow the platform down for
    others with a 56 MB file or a step that 5,000 others depend on."""

    pipeline_bytes: int
    """Size of one pipeline YAML file, checked before it is read."""
    steps: int
    """Steps in one pipeline."""
    fan_out: int
    """Steps that may depend on one step (the stages one step's end fans out to). Below `steps`, or it would bound
    nothing: a wide fan-out is what multiplies the stage messages and state writes one step's end causes."""
    fan_in: int
    """Entries in one step's depends_on."""
    parameters: int
    """Parameters a pipeline declares, and values one run may give."""
    parameter_bytes: int
    """One parameter value, as UTF-8 text (strings) or JSON (anything else)."""


@dataclass(frozen=True)
class Plan:
    name: str
    runs_per_day: int
    """Runs admitted per UTC day (API, scheduled, backfill and re-runs alike)."""
    runs_per_month: int
    """Runs admitted per UTC calendar month."""
    concurrent_runs: int
    """Runs admitted and not yet ended (QUEUED or RUNNING) at any moment."""
    requests_per_minute: int
    """Authenticated API requests per minute (fixed one-minute windows)."""
    concurrent_stages: int
    """Stages of the tenant's runs executing at once (a running job included); the others wait parked, in order
    (shared/runs/stage_slots.py). Below the stage worker's max instances (Terraform `max_instances`, 20 by default)
    so that one tenant's fan-out leaves instances to the others: raise both together."""
    pipelines: PipelineLimits
    """Caps on pipeline files and run parameters (shared.pipelines.bounds)."""
    bytes_billed_per_query: int
    """BigQuery bytes one query may bill (its job's `maximum_bytes_billed`): a step over it fails with an error
    naming the bytes it needed, before BigQuery reads anything. At on-demand pricing ($6.25 per TiB in the US,
    https://cloud.google.com/bigquery/pricing#on_demand_pricing) 10 GiB is about $0.06 and 1 TiB $6.25 per query.
    Not applied by the embedded DuckDB warehouse (a local query bills nothing)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_FREE_PIPELINES = PipelineLimits(128 << 10, steps=20, fan_out=10, fan_in=10, parameters=20, parameter_bytes=1024)
_STARTER_PIPELINES = PipelineLimits(256 << 10, steps=50, fan_out=25, fan_in=25, parameters=50, parameter_bytes=4096)
_PRO_PIPELINES = PipelineLimits(512 << 10, steps=200, fan_out=100, fan_in=100, parameters=100, parameter_bytes=4096)
_ENTERPRISE_PIPELINES = PipelineLimits(
    1 << 20, steps=2000, fan_out=1000, fan_in=1000, parameters=200, parameter_bytes=4096
)  # 4,096: the longest string parameter any run takes (shared.pipelines.parameters.MAX_STRING_LENGTH)

PLANS: dict[str, Plan] = {
    "free": Plan(
        "free",
        runs_per_day=20,
        runs_per_month=300,
        concurrent_runs=2,
        requests_per_minute=60,
        concurrent_stages=2,
        pipelines=_FREE_PIPELINES,
        bytes_billed_per_query=10 << 30,
    ),
    "starter": Plan(
        "starter",
        runs_per_day=200,
        runs_per_month=4000,
        concurrent_runs=10,
        requests_per_minute=600,
        concurrent_stages=4,
        pipelines=_STARTER_PIPELINES,
        bytes_billed_per_query=100 << 30,
    ),
    "professional": Plan(
        "professional",
        runs_per_day=2000,
        runs_per_month=50000,
        concurrent_runs=50,
        requests_per_minute=3000,
        concurrent_stages=8,
        pipelines=_PRO_PIPELINES,
        bytes_billed_per_query=500 << 30,
    ),
    "enterprise": Plan(
        "enterprise",
        runs_per_day=20000,
        runs_per_month=500000,
        concurrent_runs=200,
        requests_per_minute=12000,
        concurrent_stages=16,
        pipelines=_ENTERPRISE_PIPELINES,
        bytes_billed_per_query=1 << 40,
    ),
}
DEFAULT_PLAN = "starter"
"""The plan of a tenant whose tenant.yaml names none (the embedded runtime onboards it on this plan too)."""
LIMIT_FIELDS = (
    "runs_per_day",
    "runs_per_month",
    "concurrent_runs",
    "concurrent_stages",
    "requests_per_minute",
    "bytes_billed_per_query",
)
MAX_LIMIT = 10_000_000
MAX_BYTES_BILLED = 1 << 50
"""The largest `bytes_billed_per_query` override (1 PiB): counts are capped at MAX_LIMIT, bytes are not counts."""


def get_plan(name: str) -> Plan:
    plan = PLANS.get(name)
    if plan is None:
        raise BadRequest(f"unknown plan {name!r}; plans: {', '.join(PLANS)}", {"field": "plan"})
    return plan


def check_limit_overrides(limits: dict[str, Any]) -> dict[str, int]:
    """Validate `{limit_name: int}` overrides; 400 naming the offending field otherwise."""
    out: dict[str, int] = {}
    for key, value in limits.items():
        if key not in LIMIT_FIELDS:
            raise BadRequest(f"unknown limit {key!r}; limits: {', '.join(LIMIT_FIELDS)}", {"field": f"limits.{key}"})
        top = MAX_BYTES_BILLED if key == "bytes_billed_per_query" else MAX_LIMIT
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise BadRequest(f"limits.{key} must be an integer in [0, {top}]", {"field": f"limits.{key}"})
        out[key] = value
    return out


def effective_plan(tenant: dict[str, Any]) -> Plan:
    """The tenant's plan with its per-tenant overrides applied."""
    plan = PLANS.get(str(tenant.get("plan")), PLANS["free"])
    overrides: dict[str, Any] = {k: int(v) for k, v in (tenant.get("limits") or {}).items() if k in LIMIT_FIELDS}
    return replace(plan, **overrides) if overrides else plan
