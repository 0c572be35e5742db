"""`cloudact query TENANT "SELECT ..."`: a read-only query over one tenant's own datasets.

The SQL is held to the same rules as a pipeline step's (sql_scope): one SELECT, the GoogleSQL allow-list, and only
`{tenant}_<dataset>.<table>` names of that tenant (`{tenant_id}` may be written as a placeholder). What runs is the
checked statement, on the tenant's own warehouse; at most `--limit` rows are read back (streamed, the rest is not
fetched).
"""

from __future__ import annotations

import json
import sys

import click

from shared.cli import render
from shared.cli.tables import TenantWarehouse, arrow_rows, rows_table

MAX_ROWS = 10_000


@click.command("query")
@click.argument("tenant_id", metavar="TENANT")
@click.argument("sql")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, MAX_ROWS), help="Rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print {columns, rows, truncated} as JSON.")
def query_cmd(tenant_id: str, sql: str, limit: int, as_json: bool) -> None:
    """Run one read-only SELECT over a tenant's own datasets and print the rows.

    Example: cloudact query acme "SELECT region, revenue FROM {tenant_id}_sales.revenue_by_region ORDER BY 2 DESC"
    """
    import pyarrow as pa

    from shared.pipelines.sql_scope import TableScope, checked_query
    from shared.pipelines.templating import TemplateError
    from shared.pipelines.templating import render as render_template
    from shared.pipelines.tenant_folders import other_tenants

    tenant = TenantWarehouse(tenant_id)
    with tenant as warehouse:
        settings = tenant.ctx.settings
        config_dir = settings.config_dir
        try:
            rendered = render_template(sql, {"tenant_id": tenant_id, "project": settings.project})
        except TemplateError as exc:
            raise click.ClickException(str(exc)) from None
        scope = TableScope(tenant_id, frozenset({settings.project}), other_tenants(config_dir, tenant_id))
        canonical, issues = checked_query(rendered.text, scope, rendered.substituted)
        if canonical is None:
            for issue in issues:
                where = "" if issue.offset is None else f"at {rendered.template_offset(issue.offset) + 1}: "
                click.echo(f"refused: {where}{issue.message}", err=True)
            sys.exit(2)
        batches = []
        count = 0
        for batch in warehouse.query_batches(canonical, batch_rows=min(limit + 1, 65_536)):
            batches.append(batch)
            count += batch.num_rows
            if count > limit:
                break
    data = pa.Table.from_batches(batches) if batches else None
    truncated = count > limit
    columns, rows = arrow_rows(data.slice(0, limit)) if data is not None else ([], [])
    if as_json:
        click.echo(json.dumps({"columns": columns, "rows": rows, "truncated": truncated}, indent=2, default=str))
        return
    render.console.print(rows_table(columns, rows))
    more = f" (first {limit}; --limit for more)" if truncated else ""
    render.console.print(f"{len(rows)} row(s){more}", markup=False)
