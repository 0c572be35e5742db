"""The small interface every step type implements, and what a step gets to work with."""

from __future__ import annotations

import time
from collections.abc import Callable, Set
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from shared.errors import TerminalError
from shared.pipelines import tenant_folders
from shared.pipelines.reserved import dataset_name_problem, reserved_table_problem
from shared.pipelines.spec import StepSpec
from shared.ports.state import StateStore
from shared.ports.warehouse import StepJobs, Warehouse
from shared.runtime.context import Context
from shared.runtime.settings import Settings


@dataclass(frozen=True)
class StepContext:
    """Everything a processor works with, handed in by the engine: the run's identity and values, the tenant's
    warehouse, the deployment's settings and the tenant's secrets. Processors never reach for the process-wide
    `get_context()`: what a step may touch is what it is given here."""

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
    runtime: Context = field(repr=False)
    """The process's adapters the engine runs the step with. Processors use `settings`, `state` and `secret()`;
    only notify steps pass it whole, to the notification delivery of shared/notify (which sends through it)."""

    def __post_init__(self) -> None:
        # Every processor reaches the warehouse through `ctx.warehouse`: handing it the step-labelled handle here
        # gives every BigQuery job of the step its labels and deterministic job id (Warehouse.for_step), whichever
        # processor starts it. The handle shares the given one's running work, so the engine's cancel still stops it.
        jobs = StepJobs(
            self.tenant_id,
            self.pipeline_id,
            self.run_id,
            self.stage_id,
            self.attempt,
            _bytes_cap(self.runtime, self.tenant_id),
        )
        object.__setattr__(self, "warehouse", self.warehouse.for_step(jobs))

    @property
    def settings(self) -> Settings:
        """The deployment's settings (project, config folder, runtime)."""
        return self.runtime.settings

    @property
    def state(self) -> StateStore:
        """The platform's state store, for processors that keep documents of their own (debug.job's jobs) or read
        the run's stages (notify steps)."""
        return self.runtime.state

    def other_tenants(self) -> Set[str]:
        """Every other tenant with a folder in the config folder: their dataset names are off limits to this step
        (the one cached listing of shared.pipelines.tenant_folders, as the loader's)."""
        return tenant_folders.other_tenants(self.settings.config_dir, self.tenant_id)

    def secret(self, name: str) -> str:
        """The tenant's secret `name` (set with `cloudact secrets set`), as text; a TerminalError when it is unset.
        Bound to the step's tenant: a step cannot read another tenant's secrets."""
        from shared.secrets.store import get_secret

        return get_secret(self.runtime, self.tenant_id, name).decode("utf-8")

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


def _bytes_cap(runtime: Context, tenant_id: str) -> Callable[[], int]:
    """The tenant's per-query bytes cap, looked up only when a billing warehouse starts a query (DuckDB never asks)."""

    def cap() -> int:
        from shared.tenancy.tenants import query_bytes_cap

        return query_bytes_cap(runtime, tenant_id)

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
