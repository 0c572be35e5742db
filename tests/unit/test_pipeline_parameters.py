"""Typed parameters: declared in YAML, overridden per run through the execute API, coerced in one place.

A bad value is refused before the run is queued (400 naming `parameters.<name>`); a good one reaches SQL typed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.catalog.loader import parse_pipeline
from shared.pipelines.parameters import ParameterError, coerce, resolve_run_parameters, typed_values
from tests.conftest import auth, execute, run_to_end

TYPED = """pipeline_id: typed
parameters:
  since: {type: date, default: 2026-11-01}
  at: {type: timestamp, default: "2026-11-01T06:30:00Z"}
  limit: {type: int, default: 3}
  ratio: {type: number, default: 0.5}
  flag: {type: bool, default: false}
  label: {type: string, required: true}
steps:
  - step_id: echo
    ps_type: bigquery.query
    source:
      query: |
        SELECT @since AS since, DATE_DIFF(@since, DATE '2026-12-01', DAY) AS days_since_december,
               TIMESTAMP_ADD(@at, INTERVAL 1 HOUR) AS next_hour,
               @limit + 1 AS next_limit, @ratio * 2 AS double_ratio, NOT @flag AS not_flag,
               CONCAT(@label, '!') AS shout, @run_date AS run_date
    destination: {dataset: params, table: echo}
"""


@pytest.mark.parametrize(
    ("ptype", "given", "canonical"),
    [
        ("int", "20", 20),
        ("int", 20.0, 20),
        ("number", "2.5", 2.5),
        ("number", 3, 3.0),
        ("bool", "true", True),
        ("bool", 0, False),
        ("string", 42, "42"),
        ("date", "2026-11-02", "2026-11-02"),
        ("date", date(2026, 11, 2), "2026-11-02"),
        ("timestamp", "2026-11-02T06:00:00", "2026-11-02T06:00:00+00:00"),
        ("timestamp", "2026-11-02T08:00:00+02:00", "2026-11-02T06:00:00+00:00"),
        ("timestamp", "2026-11-02T06:00:00Z", "2026-11-02T06:00:00+00:00"),
    ],
)
def test_values_are_coerced_to_their_declared_type(ptype: str, given: Any, canonical: Any) -> None:
    assert coerce("p", ptype, given) == canonical


@pytest.mark.parametrize(
    ("ptype", "given", "reason"),
    [
        ("int", 2.5, "expected an int"),
        ("int", True, "got a bool"),
        ("int", "20 rows", "expected an int"),
        ("number", "NaN", "finite number"),
        ("bool", "yes please", "expected a bool"),
        ("date", "2026-02-30", "not a calendar date"),
        ("date", "02/11/2026", "YYYY-MM-DD"),
        ("timestamp", "tomorrow-ish", "ISO 8601"),
        ("string", ["a"], "expected a string"),
        ("string", "x" * 5000, "longer than"),
        ("int", None, "null"),
    ],
)
def test_bad_values_name_the_parameter(ptype: str, given: Any, reason: str) -> None:
    with pytest.raises(ParameterError, match=reason) as caught:
        coerce("p", ptype, given)
    assert caught.value.name == "p"


def test_run_parameters_fill_defaults_and_refuse_unknown_or_missing() -> None:
    spec = parse_pipeline(TYPED, "typed.yaml")
    resolved = resolve_run_parameters(spec, {"label": "hi", "limit": "7", "run_date": "2026-11-05"})
    assert resolved == {
        "run_date": "2026-11-05",
        "since": "2026-11-01",
        "at": "2026-11-01T06:30:00+00:00",
        "limit": 7,
        "ratio": 0.5,
        "flag": False,
        "label": "hi",
    }
    typed = typed_values(spec.parameters, resolved)
    assert typed["since"] == date(2026, 11, 1) and typed["run_date"] == date(2026, 11, 5)
    assert typed["at"] == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    with pytest.raises(ParameterError, match="'label': is required"):
        resolve_run_parameters(spec, {})
    with pytest.raises(ParameterError, match="'lable': unknown parameter"):
        resolve_run_parameters(spec, {"label": "x", "lable": "y"})


# -- through the execute API -------------------------------------------------------------------------------------


@pytest.fixture
def typed_pipeline(config_dir: Path) -> None:
    (config_dir / "testco" / "pipelines" / "typed.yaml").write_text(TYPED)
    (config_dir / "testco" / "pipelines" / "sharded.yaml").write_text(
        """pipeline_id: sharded
parameters: {shard: {type: string, default: a}}
steps:
  - step_id: copy
    ps_type: bigquery.query
    source: {query: "SELECT 1 AS n"}
    destination: {dataset: shards, table: "part_{shard}"}
"""
    )


@pytest.mark.parametrize(
    ("parameters", "field", "message"),
    [
        ({"label": "x", "limit": "many"}, "parameters.limit", "expected an int"),
        ({"label": "x", "since": "yesterday"}, "parameters.since", "YYYY-MM-DD"),
        ({"label": "x", "bogus": 1}, "parameters.bogus", "unknown parameter"),
        ({}, "parameters.label", "is required"),
        ({"label": "x", "run_date": "31.12.2026"}, "parameters.run_date", "YYYY-MM-DD"),
    ],
)
def test_api_refuses_a_bad_parameter_with_400_naming_it(
    runtime: Any, typed_pipeline: None, parameters: dict[str, Any], field: str, message: str
) -> None:
    response = execute(runtime, "testco", "typed", parameters=parameters)
    assert response.status == 400, response.body
    assert response.body["error"] == "BAD_REQUEST"
    assert response.body["details"]["field"] == field
    assert message in response.body["message"] and response.body["message"].startswith(field)
    runs = runtime.call_api("GET", "/api/v1/tenants/testco/metadata/executions", headers=auth(runtime, "testco"))
    assert runs.status == 200 and runs.body["executions"] == []  # nothing was queued


def test_api_refuses_a_placeholder_value_that_is_not_an_identifier(runtime: Any, typed_pipeline: None) -> None:
    response = execute(runtime, "testco", "sharded", parameters={"shard": "a; DROP TABLE testco_shards.part_a"})
    assert response.status == 400
    assert response.body["details"]["field"] == "parameters.shard"
    assert "cannot be part of a table name" in response.body["message"]


def test_overridden_parameters_reach_sql_typed(runtime: Any, typed_pipeline: None) -> None:
    run = run_to_end(
        runtime,
        "testco",
        "typed",
        parameters={"label": "hey", "limit": "41", "since": "2026-12-31", "flag": "true", "run_date": "2027-01-02"},
    )
    assert run["status"] == "SUCCEEDED", run
    assert run["parameters"]["limit"] == 41  # stored canonical: the string "41" became an int
    row = runtime.context.warehouse_for("testco").query("SELECT * FROM testco_params.echo").to_pylist()[0]
    assert row["since"] == date(2026, 12, 31) and row["days_since_december"] == 30  # @since bound as a DATE
    assert row["next_hour"] == datetime(2026, 11, 1, 7, 30, tzinfo=UTC)  # default timestamp, bound as TIMESTAMP
    assert (row["next_limit"], row["double_ratio"], row["not_flag"], row["shout"]) == (42, 1.0, False, "hey!")
    assert row["run_date"] == date(2027, 1, 2)


def test_a_placeholder_parameter_names_the_table_per_run(runtime: Any, typed_pipeline: None) -> None:
    run = run_to_end(runtime, "testco", "sharded", parameters={"shard": "eu_2026"})
    assert run["status"] == "SUCCEEDED", run
    assert runtime.context.warehouse_for("testco").table_exists("testco_shards.part_eu_2026")


def test_variables_name_tables_and_bind_as_values(runtime: Any, config_dir: Path) -> None:
    (config_dir / "testco" / "pipelines" / "with_vars.yaml").write_text(
        """pipeline_id: with_vars
variables: {env: prod, threshold: 2.5, since: 2026-11-01}
steps:
  - step_id: report
    ps_type: bigquery.query
    source: {query: "SELECT @threshold * 2 AS doubled, @since AS since, @pipeline_id AS pipeline"}
    destination: {dataset: vars, table: "report_{env}"}
"""
    )
    run = run_to_end(runtime, "testco", "with_vars")
    assert run["status"] == "SUCCEEDED", run
    rows = runtime.context.warehouse_for("testco").query("SELECT * FROM testco_vars.report_prod").to_pylist()
    assert rows == [{"doubled": 5.0, "since": "2026-11-01", "pipeline": "with_vars"}]


FILE_AND_TABLE = """pipeline_id: by_folder
parameters:
  folder: {type: string, default: exports}
  shard: {type: string, default: a}
steps:
  - step_id: load
    ps_type: file.load
    source: {path: "landing/{folder}/orders.csv"}
    destination: {dataset: raw, table: orders}
  - step_id: copy
    ps_type: bigquery.query
    depends_on: [load]
    source: {query: "SELECT * FROM {tenant_id}_raw.orders"}
    destination: {dataset: shards, table: "part_{shard}"}
"""


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"folder": "../../etc"},
            "parameters.folder: is used in a file path or URL (steps.load.source.path) as {folder}: "
            "'../../etc' is not allowed in a path or URL",
        ),
        (
            {"shard": "a-b"},
            "parameters.shard: is used in a table name (steps.copy.destination.table) as {shard}: "
            "{shard} = 'a-b' cannot be part of a table name",
        ),
    ],
)
def test_a_refused_placeholder_value_names_where_it_is_used(given: dict[str, str], message: str) -> None:
    spec = parse_pipeline(FILE_AND_TABLE, "by_folder.yaml")
    with pytest.raises(ParameterError) as caught:
        resolve_run_parameters(spec, given)
    assert f"parameters.{caught.value.name}: {caught.value.reason}".startswith(message), caught.value.reason


def test_a_path_placeholder_takes_what_a_path_may_hold() -> None:
    spec = parse_pipeline(FILE_AND_TABLE, "by_folder.yaml")
    # '-' and '.' are fine in a folder name, though not in a table name
    assert resolve_run_parameters(spec, {"folder": "2026-12-01.v2"})["folder"] == "2026-12-01.v2"
