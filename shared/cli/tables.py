"""`cloudact tables TENANT [DATASET]` and the rows printed by `cloudact query` and `cloudact runs show --preview`.

Where outputs live: on the embedded runtime each tenant has its own DuckDB file, `.cloudact/warehouse/{tenant}.duckdb`,
whose schemas are its datasets (`{tenant}_{dataset}`); on GCP they are the BigQuery datasets `{tenant}_{dataset}` of
the configured project. Both are read through the tenant's own warehouse (`Context.warehouse_for`), so nothing here
can show another tenant's tables.
"""

from __future__ import annotations

import json
from typing import Any

import click
import pyarrow as pa
from rich.table import Table

from shared.cli import render

INTERNAL_PREFIX = "_cloudact"
"""Platform tables in a tenant's datasets (append log, staging tables): listed only with --all."""


class TenantWarehouse:
    """The tenant's warehouse for a CLI command, with errors a person can act on, closed on exit."""

    def __init__(self, tenant_id: str) -> None:
        from shared.pipelines.spec import IDENTIFIER
        from shared.runtime.context import Context
        from shared.runtime.settings import Settings

        if not IDENTIFIER.match(tenant_id):
            raise click.BadParameter(f"{tenant_id!r} is not a tenant id", param_hint="TENANT")
        self.tenant_id = tenant_id
        self.ctx = Context(Settings.from_env())

    def __enter__(self) -> Any:
        from shared.errors import PipelineError
        from shared.runtime.context import tenant_warehouse_path

        settings = self.ctx.settings
        if settings.warehouse == "duckdb":
            path = tenant_warehouse_path(settings, self.tenant_id)
            if not path.exists():
                raise click.ClickException(
                    f"tenant {self.tenant_id!r} has no local warehouse yet ({path}): run one of its pipelines first"
                )
            self.where = str(path)
        else:
            self.where = f"BigQuery project {settings.project}"
        try:
            return self.ctx.warehouse_for(self.tenant_id)
        except PipelineError as exc:
            raise click.ClickException(f"{exc} (is `cloudact ui` holding the local warehouse? stop it first)") from exc

    def __exit__(self, *exc: object) -> None:
        self.ctx.close()


@click.command("tables")
@click.argument("tenant_id", metavar="TENANT")
@click.argument("dataset", required=False)
@click.option("--all", "show_all", is_flag=True, help="Also list the platform's own tables (_cloudact...).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def tables_cmd(tenant_id: str, dataset: str | None, show_all: bool, as_json: bool) -> None:
    """A tenant's datasets and tables with their row counts (DATASET: `sales` or `acme_sales`)."""
    from shared.ports.warehouse import TenantDatasets, WarehouseCatalog

    with TenantWarehouse(tenant_id) as warehouse:
        assert isinstance(warehouse, WarehouseCatalog) and isinstance(warehouse, TenantDatasets)
        datasets = warehouse.list_datasets()
        if dataset is not None:
            full = dataset if dataset.startswith(f"{tenant_id}_") else f"{tenant_id}_{dataset}"
            if full not in datasets:
                raise click.ClickException(f"tenant {tenant_id!r} has no dataset {full!r} (has: {', '.join(datasets)})")
            datasets = [full]
        found = [t for name in datasets for t in warehouse.list_tables(name)]
    shown = [t for t in found if show_all or not t.table.startswith(INTERNAL_PREFIX)]
    if as_json:
        rows = [{"dataset": t.dataset, "table": t.table, "kind": t.kind, "rows": t.rows} for t in shown]
        click.echo(json.dumps({"tenant_id": tenant_id, "datasets": datasets, "tables": rows}, indent=2))
        return
    table = Table("dataset", "table", "kind", "rows")
    for info in shown:
        table.add_row(info.dataset, info.table, info.kind, "-" if info.rows is None else f"{info.rows:,}")
    render.console.print(table)
    hidden = len(found) - len(shown)
    more = f"; {hidden} platform table(s) hidden (--all)" if hidden else ""
    render.console.print(f"{len(shown)} table(s) in {len(datasets)} dataset(s){more}", markup=False)


def rows_table(columns: list[dict[str, str]], rows: list[dict[str, Any]], title: str | None = None) -> Table:
    """Rows (values as `outputs.json_value` gives them) as a terminal table, column types under the names."""
    table = Table(*[f"{c['name']}\n{c['type']}" for c in columns], title=title, title_justify="left")
    for row in rows:
        table.add_row(*[_cell(row.get(c["name"])) for c in columns])
    return table


def arrow_rows(data: pa.Table) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """(columns, JSON-ready rows) of an arrow table."""
    from shared.runs.outputs import json_value

    columns = [{"name": f.name, "type": str(f.type)} for f in data.schema]
    return columns, [{k: json_value(v) for k, v in row.items()} for row in data.to_pylist()]


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return value if len(value) <= 80 else value[:77] + "..."
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def print_stage_previews(ctx: Any, run_id: str, limit: int) -> None:
    """`runs show --preview`: the first rows of the table each stage wrote, stage by stage."""
    from shared.contracts.state_paths import run_path
    from shared.runs.outputs import stage_preview
    from shared.runs.store import list_stages, load_run_spec

    run = ctx.state.get(run_path(run_id))
    if run is None:
        return
    tenant_id = str(run["tenant_id"])
    spec = load_run_spec(ctx.state, run)
    order = [str(s.get("step_id")) for s in spec.get("steps", []) if isinstance(s, dict)]
    stages = list_stages(ctx.state, run_id)
    stages.sort(key=lambda s: order.index(str(s.get("stage_id"))) if s.get("stage_id") in order else len(order))
    for stage in stages:
        preview = stage_preview(lambda: ctx.warehouse_for(tenant_id), run, spec, stage, limit)
        if preview.table is None:
            continue
        title = f"{preview.stage_id} -> {preview.table}"
        if not preview.exists:
            render.console.print(f"{title}: {preview.note}", markup=False)
            continue
        shown = f"{len(preview.rows)} of {preview.total_rows or 0:,} row(s)"
        note = f"; {preview.note}" if preview.note else ""
        if not preview.rows:
            render.console.print(f"{title}: empty{note}", markup=False)
            continue
        render.console.print(f"{title}  ({shown}{note})", markup=False, soft_wrap=True)
        render.console.print(rows_table(preview.columns, preview.rows))
