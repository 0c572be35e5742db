"""`cloudact pipelines`: validate pipeline YAML (errors as file:line:column) and export the editor JSON Schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click


@click.group("pipelines")
def pipelines_group() -> None:
    """Pipeline YAML: validate, export the JSON Schema."""


@pipelines_group.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--offline", is_flag=True, help="Skip the warehouse checks (tables, translation, dry run).")
@click.option("-v", "--verbose", is_flag=True, help="Also print notes (tables known later, checks skipped).")
def pipelines_validate(paths: tuple[Path, ...], offline: bool, verbose: bool) -> None:
    """Validate pipeline files or folders (default: every tenant_configs/*/pipelines/*.yaml).

    Prints `ok` or one line per problem, `file:line:column: key: message`, and exits 1 if any file is invalid. Each
    SQL step is also checked against its tenant's warehouse (the one CLOUDACT_WAREHOUSE selects): the tables it reads
    exist or an upstream step creates them, the query translates (embedded) and a dry run accepts it.
    """
    from shared.catalog.loader import PipelineValidationError, list_pipeline_files, load_pipeline
    from shared.processors.contract import ProcessorContractError
    from shared.processors.registry import check_all
    from shared.runtime.settings import Settings

    try:  # every step type's SPEC, before any file is judged by them
        check_all()
    except ProcessorContractError as exc:
        raise click.ClickException(str(exc)) from None
    settings = Settings.from_env()
    files = _expand(paths) if paths else list_pipeline_files(settings.config_dir)
    if not files:
        raise click.ClickException("no pipeline files found")
    failed = 0
    checker = None if offline else _WarehouseChecks(settings)
    try:
        for path in files:
            try:
                spec = load_pipeline(path)
            except PipelineValidationError as exc:
                failed += 1
                for issue in exc.issues:
                    click.echo(str(issue))
                continue
            if checker is not None and not checker.check(path, spec, verbose):
                failed += 1
    finally:
        if checker is not None:
            checker.close()
    if failed:
        click.echo(f"{failed} of {len(files)} pipeline file(s) invalid", err=True)
        sys.exit(1)
    click.echo(f"ok ({len(files)} pipeline file(s){checker.summary() if checker else ''})")


class _WarehouseChecks:
    """sql_check against each tenant's warehouse, opened once per tenant. A tenant whose embedded warehouse file
    does not exist yet has no tables: an empty in-memory database stands in (no file is created by validating)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.warehouses: dict[str, Any] = {}
        self.dry_runs = self.known_later = 0

    def check(self, path: Path, spec: Any, verbose: bool) -> bool:
        from shared.catalog.loader import display_name, tenant_of
        from shared.catalog.sql_check import check_pipeline
        from shared.errors import PipelineError

        tenant_id = tenant_of(path)[0]
        if tenant_id is None:
            return True
        try:
            warehouse = self._warehouse(tenant_id)
        except PipelineError as exc:  # e.g. the local file is held by `cloudact ui`: said even without -v
            click.echo(f"{display_name(path)}: note: warehouse checks skipped: {exc}", err=True)
            return True
        report = check_pipeline(path, spec, warehouse, self.settings.project)
        self.dry_runs += report.dry_runs
        self.known_later += report.known_later
        for finding in report.findings:
            if finding.severity == "error":
                click.echo(str(finding.issue))
            elif verbose:
                click.echo(f"{finding.issue} (note)", err=True)
        return not report.errors

    def _warehouse(self, tenant_id: str) -> Any:
        if tenant_id not in self.warehouses:
            from shared.runtime.context import build_warehouse, tenant_warehouse_path

            if self.settings.warehouse == "duckdb" and not tenant_warehouse_path(self.settings, tenant_id).exists():
                from shared.adapters.duckdb_warehouse import DuckDBWarehouse

                self.warehouses[tenant_id] = DuckDBWarehouse(":memory:")
            else:
                self.warehouses[tenant_id] = build_warehouse(self.settings, tenant_id)
        return self.warehouses[tenant_id]

    def summary(self) -> str:
        return f"; {self.dry_runs} SQL quer(ies) dry-run on {self.settings.warehouse}, {self.known_later} known later"

    def close(self) -> None:
        for warehouse in self.warehouses.values():
            warehouse.close()


@pipelines_group.command("schema")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="File (default: stdout).")
def pipelines_schema(out: Path | None) -> None:
    """Write the JSON Schema of a pipeline file, for editor completion and checks."""
    from shared.catalog.json_schema import pipeline_json_schema

    text = json.dumps(pipeline_json_schema(), indent=2, sort_keys=True) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}", err=True)


def _expand(paths: tuple[Path, ...]) -> list[Path]:
    """Files as given; a folder means its `*/pipelines/*.yaml` (a tenant_configs folder), else its `*.yaml`."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            nested = sorted(path.glob("*/pipelines/*.yaml")) or sorted(path.glob("pipelines/*.yaml"))
            files += nested or sorted(path.glob("*.yaml"))
        else:
            files.append(path)
    return files
