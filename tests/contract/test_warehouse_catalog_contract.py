"""The WarehouseCatalog contract (list_tables, dry_run) on DuckDB and on BigQuery's API (bqemulator): the same
answers on both, and a dry run changes nothing."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import TerminalError
from shared.ports.warehouse import Warehouse, WarehouseCatalog
from tests.contract.test_warehouse_contract import rows
from tests.processor_support import engine_fixture, open_warehouse  # noqa: F401


@pytest.fixture
def wh(engine: str, tmp_path: Path) -> Iterator[Warehouse]:
    warehouse = open_warehouse(engine, tmp_path / "warehouse.duckdb", request_timeout_s=10, job_timeout_s=60)
    yield warehouse
    warehouse.close()


@pytest.fixture
def dataset(wh: Warehouse) -> Iterator[str]:
    """A fresh dataset, made and dropped with GoogleSQL DDL (the same statements on both engines)."""
    name = f"catalog_{uuid.uuid4().hex[:12]}"
    wh.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
    yield name
    wh.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def catalog(wh: Warehouse) -> WarehouseCatalog:
    assert isinstance(wh, WarehouseCatalog)
    return wh


def test_list_tables_names_tables_with_their_row_counts(wh: Warehouse, dataset: str) -> None:
    wh.write_table(f"{dataset}.facts", rows(range(7)))
    wh.write_table(f"{dataset}.empty", rows(range(1)).slice(0, 0))
    tables = catalog(wh).list_tables(dataset)
    assert [(t.dataset, t.table, t.kind, t.rows) for t in tables] == [
        (dataset, "empty", "table", 0),
        (dataset, "facts", "table", 7),
    ]


def test_list_tables_of_a_missing_dataset_is_empty(wh: Warehouse, dataset: str) -> None:
    assert catalog(wh).list_tables(f"{dataset}_absent") == []


def test_dry_run_names_the_result_columns_and_reads_nothing(wh: Warehouse, dataset: str) -> None:
    wh.write_table(f"{dataset}.facts", rows(range(3)))
    result = catalog(wh).dry_run(
        f"SELECT id, name, day FROM {dataset}.facts WHERE day >= @since AND name != @who",
        {"since": dt.date(2026, 1, 1), "who": "x"},
    )
    assert [name for name, _ in result.columns] == ["id", "name", "day"]
    assert all(kind for _, kind in result.columns)


def test_dry_run_creates_nothing(wh: Warehouse, dataset: str) -> None:
    """A dry run of a query never runs it: the tables it names stay as they are."""
    wh.write_table(f"{dataset}.facts", rows(range(3)))
    catalog(wh).dry_run(f"SELECT COUNT(*) AS n FROM {dataset}.facts")
    assert [t.rows for t in catalog(wh).list_tables(dataset)] == [3]


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("SELECT no_such_column FROM {ds}.facts", "no_such_column"),
        ("SELECT id FROM {ds}.nope", "nope"),
        ("SELEC id FROM {ds}.facts", ""),
    ],
)
def test_dry_run_refuses_what_would_fail(wh: Warehouse, dataset: str, sql: str, named: str) -> None:
    wh.write_table(f"{dataset}.facts", rows(range(1)))
    with pytest.raises(TerminalError, match=named):
        catalog(wh).dry_run(sql.format(ds=dataset))


def test_preview_returns_the_first_rows_with_the_tables_columns(wh: Warehouse, dataset: str) -> None:
    wh.write_table(f"{dataset}.facts", rows(range(12)))
    first = catalog(wh).preview(f"{dataset}.facts", 5)
    assert first.num_rows == 5 and first.schema.names == rows(range(1)).schema.names
    assert set(first.column("id").to_pylist()) <= set(range(12))
    assert catalog(wh).preview(f"{dataset}.facts", 100).num_rows == 12
    with pytest.raises(TerminalError):
        catalog(wh).preview(f"{dataset}.nope", 5)


def test_dry_run_names_column_types_as_googlesql_on_both_engines(wh: Warehouse, dataset: str) -> None:
    wh.write_table(f"{dataset}.facts", rows(range(3)))
    result = catalog(wh).dry_run(
        f"SELECT id, name, score, day, ts, amount, active, tags, DATETIME(ts) AS local_ts FROM {dataset}.facts"
    )
    assert dict(result.columns) == {
        "id": "INT64",
        "name": "STRING",
        "score": "FLOAT64",
        "day": "DATE",
        "ts": "TIMESTAMP",
        "amount": "NUMERIC",
        "active": "BOOL",
        "tags": "ARRAY<STRING>",
        "local_ts": "DATETIME",
    }
