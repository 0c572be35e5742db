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
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared import logs
from shared.errors import TerminalError
from shared.pipelines.reserved import reserved_table_problem
from shared.pipelines.spec import IDENTIFIER, StepIssue, StepSpec
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
from shared.ports.warehouse import Warehouse
from shared.processors.base import StepContext, StepResult
from shared.processors.table_sink import APPEND_LOG, APPEND_LOG_SCHEMA

log = logs.get_logger("cloudact.processors.bigquery_query")
COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
STAGING_PREFIX = "_cloudact_stage_"
_SAFE_LITERAL = re.compile(r"^[A-Za-z0-9_.:\-]{1,300}$")


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


CONFIG_MODELS: dict[str, type[BaseModel]] = {"source": QuerySource, "destination": QueryDestination}
"""Per-field settings models, also used for the editor JSON Schema (`cloudact pipelines schema`)."""


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


class BigQueryQuery:
    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        source, dest = _settings(step)
        project, config_dir = _deployment()
        others = _other_tenants(config_dir, ctx.tenant_id)
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
        writer = _Writer(ctx.warehouse, dataset, table, dest, _write_id(ctx, step))
        staging = f"{dataset}.{STAGING_PREFIX}{_safe(ctx.run_id)}_{step.step_id}_{ctx.attempt}"
        ctx.warehouse.require_dataset(dataset)
        if dest.write_mode == "truncate" and not dest.partition_field and not dest.cluster_by:
            # The common case needs no staging table: one atomic statement, and the table follows the query.
            ctx.warehouse.execute(f"CREATE OR REPLACE TABLE {table} AS\n{sql}\n", params)
            rows = _count(ctx.warehouse, table)
            return StepResult(rows_out=rows, details={"table": table, "write_mode": "truncate"})
        try:
            ctx.warehouse.execute(f"CREATE OR REPLACE TABLE {staging} AS\n{sql}\n", params)
            details = writer.write_from(staging)
        finally:
            try:
                ctx.warehouse.execute(f"DROP TABLE IF EXISTS {staging}")
            except Exception as exc:  # the write's own outcome matters more; the leftover is harmless
                log.warning("could not drop staging table %s: %s", staging, exc)
        return StepResult(rows_out=int(details.pop("rows")), details=details)


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


class _Writer:
    """Moves a staging table's rows into the destination with one statement per write mode (module docstring)."""

    def __init__(self, wh: Warehouse, dataset: str, table: str, dest: QueryDestination, write_id: str) -> None:
        self.wh, self.dataset, self.table, self.dest, self.write_id = wh, dataset, table, dest, write_id

    def write_from(self, staging: str) -> dict[str, Any]:
        schema = self.wh.query(f"SELECT * FROM {staging} LIMIT 0").schema
        self._check_columns(schema)
        rows = _count(self.wh, staging)
        mode = self.dest.write_mode
        recreated = self._ensure_table(schema, replace_if_changed=mode == "truncate")
        columns = ", ".join(_q(c) for c in schema.names)
        values = ", ".join(f"s.{_q(c)}" for c in schema.names)
        details: dict[str, Any] = {"table": self.table, "write_mode": mode, "rows": rows}
        if recreated:
            details["table_created"] = True
        if mode == "truncate":
            self.wh.execute(
                f"MERGE {self.table} AS t USING {staging} AS s ON FALSE "
                f"WHEN NOT MATCHED BY SOURCE THEN DELETE "
                f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"
            )
        elif mode == "append":
            self._append(staging, columns)
        else:
            self._check_keys(staging)
            keys = set(self.dest.merge_keys)
            on = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in self.dest.merge_keys)
            updates = ", ".join(f"{_q(c)} = s.{_q(c)}" for c in schema.names if c not in keys)
            matched = f"WHEN MATCHED THEN UPDATE SET {updates} " if updates else ""
            details["rows_merged"] = self.wh.execute(
                f"MERGE {self.table} AS t USING {staging} AS s ON {on} "
                f"{matched}WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"
            )
        return details

    def _check_columns(self, schema: pa.Schema) -> None:
        bad = [name for name in schema.names if not COLUMN.match(name)]
        if bad:
            raise TerminalError(f"the query returns columns that are not plain names: {bad} (alias them)")
        wanted = [*self.dest.merge_keys, *self.dest.cluster_by]
        if self.dest.partition_field:
            wanted.append(self.dest.partition_field)
            field_type = (
                schema.field(self.dest.partition_field).type if self.dest.partition_field in schema.names else None
            )
            if field_type is not None and not (pa.types.is_date(field_type) or pa.types.is_timestamp(field_type)):
                raise TerminalError(
                    f"partition_field {self.dest.partition_field!r} is {field_type}, not DATE/TIMESTAMP"
                )
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise TerminalError(f"the query does not return column(s) {missing} named in destination")

    def _ensure_table(self, schema: pa.Schema, replace_if_changed: bool) -> bool:
        """Create the destination if missing (True if created). A truncate whose columns changed re-creates it;
        append and merge keep the table and need every query column to exist in it."""
        if self.wh.table_exists(self.table):
            current = self.wh.query(f"SELECT * FROM {self.table} LIMIT 0").schema
            if _columns(current) == _columns(schema):
                return False
            if not replace_if_changed:
                extra = [c for c in schema.names if c not in current.names]
                if extra:
                    raise TerminalError(
                        f"{self.table} has no column(s) {extra} that the query returns; write_mode "
                        f"{self.dest.write_mode} keeps the table's schema (add the columns, or use truncate)"
                    )
                return False
            self.wh.execute(f"DROP TABLE {self.table}")
        self.wh.create_table(self.table, schema, self.dest.partition_field, tuple(self.dest.cluster_by))
        return True

    def _append(self, staging: str, columns: str) -> None:
        log_table = f"{self.dataset}.{APPEND_LOG}"
        if not self.wh.table_exists(log_table):
            self.wh.create_table(log_table, APPEND_LOG_SCHEMA)
        # Literals, not @params: bqemulator drops parameters inside a script. Both are checked to be [A-Za-z0-9_.:-].
        write_id, table_name = _literal(self.write_id), _literal(self.table)
        not_written = f"NOT EXISTS (SELECT 1 FROM {log_table} WHERE write_id = '{write_id}')"
        self.wh.execute(
            "BEGIN TRANSACTION;\n"
            f"INSERT INTO {self.table} ({columns}) SELECT {columns} FROM {staging} WHERE {not_written};\n"
            f"INSERT INTO {log_table} (write_id, table_name, row_count, written_at) "
            f"SELECT '{write_id}', '{table_name}', (SELECT COUNT(*) FROM {staging}), CURRENT_TIMESTAMP() "
            f"FROM (SELECT 1) WHERE {not_written};\n"
            "COMMIT TRANSACTION;"
        )

    def _check_keys(self, staging: str) -> None:
        keys = self.dest.merge_keys
        any_null = " OR ".join(f"{_q(k)} IS NULL" for k in keys)
        group = ", ".join(_q(k) for k in keys)
        found = self.wh.query(
            f"SELECT (SELECT COUNT(*) FROM {staging} WHERE {any_null}) AS null_keys, "
            f"(SELECT COUNT(*) FROM (SELECT 1 FROM {staging} GROUP BY {group} HAVING COUNT(*) > 1)) AS dup_keys"
        ).to_pylist()[0]
        if found["null_keys"] or found["dup_keys"]:
            raise TerminalError(
                f"merge_keys {keys} must identify one row each: the query returns {found['null_keys']} row(s) with "
                f"a NULL key and {found['dup_keys']} key(s) on more than one row"
            )


def _count(wh: Warehouse, table: str) -> int:
    return int(wh.query(f"SELECT COUNT(*) AS n FROM {table}").column("n")[0].as_py() or 0)


def _columns(schema: pa.Schema) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in schema}


def _q(column: str) -> str:
    return f"`{column}`"


def _safe(text: str) -> str:
    if not re.match(r"^[A-Za-z0-9_]{1,100}$", text):
        raise TerminalError(f"run id {text!r} cannot be part of a table name")
    return text


def _literal(text: str) -> str:
    if not _SAFE_LITERAL.match(text):
        raise TerminalError(f"{text!r} cannot be written as a SQL literal")
    return text


def _write_id(ctx: StepContext, step: StepSpec) -> str:
    """One append per (run, step), whatever the attempt."""
    return f"{_safe(ctx.run_id)}:{step.step_id}"


def _deployment() -> tuple[str, Path | None]:
    """The configured project and tenant_configs folder (runtime settings)."""
    from shared.runtime.context import get_context

    settings = get_context().settings
    return settings.project, settings.config_dir


def _other_tenants(config_dir: Path | None, tenant_id: str) -> frozenset[str]:
    if config_dir is None or not config_dir.is_dir():
        return frozenset()
    return frozenset(
        d.name for d in config_dir.iterdir() if d.is_dir() and d.name != tenant_id and IDENTIFIER.match(d.name)
    )


PROCESSOR = BigQueryQuery()
