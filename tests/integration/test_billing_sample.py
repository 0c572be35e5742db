"""The billing sample end to end: the synthetic export generator, `cloudact sample-data billing`, and globex's
`billing_costs` pipeline on the embedded runtime, checked against totals computed independently from the file."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from shared.cli.main import cli
from shared.runtime.settings import Settings
from shared.samples.billing import SCHEMA, generate_batches
from shared.samples.export_files import write_batches
from tests.conftest import run_to_end
from tests.processor_support import require_bigquery

ROWS = 3000


def _generated(rows: int, seed: int = 42, **kwargs: Any) -> pa.Table:
    return pa.Table.from_batches(list(generate_batches(rows, seed, **kwargs)), schema=SCHEMA)


def test_the_generator_is_deterministic_and_realistic() -> None:
    first = _generated(ROWS, seed=7)
    assert first.equals(_generated(ROWS, seed=7))
    assert not first.equals(_generated(ROWS, seed=8))
    assert first.num_rows == ROWS and first.schema == SCHEMA
    rows = first.to_pylist()
    start, end = dt.datetime(2026, 10, 1, tzinfo=dt.UTC), dt.datetime(2026, 10, 31, tzinfo=dt.UTC)
    assert all(start <= r["usage_start_time"] < end for r in rows)
    assert all(r["usage_end_time"] - r["usage_start_time"] == dt.timedelta(hours=1) for r in rows)
    assert all(r["export_time"] > r["usage_end_time"] for r in rows)
    assert all(r["invoice"]["month"] == r["usage_start_time"].strftime("%Y%m") for r in rows)
    with_credits = [r for r in rows if r["credits"]]
    assert 0.1 < len(with_credits) / ROWS < 0.6
    for r in with_credits:  # credits are negative and never more than the charge
        assert all(c["amount"] <= 0 for c in r["credits"])
        assert -sum(c["amount"] for c in r["credits"]) <= abs(r["cost"]) + 1e-6
    assert {r["cost_type"] for r in rows} <= {"regular", "adjustment"}
    services = {r["service"]["description"] for r in rows}
    assert {"Compute Engine", "BigQuery", "Cloud Storage"} <= services
    zonal = [r for r in rows if r["location"]["zone"]]
    assert zonal and all(r["location"]["zone"].startswith(r["location"]["region"]) for r in zonal)


def test_sample_data_cli_writes_every_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("CLOUDACT_HOME", str(tmp_path / "home"))
    pinned = ["--start-date", "2026-10-01"]  # the library's default window (the CLI's default ends yesterday)
    result = runner.invoke(cli, ["sample-data", "billing", "--rows", "500", "--seed", "3", *pinned])
    assert result.exit_code == 0, result.output
    default = tmp_path / "home" / "files" / "globex" / "exports" / "gcp_billing_export.parquet"
    assert "wrote 500 billing export rows (parquet" in result.output and default.exists()
    assert pq.read_table(default).equals(_generated(500, seed=3))

    result = runner.invoke(cli, ["sample-data", "billing", "--rows", "40", "--out", str(tmp_path / "b.ndjson")])
    assert result.exit_code == 0, result.output
    ndjson = pjson.read_json(tmp_path / "b.ndjson")
    assert ndjson.num_rows == 40 and ndjson.schema.field("usage_start_time").type == pa.timestamp("s")
    assert ndjson.column("credits").type.value_type == SCHEMA.field("credits").type.value_type

    result = runner.invoke(cli, ["sample-data", "billing", "--rows", "40", "--out", str(tmp_path / "b.csv")])
    assert result.exit_code == 0, result.output
    flat = pcsv.read_csv(tmp_path / "b.csv")
    assert flat.num_rows == 40 and {"service_description", "location_region", "credits"} <= set(flat.column_names)
    assert isinstance(json.loads(flat.column("labels")[0].as_py()), list)

    bad = runner.invoke(cli, ["sample-data", "billing", "--rows", "-5"])
    assert bad.exit_code != 0 and "-5 is not in the range x>=0" in bad.output


def _independent_daily_totals(path: Path) -> dict[tuple[Any, ...], dict[str, float]]:
    """Daily cost by service/project/region straight from the export file: plain Python over its rows."""
    totals: dict[tuple[Any, ...], dict[str, float]] = defaultdict(lambda: {"cost": 0.0, "credits": 0.0, "n": 0})
    for row in pq.read_table(path).to_pylist():
        location = row["location"]
        key = (
            row["usage_start_time"].date(),
            row["service"]["description"],
            row["project"]["id"],
            location["region"] or location["location"],
        )
        credits = sum(c["amount"] for c in row["credits"])
        totals[key]["cost"] += row["cost"]
        totals[key]["credits"] += credits
        totals[key]["n"] += 1
    return totals


@pytest.fixture(params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bqemulator)])
def billing_runtime(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Any]:
    """The embedded runtime on DuckDB, or on BigQuery's API (bqemulator) with a project of its own."""
    from shared.app import embedded

    if request.param == "bigquery":
        settings = replace(
            settings,
            warehouse="bigquery",
            bigquery_endpoint=require_bigquery(),
            project=f"billing-{uuid.uuid4().hex[:8]}",
        )
    runtime = embedded.start(settings, max_backoff_s=0.05)
    yield runtime
    runtime.close()


def test_billing_costs_produces_the_right_daily_totals(billing_runtime: Any) -> None:
    runtime = billing_runtime
    settings = runtime.settings
    export = settings.home / "files" / "globex" / "exports" / "gcp_billing_export.parquet"
    write_batches(export, SCHEMA, generate_batches(ROWS, seed=11), "parquet")

    run = run_to_end(runtime, "globex", "billing_costs", timeout=120)
    stages = {s["stage_id"]: s for s in run["stages"]}
    assert run["status"] == "SUCCEEDED", {k: (s["status"], s.get("error")) for k, s in stages.items()}
    assert stages["alert_on_failure"]["status"] == "SKIPPED"
    assert stages["load_export"]["rows_out"] == ROWS and stages["line_items"]["rows_out"] == ROWS

    warehouse = runtime.context.warehouse_for("globex")
    assert type(warehouse).__name__ == ("BigQueryWarehouse" if settings.warehouse == "bigquery" else "DuckDBWarehouse")
    got = {
        (r["usage_date"], r["service"], r["project_id"], r["region"]): r
        for r in warehouse.query("SELECT * FROM globex_billing.daily_costs").to_pylist()
    }
    expected = _independent_daily_totals(export)
    assert set(got) == set(expected)
    for key, want in expected.items():
        row = got[key]
        assert row["line_items"] == want["n"]
        assert row["cost"] == pytest.approx(want["cost"], abs=2e-6)
        assert row["credits"] == pytest.approx(want["credits"], abs=2e-6)
        assert row["net_cost"] == pytest.approx(want["cost"] + want["credits"], abs=2e-6)

    table = pq.read_table(export)
    credits = pc.list_flatten(table.column("credits")).to_pylist()
    by_type: dict[str, float] = defaultdict(float)
    for credit in credits:
        by_type[credit["type"]] += credit["amount"]
    credit_rows = warehouse.query("SELECT * FROM globex_billing.credits_by_type").to_pylist()
    assert {r["credit_type"] for r in credit_rows} == set(by_type)
    for r in credit_rows:
        assert r["invoice_month"] == "202610" and r["amount"] == pytest.approx(by_type[r["credit_type"]], abs=1e-5)

    dq = warehouse.query(
        "SELECT step_id, check_name, severity, status FROM globex_metadata.dq_results WHERE run_id = @run_id",
        {"run_id": run["run_id"]},
    ).to_pylist()
    assert len(dq) == 10
    assert all(r["status"] == "pass" for r in dq if r["severity"] == "error")


def test_a_bad_export_fails_its_check_blocks_downstream_and_alerts(runtime: Any, settings: Any) -> None:
    export = settings.home / "files" / "globex" / "exports" / "gcp_billing_export.parquet"
    table = _generated(200, seed=5)
    currency = pa.array(["USD"] * 190 + ["EUR"] * 10)
    export.parent.mkdir(parents=True)
    pq.write_table(table.set_column(table.schema.get_field_index("currency"), "currency", currency), export)

    run = run_to_end(runtime, "globex", "billing_costs", timeout=120)
    stages = {s["stage_id"]: s["status"] for s in run["stages"]}
    assert run["status"] == "FAILED"
    assert stages["check_export"] == "FAILED"
    assert {stages[s] for s in ("line_items", "daily_costs", "credits_by_type", "check_daily_costs")} == {"SKIPPED"}
    assert stages["alert_on_failure"] == "SUCCEEDED"
    assert "accepted_values_currency (fail: 10 rows outside the accepted values)" in run["error"]
    alerts = list((settings.home / "outbox").glob("*globex_billing_alerts*"))
    assert len(alerts) == 1 and "check_export" in alerts[0].read_text()
