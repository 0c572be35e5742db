"""`bigquery.query`: ELT inside the warehouse. The data never passes through the function.

source:      {query: "<GoogleSQL>"}   values only as @params: @run_date, @run_id, @tenant_id and the run's parameters
destination: {dataset: <name>, table: <name>, write_mode: append | truncate}
             the table lands in `{tenant_id}_{dataset}`; without a destination the query is run for its effect.
"""

from __future__ import annotations

import re
from typing import Any

from shared.errors import TerminalError
from shared.pipelines.spec import IDENTIFIER, StepSpec
from shared.processors.base import StepContext, StepResult

_PARAM = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def _identifier(value: Any, what: str) -> str:
    text = str(value)
    if not IDENTIFIER.match(text):
        raise TerminalError(f"{what} {text!r} is not a valid identifier (lower_snake_case)")
    return text


def render_sql(sql: str, ctx: StepContext) -> str:
    """Substitute `{tenant_id}` (validated as an identifier); any other placeholder is an error."""

    def sub(match: re.Match[str]) -> str:
        if match.group(1) != "tenant_id":
            raise TerminalError(f"unknown placeholder {{{match.group(1)}}} in SQL; pass values as @params")
        return _identifier(ctx.tenant_id, "tenant_id")

    return _PLACEHOLDER.sub(sub, sql)


def query_params(sql: str, ctx: StepContext) -> dict[str, Any]:
    available: dict[str, Any] = {"run_date": ctx.run_date, "run_id": ctx.run_id, "tenant_id": ctx.tenant_id}
    available.update(ctx.parameters)
    used = set(_PARAM.findall(sql))
    missing = used - set(available)
    if missing:
        raise TerminalError(f"SQL uses undefined parameters: {', '.join(sorted(missing))}")
    return {name: available[name] for name in used}


class BigQueryQuery:
    def run(self, step: StepSpec, ctx: StepContext) -> StepResult:
        raw_sql = step.source.get("query")
        if not isinstance(raw_sql, str) or not raw_sql.strip():
            raise TerminalError(f"step {step.step_id}: source.query is required")
        sql = render_sql(raw_sql, ctx)
        params = query_params(sql, ctx)
        dest = step.destination
        if not dest:
            return StepResult(rows_out=ctx.warehouse.execute(sql, params))
        dataset = ctx.dataset(_identifier(dest.get("dataset"), "destination.dataset"))
        table = f"{dataset}.{_identifier(dest.get('table'), 'destination.table')}"
        mode = dest.get("write_mode", "truncate")
        ctx.warehouse.ensure_dataset(dataset)
        if mode == "truncate" or not ctx.warehouse.table_exists(table):
            ctx.warehouse.execute(f"CREATE OR REPLACE TABLE {table} AS {sql}", params)
            count = ctx.warehouse.query(f"SELECT COUNT(*) AS n FROM {table}")
            rows = int(count.column("n")[0].as_py())
        elif mode == "append":
            rows = ctx.warehouse.execute(f"INSERT INTO {table} {sql}", params)
        else:
            raise TerminalError(f"step {step.step_id}: write_mode {mode!r} is not one of append, truncate")
        return StepResult(rows_out=rows, details={"table": table, "write_mode": mode})


PROCESSOR = BigQueryQuery()
