"""SQL steps checked against the tenant's warehouse (shared/catalog/sql_check.py) and by `cloudact pipelines
validate`: unknown tables and columns and untranslatable SQL reported at the query's file:line:col, tables an upstream
step creates are known later, and the execute path's cheap translation check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from shared.adapters.duckdb_sql import transpile
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.catalog.loader import load_pipeline
from shared.catalog.sql_check import CheckReport, check_pipeline, translation_issues
from shared.cli.main import cli

HEAD = """pipeline_id: p
parameters:
  region: {type: string}
steps:
"""
ORDERS_STEP = """  - step_id: load
    ps_type: bigquery.query
    source:
      query: |
        SELECT 1 AS order_id, 'emea' AS region
    destination: {dataset: sales, table: fresh}
"""


def step(step_id: str, query: str, depends_on: str = "", table: str = "out") -> str:
    deps = f"\n    depends_on: [{depends_on}]" if depends_on else ""
    body = "\n".join("        " + line for line in query.strip().splitlines())
    return (
        f"  - step_id: {step_id}\n    ps_type: bigquery.query{deps}\n    source:\n      query: |\n{body}\n"
        f"    destination: {{dataset: sales, table: {table}}}\n"
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "tenant_configs" / "acme" / "pipelines").mkdir(parents=True)
    return tmp_path / "tenant_configs"


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    (tmp_path / "home" / "warehouse").mkdir(parents=True)
    wh = DuckDBWarehouse(tmp_path / "home" / "warehouse" / "acme.duckdb")
    wh.execute("CREATE SCHEMA IF NOT EXISTS acme_sales")
    wh.execute("CREATE TABLE acme_sales.orders AS SELECT 1 AS order_id, 'emea' AS region, 2.5 AS amount")
    yield wh
    wh.close()


def write(config: Path, text: str) -> Path:
    path = config / "acme" / "pipelines" / "p.yaml"
    path.write_text(text)
    return path


def check(path: Path, warehouse: DuckDBWarehouse) -> CheckReport:
    return check_pipeline(path, load_pipeline(path), warehouse, "proj")


def position(path: Path, needle: str) -> tuple[int, int]:
    """1-based line and column of the first `needle` in the file."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(needle)


def test_a_query_the_warehouse_accepts_is_dry_run(config: Path, warehouse: DuckDBWarehouse) -> None:
    query = "SELECT region, SUM(amount) AS total FROM {tenant_id}_sales.orders WHERE region != @region GROUP BY region"
    report = check(write(config, HEAD + step("a", query)), warehouse)
    assert report.findings == [] and report.dry_runs == 1  # @region has no default: a typed sample is bound


def test_an_unknown_column_is_reported_at_its_line_and_column(config: Path, warehouse: DuckDBWarehouse) -> None:
    query = "SELECT region,\n       amount_usd\nFROM {tenant_id}_sales.orders"
    path = write(config, HEAD + step("a", query))
    report = check(path, warehouse)
    line, column = position(path, "amount_usd")
    assert [str(f.issue) for f in report.errors] == [
        f"tenant_configs/acme/pipelines/p.yaml:{line}:{column}: steps[0].source.query: dry run: Binder Error: "
        'Referenced column "amount_usd" not found in FROM clause! Candidate bindings: "amount", "order_id", "region"'
    ]


def test_an_unknown_table_is_reported_at_the_table(config: Path, warehouse: DuckDBWarehouse) -> None:
    path = write(config, HEAD + step("a", "SELECT * FROM {tenant_id}_sales.ordrs"))
    (finding,) = check(path, warehouse).findings
    line, column = position(path, "{tenant_id}_sales.ordrs")
    assert (finding.severity, finding.issue.line, finding.issue.column) == ("error", line, column)
    assert "table `acme_sales.ordrs` does not exist and no step of this pipeline creates it" in finding.issue.message


def test_a_table_an_upstream_query_creates_is_checked_against_its_columns(
    config: Path, warehouse: DuckDBWarehouse
) -> None:
    """`fresh` does not exist before the first run: the columns `load`'s query returns stand in for it."""
    good = step("b", "SELECT order_id, UPPER(region) AS r FROM {tenant_id}_sales.fresh", depends_on="load")
    report = check(write(config, HEAD + ORDERS_STEP + good), warehouse)
    assert report.errors == [] and report.dry_runs == 2 and report.known_later == 0
    (note,) = report.findings
    assert "`acme_sales.fresh` does not exist yet: checked against the columns step 'load' writes" in str(note)
    bad = step("b", "SELECT order_id,\n       amount\nFROM {tenant_id}_sales.fresh", depends_on="load", table="b")
    path = write(config, HEAD + ORDERS_STEP + bad)
    (error,) = check(path, warehouse).errors
    assert (error.issue.line, error.issue.column) == position(path, "amount")
    assert 'Referenced column "amount" not found' in error.issue.message


def test_a_table_an_upstream_file_load_creates_is_known_later(config: Path, warehouse: DuckDBWarehouse) -> None:
    """A loaded file's columns are not known before it is read: the query waits for a real run."""
    load = (
        "  - step_id: load\n    ps_type: file.load\n    source: {path: exports/x.parquet}\n"
        "    destination: {dataset: sales, table: fresh}\n"
    )
    downstream = step("b", "SELECT no_such_column FROM {tenant_id}_sales.fresh", depends_on="load")
    report = check(write(config, HEAD + load + downstream), warehouse)
    assert report.errors == [] and report.known_later == 1 and report.dry_runs == 0
    (note,) = report.findings
    assert note.severity == "note" and "`acme_sales.fresh` is known later: step 'load' creates it" in str(note)


def test_a_table_a_step_creates_without_a_dependency_is_an_error(config: Path, warehouse: DuckDBWarehouse) -> None:
    report = check(write(config, HEAD + ORDERS_STEP + step("b", "SELECT * FROM {tenant_id}_sales.fresh")), warehouse)
    (error,) = report.errors
    assert "step 'load' writes it, but this step does not depend on it: add 'load' to depends_on" in str(error)


def test_a_table_named_per_run_is_not_looked_up(config: Path, warehouse: DuckDBWarehouse) -> None:
    report = check(write(config, HEAD + step("a", "SELECT * FROM {tenant_id}_sales.daily_{run_date}")), warehouse)
    assert report.findings == [] and report.known_later == 1 and report.dry_runs == 0


def test_untranslatable_sql_is_reported_at_the_function(config: Path, warehouse: DuckDBWarehouse) -> None:
    """SOUNDEX passes the allow-list (BigQuery has it) but DuckDB has no equivalent: found before any run."""
    path = write(config, HEAD + step("a", "SELECT SOUNDEX(region) AS s FROM {tenant_id}_sales.orders"))
    (error,) = check(path, warehouse).errors
    assert "could not be translated for DuckDB" in error.issue.message and "[SQL:" not in error.issue.message
    assert (error.issue.line, error.issue.column) == position(path, "SOUNDEX")
    (cheap,) = translation_issues(path, load_pipeline(path), "proj", transpile)  # what execute checks
    assert (cheap.line, cheap.column) == position(path, "SOUNDEX")
    assert translation_issues(write(config, HEAD + ORDERS_STEP), load_pipeline(path), "proj", transpile) == []


def test_custom_sql_quality_checks_are_dry_run_too(config: Path, warehouse: DuckDBWarehouse) -> None:
    quality = (
        "  - step_id: q\n    ps_type: quality.check\n    config:\n      checks:\n"
        '        - {type: custom_sql, sql: "SELECT * FROM {tenant_id}_sales.orders WHERE amout < 0"}\n'
    )
    path = write(config, HEAD + quality)
    (error,) = check(path, warehouse).errors
    assert error.issue.key == "steps[0].config.checks[0].sql" and "amout" in error.issue.message


def test_cli_validate_prints_the_dry_run_error_and_exits_1(
    config: Path, warehouse: DuckDBWarehouse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(config, HEAD + step("a", "SELECT region, amount_usd FROM {tenant_id}_sales.orders"))
    warehouse.close()  # the CLI opens the tenant's file itself
    monkeypatch.setenv("CLOUDACT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLOUDACT_CONFIG_DIR", str(config))
    result = CliRunner().invoke(cli, ["pipelines", "validate", str(config)])
    assert result.exit_code == 1
    line, column = position(path, "amount_usd")
    assert f"acme/pipelines/p.yaml:{line}:{column}: steps[0].source.query: dry run: Binder Error" in result.output
    offline = CliRunner().invoke(cli, ["pipelines", "validate", "--offline", str(config)])
    assert offline.exit_code == 0 and offline.output.startswith("ok (1 pipeline file(s))")


def test_cli_validate_creates_no_warehouse_for_a_tenant_without_one(
    config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write(config, HEAD + ORDERS_STEP + step("b", "SELECT region FROM {tenant_id}_sales.fresh", depends_on="load"))
    monkeypatch.setenv("CLOUDACT_HOME", str(tmp_path / "fresh_home"))
    result = CliRunner().invoke(cli, ["pipelines", "validate", "-v", str(config)])
    assert result.exit_code == 0, result.output
    assert "2 SQL quer(ies) dry-run on duckdb, 0 known later" in result.output
    assert "checked against the columns step 'load' writes (note)" in result.output
    assert not (tmp_path / "fresh_home").exists()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (
            "BigQuery dry run: 400 POST https://bigquery.googleapis.com/bigquery/v2/projects/p/jobs?prettyPrint=false: "
            "Unrecognized name: regionx at [1:19]\n\nLocation: US\nJob ID: 0c1d",
            "Unrecognized name: regionx",
        ),
        (
            'DuckDB dry run: Binder Error: Referenced column "x" not found in FROM clause!\nLINE 1: SELECT x FROM t\n'
            "       ^ (at line 1, column 8 of your SQL: SELECT x FROM t)",
            'Binder Error: Referenced column "x" not found in FROM clause!',
        ),
        ("GoogleSQL could not be translated for DuckDB: SOUNDEX is not supported\n[SQL: SELECT SOUNDEX(a)]", None),
    ],
)
def test_engine_messages_are_shown_without_what_the_user_did_not_write(raw: str, shown: str | None) -> None:
    from shared.pipelines.sql_engine_messages import clean

    assert clean(raw) == (shown or "GoogleSQL could not be translated for DuckDB: SOUNDEX is not supported")
