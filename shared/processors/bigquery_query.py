"""`bigquery.query`: ELT inside the warehouse. The data never passes through the function.

    source:      {query: "<one GoogleSQL SELECT>"}
    destination: {dataset, table, write_mode: append | truncate | merge, merge_keys, partition_field, cluster_by}

The table lands in `{tenant_id}_{dataset}`. `dataset`, `table` and the query may use `{name}` placeholders (tenant_id,
run_id, run_date as YYYYMMDD, project, parameters, variables) inside identifiers only; values reach the SQL as
`@name` query parameters (`@run_date`, `@run_id`, `@tenant_id`, `@pipeline_id`, every parameter and variable). The
query may read only the tenant's own datasets (sql_scope), checked when the YAML is validated and again here.

How a write happens, always as statements inside the warehouse. A truncate without partitioning or clustering is one
statement, `CREATE OR REPLACE TABLE dest AS <query>` (atomic; the table follows the query). Every other write:
1. `CREATE OR REPLACE TABLE <dataset>._cloudact_stage_<run>_<step>_<attempt> AS <query>` (the staging table);
2. the destination is created if missing with the staging schema, `partition_field` (DAY) and `cluster_by`, through
   the warehouse port's create_table;
3. one statement moves the rows:
   - truncate: `MERGE dest USING staging ON FALSE WHEN NOT MATCHED BY SOURCE THEN DELETE WHEN NOT MATCHED THEN
     INSERT ...`, an atomic replace that keeps the table's partitioning (if the query's columns changed, the table
     is dropped and re-created first, so it follows the query);
   - append: a transaction that inserts the staging rows and records `(run_id, step_id)` in the dataset's
     `_cloudact_append_log`, both guarded by "not recorded yet": a redelivered or retried stage appends once;
   - merge: `MERGE dest USING staging ON <merge_keys>` update + insert; keys must be unique and non-null in the
     query's result (checked first, with a clear error), so a repeat gives the same table;
4. the staging table is dropped.
Cost: the result is written once more (staging) and read once more, and a write takes 5-6 statements (on BigQuery,
jobs of about a second each) instead of one; results are usually far smaller than what the query scans. A table
created partitioned cannot be replaced by the one-statement truncate (BigQuery refuses to change the partitioning in
`CREATE OR REPLACE`): keep `partition_field` in the spec, or drop the table once. A worker killed between steps 1
and 4 leaves its staging table behind (named by run, step and attempt, so it is never read again; safe to drop).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared import logs
from shared.contracts.states import StatementState
from shared.errors import TerminalError
from shared.pipelines.reserved import reserved_table_problem
from shared.pipelines.spec import StepIssue, StepSpec
from shared.pipelines.sql_scope import TableScope, query_parameter_names, render_checked_sql, writable_dataset_problem
from shared.pipelines.sql_scope import validate_sql_template as _validate_sql
from shared.pipelines.sql_tables import RESERVED_DATASETS
from shared.pipelines.templating import (
    ValidationScope,
    describe_sentinels,
    render,
    render_identifier,
    run_values,
    validate_identifier_template,
)
from shared.ports.statement_jobs import StatementJobs
from shared.ports.warehouse import Warehouse
from shared.processors.base import StepContext, StepResult
from shared.processors.contract import ProcessorSpec
from shared.processors.jobs import JobState
from shared.processors.query_writer import COLUMN, StagingWriter, count_rows

log = logs.get_logger(__name__)
STAGING_PREFIX = "_cloudact_stage_"


class QuerySource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    query: str = Field(min_length=1, description="One GoogleSQL SELECT (or WITH ... SELECT) over the tenant's data.")


class QueryDestination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = Field(description="Dataset name without the tenant prefix: `sales` means `{tenant_id}_sales`.")
    table: str = Field(description="Table name; may use placeholders, e.g. `daily_{run_date}`.")
    write_mode: Literal["append", "truncate", "merge"] = Field(
        default="truncate",
        description="truncate: replace the rows; append: add them (once per run); merge: upsert on merge_keys.",
    )
    merge_keys: list[str] = Field(default_factory=list, description="Columns identifying a row (write_mode merge).")
    partition_field: str | None = Field(
        default=None, description="DATE/TIMESTAMP column to partition by day, applied when the table is created."
    )
    cluster_by: list[str] = Field(default_factory=list, max_length=4, description="Up to 4 clustering columns.")

    @model_validator(mode="after")
    def _keys_match_mode(self) -> QueryDestination:
        if self.write_mode == "merge" and not self.merge_keys:
            raise ValueError("write_mode merge needs merge_keys (the columns that identify a row)")
        if self.merge_keys and self.write_mode != "merge":
            raise ValueError(f"merge_keys apply to write_mode merge only, not {self.write_mode}")
        for column in [*self.merge_keys, *self.cluster_by, *([self.partition_field] if self.partition_field else [])]:
            if not COLUMN.match(column):
                raise ValueError(f"{column!r} is not a column name")
        if len(set(self.merge_keys)) != len(self.merge_keys):
            raise ValueError("merge_keys lists a column twice")
        return self


# -- validation --------------------------------------------------------------------------------------------------


def validate_step(step: StepSpec, scope: ValidationScope) -> list[StepIssue]:
    """Everything checkable before a run: settings, templated names, and the query's syntax and scope."""
    issues: list[StepIssue] = []
    if step.config:
        issues.append(StepIssue(("config",), "bigquery.query takes no config: settings go in source and destination"))
    source = _model(QuerySource, step.source, "source", issues)
    if step.destination is None:
        issues.append(
            StepIssue(
                ("ps_type",),
                "bigquery.query needs a destination {dataset, table}: the result is written inside the warehouse",
            )
        )
        destination = None
    else:
        destination = _model(QueryDestination, step.destination, "destination", issues)
    if source is not None:
        for offset, message in _validate_sql(source.query, scope):
            issues.append(StepIssue(("source", "query"), message, offset))
    if destination is not None:
        issues += _destination_issues(destination, scope)
    return issues


def _destination_issues(dest: QueryDestination, scope: ValidationScope) -> list[StepIssue]:
    issues = [StepIssue(("destination", "dataset"), m, o) for o, m in validate_identifier_template(dest.dataset, scope)]
    issues += [StepIssue(("destination", "table"), m, o) for o, m in validate_identifier_template(dest.table, scope)]
    if not issues:
        # checked on the rendered name, case-insensitively: `Metadata` or a variable holding `metadata` is reserved too
        values = scope.values()
        full = f"{scope.tenant_marker()}_{render(dest.dataset, values).text}"
        table_scope = TableScope(
            scope.tenant_marker(), other_tenants=scope.other_tenants, describe=describe_sentinels(values)
        )
        problem = writable_dataset_problem(full, table_scope)
        if problem:
            issues.append(StepIssue(("destination", "dataset"), problem))
    if not issues:  # on the rendered name (variables filled in), in any case: `{t}` with t=_cloudact_x is reserved
        problem = reserved_table_problem(render(dest.table, scope.values()).text)
        if problem:
            issues.append(StepIssue(("destination", "table"), problem))
    return issues


def _model(model: type[Any], raw: Any, field: str, issues: list[StepIssue]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            message = str(err["msg"]).removeprefix("Value error, ")
            issues.append(StepIssue((field, *err["loc"]), message))
        return None


# -- run ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Write:
    """One attempt's write, planned: the query's statement (what runs as the job) and what finishes it."""

    statement: str
    params: dict[str, Any]
    dataset: str
    table: str
    staging: str | None
    """None: the whole write is the one statement (a plain truncate)."""
    writer: StagingWriter

    def finish(self, wh: Warehouse, bytes_processed: int | None = None) -> StepResult:
        """After the statement: count, or move the staging rows into the destination and drop the staging table."""
        if self.staging is None:
            details = {"table": self.table, "write_mode": "truncate"}
            return StepResult(rows_out=count_rows(wh, self.table), bytes_processed=bytes_processed, details=details)
        try:
            written = self.writer.write_from(self.staging)
        finally:
            try:
                wh.execute(f"DROP TABLE IF EXISTS {self.staging}")
            except Exception as exc:  # the write's own outcome matters more; the leftover is harmless
                log.warning("could not drop staging table %s: %s", self.staging, exc)
        return StepResult(rows_out=int(written.pop("rows")), bytes_processed=bytes_processed, details=written)


class BigQueryQuery:
    """Runs as a job (shared/processors/jobs.py): the query's statement is started under the attempt's job id and
    polled, so a query of hours never holds a function; `run` does the same in place (tests, direct callers)."""

    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        write = _plan(step, ctx)
        try:
            ctx.warehouse.execute(write.statement, write.params)
        except BaseException:
            if write.staging:
                ctx.warehouse.execute(f"DROP TABLE IF EXISTS {write.staging}")
            raise
        return write.finish(ctx.warehouse)

    def submit(self, step: StepSpec, ctx: StepContext, job_id: str) -> None:
        write = _plan(step, ctx)
        _jobs(ctx).start_statement(job_id, write.statement, write.params)

    def poll(self, step: StepSpec, ctx: StepContext, job_id: str) -> JobState:
        status = _jobs(ctx).statement_status(job_id)
        if status.state == StatementState.MISSING:
            return JobState(done=False, missing=True)
        if status.state == StatementState.RUNNING:
            processed = f", {status.bytes_processed:,} bytes processed" if status.bytes_processed else ""
            return JobState(done=False, progress=f"query job {job_id} running{processed}")
        if status.state == StatementState.FAILED:
            return JobState(done=True, error=status.error or TerminalError(f"query job {job_id} failed"))
        return JobState(done=True, result=_plan(step, ctx).finish(ctx.warehouse, status.bytes_processed))

    def cancel(self, step: StepSpec, ctx: StepContext, job_id: str) -> None:
        _jobs(ctx).cancel_statement(job_id)


def _jobs(ctx: StepContext) -> StatementJobs:
    if not isinstance(ctx.warehouse, StatementJobs):
        raise TerminalError(f"the {type(ctx.warehouse).__name__} warehouse cannot run statements as jobs")
    return ctx.warehouse


def _plan(step: StepSpec, ctx: StepContext) -> _Write:
    """Render and check the query and the destination for this attempt (the same on every delivery)."""
    source, dest = _settings(step)
    project = ctx.settings.project
    others = ctx.other_tenants()
    values = run_values(
        tenant_id=ctx.tenant_id,
        run_id=ctx.run_id,
        run_date=ctx.run_date,
        pipeline_id=ctx.pipeline_id,
        project=project,
        parameters=ctx.parameters,
        variables=ctx.variables,
    )
    sql = render_checked_sql(source.query, values, tenant_id=ctx.tenant_id, project=project, other_tenants=others)
    params = query_params(sql, ctx)
    dataset = ctx.dataset(render_identifier(dest.dataset, values, "destination.dataset"))
    problem = writable_dataset_problem(dataset, TableScope(ctx.tenant_id, other_tenants=others))
    if problem:  # after rendering: a run value such as ds=metadata must not reach the reserved dataset
        raise TerminalError(f"step {step.step_id}: destination: {problem}")
    table = ctx.destination_table(dataset, render_identifier(dest.table, values, "destination.table"))
    writer = StagingWriter(ctx.warehouse, dataset, table, dest, _write_id(ctx, step))
    ctx.warehouse.require_dataset(dataset)
    if dest.write_mode == "truncate" and not dest.partition_field and not dest.cluster_by:
        # The common case needs no staging table: one atomic statement, and the table follows the query.
        return _Write(f"CREATE OR REPLACE TABLE {table} AS\n{sql}\n", params, dataset, table, None, writer)
    staging = f"{dataset}.{STAGING_PREFIX}{_safe(ctx.run_id)}_{step.step_id}_{ctx.attempt}"
    return _Write(f"CREATE OR REPLACE TABLE {staging} AS\n{sql}\n", params, dataset, table, staging, writer)


def _settings(step: StepSpec) -> tuple[QuerySource, QueryDestination]:
    """The step's typed settings, re-checked here: a run may come from a spec validated by an older version."""
    issues: list[StepIssue] = []
    source = _model(QuerySource, step.source, "source", issues)
    destination = _model(QueryDestination, step.destination, "destination", issues) if step.destination else None
    if step.destination is None:
        issues.append(StepIssue(("destination",), "a destination {dataset, table} is required"))
    elif destination is not None and destination.dataset.lower() in RESERVED_DATASETS:
        issues.append(StepIssue(("destination", "dataset"), f"{destination.dataset!r} is reserved for run history"))
    if issues or source is None or destination is None:
        text = "; ".join(".".join(map(str, i.path)) + ": " + i.message for i in issues)
        raise TerminalError(f"step {step.step_id}: {text}")
    return source, destination


def query_params(sql: str, ctx: StepContext) -> dict[str, Any]:
    """The values of the `@name`s the SQL uses: built-ins, variables and the run's (typed) parameters."""
    available: dict[str, Any] = {**ctx.variables, **ctx.parameters}
    available.update(run_date=ctx.run_date, run_id=ctx.run_id, tenant_id=ctx.tenant_id, pipeline_id=ctx.pipeline_id)
    used = query_parameter_names(sql)
    missing = [name for name in used if name not in available]
    if missing:
        raise TerminalError(f"SQL uses undefined parameters: {', '.join('@' + m for m in missing)}")
    return {name: available[name] for name in used}


def _safe(text: str) -> str:
    if not re.match(r"^[A-Za-z0-9_]{1,100}$", text):
        raise TerminalError(f"run id {text!r} cannot be part of a table name")
    return text


def _write_id(ctx: StepContext, step: StepSpec) -> str:
    """One append per (run, step), whatever the attempt."""
    return f"{_safe(ctx.run_id)}:{step.step_id}"


SPEC = ProcessorSpec(
    ps_type="bigquery.query",
    summary="ELT inside the warehouse. The data never passes through the function.",
    processor=BigQueryQuery(),
    validate=validate_step,
    config_models={"source": QuerySource, "destination": QueryDestination},
)
