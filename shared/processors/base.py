"""The small interface every step type implements, and what a step gets to work with."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from shared.errors import TerminalError
from shared.pipelines.reserved import dataset_name_problem, reserved_table_problem
from shared.pipelines.spec import StepSpec
from shared.ports.warehouse import StepJobs, Warehouse


@dataclass(frozen=True)
class StepContext:
    tenant_id: str
    pipeline_id: str
    run_id: str
    stage_id: str
    attempt: int
    run_date: date
    parameters: dict[str, Any]
    variables: dict[str, Any]
    warehouse: Warehouse
    deadline_monotonic: float
    """time.monotonic() value after which the step must give up (its timeout)."""

    def __post_init__(self) -> None:
        # Every processor reaches the warehouse through `ctx.warehouse`: handing it the step-labelled handle here
        # gives every BigQuery job of the step its labels and deterministic job id (Warehouse.for_step), whichever
        # processor starts it. The handle shares the given one's running work, so the engine's cancel still stops it.
        jobs = StepJobs(
            self.tenant_id, self.pipeline_id, self.run_id, self.stage_id, self.attempt, _bytes_cap(self.tenant_id)
        )
        object.__setattr__(self, "warehouse", self.warehouse.for_step(jobs))

    def seconds_left(self) -> float:
        return self.deadline_monotonic - time.monotonic()

    def dataset(self, name: str, where: str = "destination.dataset", *, writing: bool = True) -> str:
        """A tenant's dataset: every table a step touches lives in `{tenant_id}_{name}`. The one seam every processor
        goes through with the name it will really use (placeholders filled in), so the name is refused here, naming
        `where` (the key it came from), when it is not a plain name or, for a write, when it is a reserved dataset in
        any case (`Metadata`)."""
        problem = dataset_name_problem(name, writing=writing)
        if problem:
            raise TerminalError(f"{where}: {problem}")
        return f"{self.tenant_id}_{name}"

    def destination_table(self, dataset: str, table: str, where: str = "destination.table") -> str:
        """`{dataset}.{table}` for a write, with the table name as the step will really use it (placeholders filled
        in) refused when it is one of the platform's own tables (`_cloudact...`, any case)."""
        problem = reserved_table_problem(table)
        if problem:
            raise TerminalError(f"{where}: {problem}")
        return f"{dataset}.{table}"


def _bytes_cap(tenant_id: str) -> Callable[[], int]:
    """The tenant's per-query bytes cap, looked up only when a billing warehouse starts a query (DuckDB never asks)."""

    def cap() -> int:
        from shared.runtime.context import get_context
        from shared.tenancy.tenants import query_bytes_cap

        return query_bytes_cap(get_context(), tenant_id)

    return cap


@dataclass(frozen=True)
class StepResult:
    rows_in: int | None = None
    rows_out: int | None = None
    bytes_processed: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Processor(Protocol):
    """Runs one step. Raise TransientError to be retried, TerminalError to fail the step at once."""

    def run(self, step: StepSpec, ctx: StepContext) -> StepResult: ...
