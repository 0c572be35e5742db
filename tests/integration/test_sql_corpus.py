"""The SQL corpus (tests/data/sql_corpus/*.yaml): real BigQuery queries from Google's Cloud Billing export and
BigQuery documentation and public billing dashboards, each run as a `bigquery.query` step through the processor and
the warehouse over the sample billing export, and compared with an independent computation: hand-written DuckDB SQL
over the same arrow table (`billing`), which never goes through the GoogleSQL translation.

Each file: `source` (where the query comes from), `query` (GoogleSQL over `{tenant_id}_billing.gcp_billing_export` and
`{tenant_id}_billing.cloud_pricing_export`), `expected` (the independent DuckDB SQL over `billing` and `pricing`),
optional `parameters`, `ordered` (compare row order), `between`
({column: [low_column, high_column]} for BigQuery's approximate functions: the answer must lie between the expected
bounds), `refused` (a known limitation: the step must fail with this text in its error) and `bqemulator` (a documented
bqemulator difference from BigQuery: the emulator case is an expected failure, not ours) and `limitation` (a local
difference listed in docs/sql-compatibility.md: an expected failure on DuckDB, still counted as wrong).

Outcomes: right (same rows), refused (failed with the documented reason), wrong (anything else). The summary test
prints the figures per engine and writes them to test-artifacts/sql_corpus_<engine>.json; a wrong answer must be a
documented limitation (DuckDB) or bqemulator difference.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import yaml

from shared.pipelines.spec import StepSpec
from shared.ports.warehouse import Warehouse
from shared.processors.base import StepContext
from shared.processors.registry import get_processor
from shared.runtime.context import Context, get_context, set_context
from shared.runtime.settings import Settings
from shared.samples import billing_catalog
from shared.samples.billing import SCHEMA, generate_batches
from tests.processor_support import BQ_PROJECT, open_warehouse, require_bigquery

CORPUS = Path(__file__).resolve().parents[1] / "data" / "sql_corpus"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ROWS, SEED = 3000, 11
RUN_DATE = dt.date(2026, 11, 2)
NUMERIC = pa.decimal128(38, 9)
FLOAT_REL = 1e-9
"""Relative tolerance for FLOAT64 results only: the order of a floating-point sum is not fixed on either engine."""


@dataclass(frozen=True)
class CorpusQuery:
    id: str
    source: str
    query: str
    expected: str
    parameters: dict[str, Any] = field(default_factory=dict)
    ordered: bool = False
    between: dict[str, list[str]] = field(default_factory=dict)
    refused: str | None = None
    bqemulator: str | None = None
    limitation: str | None = None


def load_corpus() -> list[CorpusQuery]:
    queries = []
    for path in sorted(CORPUS.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        known = {"source", "query", "expected", "parameters", "ordered", "between", "refused", "bqemulator", "title"}
        known.add("limitation")
        assert set(raw) <= known, f"{path.name}: unknown keys {set(raw) - known}"
        assert str(raw["source"]).startswith("https://"), f"{path.name}: source must be a URL"
        raw.pop("title", None)
        queries.append(CorpusQuery(id=path.stem, **raw))
    return queries


QUERIES = load_corpus()


@dataclass
class World:
    """One engine's tenant with the sample export loaded, and the outcomes of the queries run on it."""

    engine: str
    tenant_id: str
    warehouse: Warehouse
    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def export() -> pa.Table:
    # the corpus's dates (parameters, expected SQL) are written for October 2026: pinned, whatever the CLI defaults
    batches = generate_batches(ROWS, SEED, start=dt.date(2026, 10, 1), days=30)
    return pa.Table.from_batches(list(batches), schema=SCHEMA)


@pytest.fixture(scope="module")
def pricing() -> pa.Table:
    return pricing_export()


def pricing_export() -> pa.Table:
    """A Cloud Billing pricing export (`cloud_pricing_export`, the fields the corpus reads) for the sample's SKUs: a
    list price and a 20 % cheaper tier from 1,000 pricing units, amounts in NUMERIC as in the real export."""
    tier = pa.struct(
        [("pricing_unit_quantity", pa.float64()), ("start_usage_amount", pa.float64()), ("usd_amount", NUMERIC)]
    )
    rows = []
    for service in billing_catalog.SERVICES:
        for sku in service.skus:
            price = Decimal(repr(sku.price)).quantize(Decimal("1e-9"))
            rows.append(
                {
                    "sku": {"id": sku.sku_id, "description": sku.description},
                    "service": {"id": service.service_id, "description": service.description},
                    "product_taxonomy": ["GCP", service.description, sku.scope],
                    "list_price": {
                        "pricing_unit": sku.pricing_unit,
                        "tiered_rates": [
                            {"pricing_unit_quantity": 1.0, "start_usage_amount": 0.0, "usd_amount": price},
                            {
                                "pricing_unit_quantity": 1.0,
                                "start_usage_amount": 1000.0,
                                "usd_amount": (price * Decimal("0.8")).quantize(Decimal("1e-9")),
                            },
                        ],
                    },
                }
            )
    schema = pa.schema(
        [
            ("sku", pa.struct([("id", pa.string()), ("description", pa.string())])),
            ("service", pa.struct([("id", pa.string()), ("description", pa.string())])),
            ("product_taxonomy", pa.list_(pa.string())),
            ("list_price", pa.struct([("pricing_unit", pa.string()), ("tiered_rates", pa.list_(tier))])),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


@pytest.fixture(scope="module")
def reference(export: pa.Table, pricing: pa.Table) -> Iterator[duckdb.DuckDBPyConnection]:
    """A plain DuckDB connection holding the export as `billing` and the pricing export as `pricing`: where the
    expected results are computed."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("billing", export)
    con.register("pricing", pricing)
    yield con
    con.close()


@pytest.fixture(scope="module", params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bqemulator)], name="world")
def world_fixture(
    request: pytest.FixtureRequest, export: pa.Table, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    engine: str = request.param
    if engine == "bigquery":
        require_bigquery()
    root = tmp_path_factory.mktemp(f"corpus_{engine}")
    tenant_id = f"t{uuid.uuid4().hex[:10]}"
    (root / "configs" / tenant_id).mkdir(parents=True)
    warehouse = open_warehouse(engine, root / "warehouse.duckdb", request_timeout_s=30, job_timeout_s=120)
    settings = Settings(runtime="embedded", home=root / "home", config_dir=root / "configs", project=BQ_PROJECT)
    previous = set_context(Context(settings, _warehouses={tenant_id: warehouse}))
    dataset = f"{tenant_id}_billing"
    # provisioning: create_dataset where the port has it (datasets are provisioned, steps only require them), else
    # the older ensure_dataset
    provision = getattr(warehouse, "create_dataset", None) or getattr(warehouse, "ensure_dataset")  # noqa: B009
    for name in (dataset, f"{tenant_id}_corpus"):
        provision(name)
    warehouse.write_table(f"{dataset}.gcp_billing_export", export, "truncate")
    warehouse.write_table(f"{dataset}.cloud_pricing_export", pricing_export(), "truncate")
    found = World(engine, tenant_id, warehouse)
    yield found
    _record(found)
    set_context(previous)
    if engine == "bigquery":
        client = warehouse._client  # type: ignore[attr-defined]
        for ds in client.list_datasets():
            if ds.dataset_id.startswith(f"{tenant_id}_"):
                client.delete_dataset(ds.reference, delete_contents=True, not_found_ok=True, timeout=30)
    warehouse.close()


def evaluate(world: World, reference: duckdb.DuckDBPyConnection, query: CorpusQuery) -> tuple[str, str]:
    """(outcome, detail) of one corpus query on one engine, remembered on the world."""
    if query.id in world.outcomes:
        return world.outcomes[query.id]
    try:
        got = _run_step(world, query)
    except Exception as exc:  # the step's error is the outcome: refused (documented) or wrong
        message = str(exc)
        if query.refused and query.refused in message:
            outcome = ("refused", query.refused)
        else:
            outcome = ("wrong", f"failed: {type(exc).__name__}: {message[:600]}")
    else:
        if query.refused:
            outcome = ("wrong", f"ran, but the corpus says it is refused ({query.refused}): update the file")
        else:
            expected = reference.sql(query.expected).to_arrow_table().to_pylist()
            problem = _difference(got, expected, query)
            outcome = ("right", "") if problem is None else ("wrong", problem)
    world.outcomes[query.id] = outcome
    return outcome


def _run_step(world: World, query: CorpusQuery) -> list[dict[str, Any]]:
    table = f"q_{query.id}"
    step = StepSpec.model_validate(
        {
            "step_id": "corpus",
            "ps_type": "bigquery.query",
            "source": {"query": query.query},
            "destination": {"dataset": "corpus", "table": table, "write_mode": "truncate"},
        }
    )
    ctx = StepContext(
        tenant_id=world.tenant_id,
        pipeline_id="sql_corpus",
        run_id=f"run_{uuid.uuid4().hex[:12]}",
        stage_id="corpus",
        attempt=1,
        run_date=RUN_DATE,
        parameters=_typed(query.parameters),
        variables={},
        warehouse=world.warehouse,
        deadline_monotonic=time.monotonic() + 300,
        runtime=get_context(),
    )
    get_processor("bigquery.query").run(step, ctx)
    return world.warehouse.query(f"SELECT * FROM {world.tenant_id}_corpus.{table}").to_pylist()


def _typed(parameters: dict[str, Any]) -> dict[str, Any]:
    """YAML gives dates as dt.date already; everything else is taken as written."""
    return dict(parameters)


# -- comparison --------------------------------------------------------------------------------------------------


def _difference(got: list[dict[str, Any]], expected: list[dict[str, Any]], query: CorpusQuery) -> str | None:
    bounds = {name for pair in query.between.values() for name in pair}
    want_columns = [c for c in (expected[0] if expected else {}) if c not in bounds]
    got_columns = list(got[0]) if got else []
    if got and expected and got_columns != want_columns:
        return f"columns {got_columns} != expected {want_columns}"
    if len(got) != len(expected):
        return f"{len(got)} rows, expected {len(expected)}"
    if not query.ordered:
        got = sorted(got, key=lambda row: _sort_key([row[c] for c in want_columns if c not in query.between]))
        expected = sorted(expected, key=lambda row: _sort_key([row[c] for c in want_columns if c not in query.between]))
    for index, (have, want) in enumerate(zip(got, expected, strict=True)):
        for column in want_columns:
            if column in query.between:
                low, high = (want[name] for name in query.between[column])
                if have[column] is None or not low <= have[column] <= high:
                    return f"row {index}: {column}={have[column]!r} not within [{low!r}, {high!r}]"
            elif not _same(have[column], want[column]):
                return f"row {index}: {column}={have[column]!r}, expected {want[column]!r}"
    return None


def _sort_key(values: list[Any]) -> str:
    return repr([round(v, 6) if isinstance(v, float) and math.isfinite(v) else v for v in values])


def _same(have: Any, want: Any) -> bool:
    """Exact for integers, decimals (NUMERIC must come back as a decimal, never a float), strings and times; relative
    1e-9 for floats."""
    if have is None or want is None:
        return have is None and want is None
    if isinstance(want, float) or isinstance(have, float):
        if not (isinstance(want, float | int) and isinstance(have, float | int)):
            return False
        if isinstance(want, bool) or isinstance(have, bool):
            return have == want
        if math.isnan(want) or math.isnan(have):
            return math.isnan(want) and math.isnan(have)
        return math.isclose(have, want, rel_tol=FLOAT_REL, abs_tol=1e-9)
    if isinstance(want, Decimal) or isinstance(have, Decimal):
        return isinstance(want, Decimal | int) and isinstance(have, Decimal | int) and Decimal(have) == Decimal(want)
    if isinstance(want, list) and isinstance(have, list):
        return len(have) == len(want) and all(_same(h, w) for h, w in zip(have, want, strict=True))
    if isinstance(want, dict) and isinstance(have, dict):
        return have.keys() == want.keys() and all(_same(have[k], want[k]) for k in want)
    return bool(have == want and type(have) is type(want))


# -- tests -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_corpus_query(world: World, reference: duckdb.DuckDBPyConnection, query: CorpusQuery) -> None:
    outcome, detail = evaluate(world, reference, query)
    if outcome == "wrong" and world.engine == "bigquery" and query.bqemulator:
        pytest.xfail(f"bqemulator differs from BigQuery here: {query.bqemulator} ({detail[:200]})")
    if outcome == "wrong" and world.engine == "duckdb" and query.limitation:
        pytest.xfail(f"known limitation (docs/sql-compatibility.md): {query.limitation} ({detail[:200]})")
    assert outcome in ("right", "refused"), f"{query.id} ({query.source}): {detail}"


def test_corpus_summary(world: World, reference: duckdb.DuckDBPyConnection) -> None:
    """Every query's outcome on this engine, printed and written as JSON; DuckDB has none wrong."""
    assert len(QUERIES) >= 40
    for query in QUERIES:
        evaluate(world, reference, query)
    figures = _record(world)
    print(f"\nSQL corpus on {world.engine}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    for query_id, (outcome, detail) in sorted(world.outcomes.items()):
        if outcome != "right":
            print(f"  {query_id}: {outcome} {detail[:300]}")
    explained = {q.id for q in QUERIES if (q.limitation if world.engine == "duckdb" else q.bqemulator)}
    unexplained = {k: v[1] for k, v in world.outcomes.items() if v[0] == "wrong" and k not in explained}
    assert not unexplained, unexplained


def _record(world: World) -> dict[str, int]:
    figures = {k: sum(1 for o, _ in world.outcomes.values() if o == k) for k in ("right", "refused", "wrong")}
    if len(world.outcomes) == len(QUERIES) and os.environ.get("CLOUDACT_SQL_CORPUS_REPORT", "1") != "0":
        ARTIFACTS.mkdir(exist_ok=True)
        report = {"engine": world.engine, "figures": figures, "queries": world.outcomes}
        (ARTIFACTS / f"sql_corpus_{world.engine}.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    return figures
