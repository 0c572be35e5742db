"""Reserved datasets (issue 13, attack class 4), checked on the name a step really uses: after rendering and in any
case, at validation, at admission and at run time (`StepContext.dataset`), so no spelling or parameter value writes
into `{tenant}_metadata`."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.catalog.loader import PipelineValidationError, parse_pipeline
from shared.errors import TerminalError
from shared.pipelines import reserved
from shared.pipelines.parameters import ParameterError, resolve_run_parameters
from shared.processors.base import StepContext
from shared.processors.step_config import Destination, TableRef
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from tests.conftest import auth, execute, run_to_end

VARIANTS = ["metadata", "Metadata", "METADATA", "mEtAdAtA", "metadata ", " metadata", "metadata\n", "metadata\t"]
NOT_NAMES = ["meta.data", "metadata;", "\uff2dETADATA", "metadat\u0430", "", "1metadata", "x y", "a`b", "../metadata"]
"""Not dataset names at all: dots, quotes, spaces, a full-width M, a Cyrillic a, empty."""


def _context(tenant_id: str = "acme") -> StepContext:
    unused = DuckDBWarehouse(":memory:")  # never queried: every name here is decided before a warehouse is needed
    return StepContext(
        tenant_id, "p", "r", "s", 1, date(2026, 1, 1), {}, {}, unused, time.monotonic() + 60, Context(Settings())
    )


@pytest.mark.parametrize("name", VARIANTS + NOT_NAMES)
def test_step_context_refuses_reserved_and_malformed_names_naming_the_field(name: str) -> None:
    with pytest.raises(TerminalError) as caught:
        _context().dataset(name, "destination.dataset")
    message = str(caught.value)
    assert message.startswith("destination.dataset: ")
    assert ("reserved for run history" in message) or ("is not a dataset name" in message)


def test_step_context_builds_the_tenant_dataset_and_lets_sources_read_run_history() -> None:
    ctx = _context()
    assert ctx.dataset("sales") == "acme_sales"
    assert ctx.dataset("Sales_EU") == "acme_Sales_EU"
    assert ctx.dataset("metadata", "source.dataset", writing=False) == "acme_metadata"
    assert ctx.dataset("metadata_archive") == "acme_metadata_archive"  # only the reserved name itself
    with pytest.raises(TerminalError, match=r"^source.dataset: 'meta.data' is not a dataset name"):
        ctx.dataset("meta.data", "source.dataset", writing=False)


def test_table_refs_pass_their_own_field_and_only_destinations_refuse_run_history() -> None:
    ctx = _context()
    assert TableRef(dataset="metadata", table="dq_results").qualified(ctx) == "acme_metadata.dq_results"
    with pytest.raises(ValueError, match="reserved for run history"):
        Destination(dataset="metadata", table="t")
    forged = Destination.model_construct(dataset="metadata", table="t", write_mode="append")  # skips the validator
    with pytest.raises(TerminalError, match=r"^destination.dataset: 'metadata' is reserved"):
        forged.qualified(ctx)


# -- validation ------------------------------------------------------------------------------------------------------


def _bq_pipeline(dataset: str, header: str = "") -> str:
    return (
        "pipeline_id: p\n" + header + "steps:\n  - step_id: forge\n    ps_type: bigquery.query\n"
        '    source: {query: "SELECT 1 AS x"}\n'
        f"    destination: {{dataset: {dataset}, table: forged, write_mode: append}}\n"
    )


def _issues(text: str) -> list[str]:
    with pytest.raises(PipelineValidationError) as caught:
        parse_pipeline(text, "p.yaml", tenant_id="acme")
    return [str(i) for i in caught.value.issues]


@pytest.mark.parametrize("literal", ["Metadata", "METADATA", '"metadata"', '"MetaData"'])
def test_literal_case_variants_are_refused_at_the_destination(literal: str) -> None:
    issues = _issues(_bq_pipeline(literal))
    assert any(i.startswith("p.yaml:") and "steps[0].destination.dataset" in i and "reserved" in i for i in issues)


@pytest.mark.parametrize("ps_type", ["file.load", "arrow.transform", "http.extract"])
@pytest.mark.parametrize("literal", ["metadata", "Metadata"])
def test_other_processors_refuse_the_reserved_dataset_in_any_case(ps_type: str, literal: str) -> None:
    text = (
        f"pipeline_id: p\nsteps:\n  - step_id: s\n    ps_type: {ps_type}\n"
        f"    destination: {{dataset: {literal}, table: t}}\n"
    )
    issues = [i for i in _issues(text) if "destination.dataset" in i]
    assert issues and all(i.startswith("p.yaml:5:") for i in issues)
    assert any("reserved for run history" in i or "not a valid name" in i for i in issues)


@pytest.mark.parametrize("default", ["metadata", "Metadata", "METADATA"])
def test_a_parameter_default_naming_the_reserved_dataset_is_refused_at_its_placeholder(default: str) -> None:
    header = f"parameters:\n  ds: {{type: string, default: {default}}}\n"
    issues = "\n".join(_issues(_bq_pipeline('"{ds}"', header)))
    wanted = f"p.yaml:8:29: steps[0].destination.dataset: with the default of parameter 'ds' the dataset {default!r} "
    assert wanted in issues


def test_a_placeholder_a_run_fills_in_is_allowed_and_checked_at_admission() -> None:
    header = "parameters:\n  ds: {type: string, required: true}\n"
    spec = parse_pipeline(_bq_pipeline('"{ds}"', header), "p.yaml", tenant_id="acme")
    assert resolve_run_parameters(spec, {"ds": "sales"}) == {"ds": "sales"}
    for value in ("metadata", "Metadata", "METADATA"):
        with pytest.raises(ParameterError) as caught:
            resolve_run_parameters(spec, {"ds": value})
        assert caught.value.name == "ds" and "reserved for run history" in caught.value.reason


# -- the API and the run ---------------------------------------------------------------------------------------------

FORGE = """\
pipeline_id: forge
parameters:
  ds: {type: string, default: sales}
steps:
  - step_id: forge
    ps_type: bigquery.query
    source: {query: "SELECT 'x' AS run_id"}
    destination: {dataset: "{ds}", table: forged, write_mode: append}
"""


def _write_forge(runtime: Any) -> None:
    path = Path(runtime.settings.config_dir) / "testco" / "pipelines" / "forge.yaml"
    path.write_text(FORGE)


@pytest.mark.parametrize("value", ["metadata", "Metadata", "METADATA"])
def test_execute_with_a_reserved_dataset_parameter_is_a_400_naming_it(runtime: Any, value: str) -> None:
    _write_forge(runtime)
    response = execute(runtime, "testco", "forge", parameters={"ds": value})
    assert response.status == 400, response.body
    assert response.body["error"] == "BAD_REQUEST" and response.body["details"]["field"] == "parameters.ds"
    assert "reserved for run history" in response.body["message"]


def test_a_reserved_name_that_reaches_a_run_fails_it_and_writes_nothing(runtime: Any, monkeypatch: Any) -> None:
    """Admission's check switched off, as if a path to the step had skipped it: the run-time seam still holds."""
    _write_forge(runtime)
    monkeypatch.setattr(reserved, "run_value_problem", lambda *_, **__: None)
    warehouse = runtime.context.warehouse_for("testco")
    for value in ("Metadata", "METADATA", "metadata"):
        run = run_to_end(runtime, "testco", "forge", parameters={"ds": value})
        assert run["status"] == "FAILED", run
        assert "destination.dataset: " in str(run["stages"]) and "reserved for run history" in str(run["stages"])
        assert not warehouse.table_exists("testco_metadata.forged")
    assert run_to_end(runtime, "testco", "forge")["status"] == "SUCCEEDED"  # the default still writes to sales
    assert warehouse.table_exists("testco_sales.forged") and not warehouse.table_exists("testco_metadata.forged")
    key = auth(runtime, "testco")
    assert runtime.call_api("GET", "/api/v1/tenants/testco/pipelines", headers=key).status == 200


@pytest.mark.parametrize("table", ["_cloudact_pwn", "_CloudAct_stage_x", "_CLOUDACT_append_log", " _cloudact_x"])
def test_platform_tables_are_refused_as_destinations_whatever_their_case(table: str) -> None:
    ctx = _context()
    with pytest.raises(TerminalError, match=r"^destination.table: .*reserved for the platform"):
        ctx.destination_table("acme_sales", table)
    forged = Destination.model_construct(dataset="sales", table=table, write_mode="append")
    with pytest.raises(TerminalError, match="reserved for the platform"):
        forged.qualified(ctx)


def test_a_variable_naming_a_platform_table_is_refused_at_validation(tmp_path: Path) -> None:
    text = """\
pipeline_id: sneaky
steps:
  - step_id: write
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS x"}
    destination: {dataset: atk, table: "{t}"}
variables: {t: _CloudAct_pwn}
"""
    with pytest.raises(PipelineValidationError, match="reserved for the platform"):
        parse_pipeline(text, str(tmp_path / "sneaky.yaml"), tenant_id="acme")
