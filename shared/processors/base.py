"""The small interface every step type implements, and what a step gets to work with."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from shared.errors import TerminalError
from shared.pipelines.reserved import dataset_name_problem, reserved_table_problem
from shared.pipelines.spec import StepSpec
from shared.ports.warehouse import Warehouse


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


@dataclass(frozen=True)
class StepResult:
    rows_in: int | None = None
    rows_out: int | None = None
    bytes_processed: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Processor(Protocol):
    """Runs one step. Raise TransientError to be retried, TerminalError to fail the step at once."""

    def run(self, step: StepSpec, ctx: StepContext) -> StepResult: ...
