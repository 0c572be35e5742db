"""One Warehouse contract, run on the embedded engine (DuckDB + sqlglot) and on BigQuery's API (bqemulator).

Every test asserts the same answer on both engines: pipeline SQL is written once, in GoogleSQL. Fixtures live here,
not in tests/contract/conftest.py, so this suite owns its own setup.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.errors import TerminalError, TransientError
from shared.ports.warehouse import StepJobs, Warehouse
from tests.processor_support import BQ_PROJECT, engine_fixture, open_warehouse  # noqa: F401

UTC = dt.UTC

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("day", pa.date32()),
        pa.field("amount", pa.decimal128(38, 9)),
        pa.field("score", pa.float64()),
        pa.field("active", pa.bool_()),
        pa.field("tags", pa.list_(pa.string())),
    ]
)


def rows(ids: range) -> pa.Table:
    """Rows for SCHEMA, but with every field nullable: loads must follow the table's schema, not the data's."""
    return pa.table(
        {
            "id": pa.array(list(ids), pa.int64()),
            "name": [f"n{i}" for i in ids],
            "ts": pa.array(
                [dt.datetime(2026, 11, 1, i % 24, 30, tzinfo=UTC) for i in ids], pa.timestamp("us", tz="UTC")
            ),
            "day": [dt.date(2026, 11, 1 + i % 28) for i in ids],
            "amount": pa.array([Decimal(i) / 4 for i in ids], pa.decimal128(38, 9)),
            "score": [i * 1.5 for i in ids],
            "active": [i % 2 == 0 for i in ids],
            "tags": [[f"t{i}", "all"] for i in ids],
        }
    )


# -- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture
def wh(engine: str, tmp_path: Path) -> Iterator[Warehouse]:
    warehouse = open_warehouse(engine, tmp_path / "warehouse.duckdb", request_timeout_s=10, job_timeout_s=60)
    yield warehouse
    warehouse.close()


@pytest.fixture
def dataset(wh: Warehouse, engine: str) -> Iterator[str]:
    """A fresh dataset per test; on BigQuery it is dropped with its contents afterwards (bqemulator has no reset)."""
    name = f"contract_{uuid.uuid4().hex[:12]}"
    assert wh.create_dataset(name)
    yield name
    if engine == "bigquery":
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        client = bigquery.Client(
            project=BQ_PROJECT,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=os.environ["CLOUDACT_BIGQUERY_ENDPOINT"]),
        )
        client.delete_dataset(
            name, delete_contents=True, not_found_ok=True, retry=bigquery.DEFAULT_RETRY.with_deadline(5), timeout=10
        )
        client.close()  # type: ignore[no-untyped-call]


def count(wh: Warehouse, table: str) -> int:
    return int(wh.query(f"SELECT COUNT(*) AS n FROM {table}").column("n")[0].as_py())


# -- datasets and tables -----------------------------------------------------------------------------------------


def test_create_dataset_is_idempotent_and_require_dataset_only_checks(wh: Warehouse, dataset: str) -> None:
    wh.create_table(f"{dataset}.t", SCHEMA)
    assert wh.create_dataset(dataset) is False  # there already: nothing created, nothing dropped
    wh.require_dataset(dataset)
    assert wh.table_exists(f"{dataset}.t")


def test_a_missing_dataset_is_refused_naming_it_and_what_to_provision(engine: str, tmp_path: Path) -> None:
    """Runtime paths never create datasets (a tenant's BigQuery identity may not): the error says what to do. The
    embedded warehouse does the same when built without `create_missing_datasets` (the local runtime's default)."""
    wh: DuckDBWarehouse | BigQueryWarehouse
    if engine == "duckdb":
        wh = DuckDBWarehouse(tmp_path / "strict.duckdb", create_missing_datasets=False, tenant_id="acme")
    else:
        endpoint = os.environ["CLOUDACT_BIGQUERY_ENDPOINT"]
        wh = BigQueryWarehouse(BQ_PROJECT, endpoint=endpoint, retry_deadline_s=5, tenant_id="acme")
    missing = f"acme_missing_{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(TerminalError, match=rf"{missing} does not exist.*cloudact tenants provision acme"):
            wh.require_dataset(missing)
        if isinstance(wh, DuckDBWarehouse):
            assert missing not in wh.list_datasets()  # nothing was created on the way
    finally:
        wh.close()


def test_create_table_then_table_exists(wh: Warehouse, dataset: str) -> None:
    table = f"{dataset}.events"
    assert not wh.table_exists(table)
    assert not wh.table_exists(f"missing_{uuid.uuid4().hex[:8]}.events")
    wh.create_table(table, SCHEMA, partition_field="ts", cluster_by=["id", "name"])
    assert wh.table_exists(table)
    wh.create_table(table, pa.schema([pa.field("other", pa.string())]))  # exists: a no-op, schema untouched
    assert wh.query(f"SELECT * FROM {table}").schema.names == SCHEMA.names


# -- loads -------------------------------------------------------------------------------------------------------


def test_write_table_append_then_truncate(wh: Warehouse, dataset: str) -> None:
    table = f"{dataset}.facts"
    wh.create_table(table, SCHEMA, partition_field="ts", cluster_by=["id"])
    assert wh.write_table(table, rows(range(0, 3))) == 3
    assert wh.write_table(table, rows(range(3, 5)), mode="append") == 2
    assert count(wh, table) == 5
    assert wh.write_table(table, rows(range(7, 8)), mode="truncate") == 1
    assert count(wh, table) == 1
    got = wh.query(f"SELECT * FROM {table}").to_pylist()
    assert got == [
        {
            "id": 7,
            "name": "n7",
            "ts": dt.datetime(2026, 11, 1, 7, 30, tzinfo=UTC),
            "day": dt.date(2026, 11, 8),
            "amount": Decimal("1.75"),
            "score": 10.5,
            "active": False,
            "tags": ["t7", "all"],
        }
    ]


def test_write_table_creates_a_missing_table(wh: Warehouse, dataset: str) -> None:
    table = f"{dataset}.fresh"
    assert wh.write_table(table, rows(range(2))) == 2
    assert wh.table_exists(table)
    assert count(wh, table) == 2


# -- append-only history rows ------------------------------------------------------------------------------------

HISTORY = pa.schema([("run_id", pa.string()), ("status", pa.string()), ("end_time", pa.timestamp("us", tz="UTC"))])


def _history(*runs: tuple[str, str, int]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"run_id": r, "status": s, "end_time": dt.datetime(2026, 11, 2, h, tzinfo=UTC)} for r, s, h in runs],
        schema=HISTORY,
    )


def test_append_rows_then_latest_per_key_survives_a_repeated_write(wh: Warehouse, dataset: str) -> None:
    """A redelivered history write appends the same rows again: DuckDB skips known keys; BigQuery drops repeated
    insertIds only within its dedup window (bqemulator never does), so what readers see is the latest row per run."""
    table = f"{dataset}.history"
    wh.create_table(table, HISTORY)
    key = ("run_id", "status", "end_time")
    assert wh.append_rows(table, _history(("r1", "SUCCEEDED", 1), ("r2", "FAILED", 2)), key) == 2
    assert wh.append_rows(table, _history(("r1", "SUCCEEDED", 1), ("r2", "FAILED", 2)), key) == 2  # redelivered
    assert wh.append_rows(table, _history(("r2", "SUCCEEDED", 5)), key) == 1  # r2 finalised again, later
    latest = (
        "SELECT run_id, status FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY end_time DESC) AS rn "
        f"FROM {table}) WHERE rn = 1 ORDER BY run_id"
    )
    assert wh.query(latest).to_pylist() == [
        {"run_id": "r1", "status": "SUCCEEDED"},
        {"run_id": "r2", "status": "SUCCEEDED"},
    ]
    assert count(wh, table) == (3 if isinstance(wh, DuckDBWarehouse) else 5)  # DuckDB: exactly idempotent by key


# -- step jobs ---------------------------------------------------------------------------------------------------


def test_a_step_handle_answers_the_same_and_is_cancelled_with_its_session(wh: Warehouse, dataset: str) -> None:
    session = wh.session()
    step = session.for_step(StepJobs("acme", "daily", "run_abc", "load", 1))
    assert step.query("SELECT 1 AS x").to_pylist() == [{"x": 1}]
    assert step.execute(f"CREATE TABLE {dataset}.made AS SELECT 1 AS x") == 0
    assert count(wh, f"{dataset}.made") == 1
    session.cancel_running()  # the engine cancels the session it made; the step's handle shares its work
    with pytest.raises(TerminalError, match="cancelled"):
        step.query("SELECT 2 AS x")


# -- queries -----------------------------------------------------------------------------------------------------


def test_query_binds_named_parameters_of_each_type(wh: Warehouse, dataset: str) -> None:
    table = f"{dataset}.facts"
    wh.write_table(table, rows(range(6)))
    params: dict[str, Any] = {
        "name": "n2",
        "min_id": 1,
        "since": dt.date(2026, 11, 2),
        "before": dt.datetime(2026, 11, 1, 5, tzinfo=UTC),
        "ids": [1, 2, 3, 4, 9],
        "active": True,
        "factor": 2.0,
        "unit": Decimal("0.25"),
    }
    got = wh.query(
        f"""
        SELECT id, @factor * score AS doubled, amount / @unit AS units
        FROM `{table}`
        WHERE (name = @name OR id > @min_id) AND day >= @since AND ts < @before
          AND id IN UNNEST(@ids) AND active = @active
        ORDER BY id
        """,
        params,
    ).to_pylist()
    assert [r["id"] for r in got] == [2, 4]
    assert [r["doubled"] for r in got] == [6.0, 12.0]
    assert [Decimal(r["units"]) for r in got] == [Decimal(2), Decimal(4)]


def test_query_with_an_empty_array_parameter_matches_nothing(wh: Warehouse, dataset: str) -> None:
    wh.write_table(f"{dataset}.facts", rows(range(3)))
    got = wh.query(f"SELECT id FROM {dataset}.facts WHERE name IN UNNEST(@names)", {"names": []})
    assert got.num_rows == 0


def test_googlesql_functions_give_the_same_answer(wh: Warehouse) -> None:
    got = wh.query(
        """
        SELECT
          x,
          SAFE_DIVIDE(10, x - 2) AS ratio,
          TIMESTAMP_TRUNC(TIMESTAMP_ADD(TIMESTAMP '2026-11-22 13:45:10+00', INTERVAL x HOUR), HOUR) AS hour,
          FORMAT_DATE('%Y-%m-%d', DATE_ADD(DATE '2026-11-20', INTERVAL x DAY)) AS day,
          EXTRACT(DAYOFWEEK FROM DATE_ADD(DATE '2026-11-20', INTERVAL x DAY)) AS dow,
          DATE_TRUNC(DATE_ADD(DATE '2026-11-20', INTERVAL x * 10 DAY), MONTH) AS month
        FROM UNNEST(GENERATE_ARRAY(1, 4)) AS x
        ORDER BY x
        """
    ).to_pylist()
    assert got == [
        {
            "x": x,
            "ratio": None if x == 2 else 10 / (x - 2),
            "hour": dt.datetime(2026, 11, 22, 13 + x, tzinfo=UTC),
            "day": f"2026-11-{20 + x}",
            "dow": [7, 1, 2, 3][x - 1],  # 2026-11-21 is a Saturday; BigQuery counts Sunday as 1
            "month": dt.date(2026, 11, 1) if x == 1 else dt.date(2026, 12, 1),
        }
        for x in range(1, 5)
    ]


def test_result_columns_have_bigquery_types(wh: Warehouse) -> None:
    """Query results feed other tables and code: literal, aggregate and cast types must not depend on the engine."""
    got = wh.query(
        """
        SELECT 1 AS i, 1.5 AS f, SUM(x) AS s, COUNT(*) AS n, AVG(x) AS a, 10 / 4 AS q, DIV(10, 4) AS d,
          CAST(2.5 AS NUMERIC) AS num,
          EXTRACT(WEEK FROM DATE '2026-11-22') AS week, EXTRACT(WEEK FROM DATE '2026-01-03') AS week0,
          EXTRACT(ISOWEEK FROM DATE '2026-11-22') AS isoweek,
          EXTRACT(DAYOFWEEK FROM TIMESTAMP '2026-11-22 10:00:00+00') AS dow,
          DATE_DIFF(DATE '2026-11-22', DATE '2026-11-01', DAY) AS days
        FROM UNNEST([1, 2, 3]) AS x
        """
    )
    assert got.to_pylist() == [
        {
            "i": 1,
            "f": 1.5,
            "s": 6,
            "n": 3,
            "a": 2.0,
            "q": 2.5,
            "d": 2,
            "num": Decimal("2.5"),
            "week": 47,
            "week0": 0,
            "isoweek": 47,
            "dow": 1,
            "days": 21,
        }
    ]
    types = {f.name: f.type for f in got.schema}
    assert types["num"] == pa.decimal128(38, 9)
    assert {types[c] for c in ("i", "s", "n", "d", "week", "dow", "days")} == {pa.int64()}
    assert {types[c] for c in ("f", "a", "q")} == {pa.float64()}


# -- DDL / DML ---------------------------------------------------------------------------------------------------


def test_execute_returns_affected_rows(wh: Warehouse, dataset: str) -> None:
    target, staging = f"{dataset}.target", f"{dataset}.staging"
    wh.write_table(target, rows(range(3)))
    wh.write_table(staging, rows(range(2, 5)))

    assert wh.execute(f"CREATE TABLE {dataset}.copy AS SELECT * FROM {target}") == 0  # DDL: 0 on both engines
    assert count(wh, f"{dataset}.copy") == 3
    assert wh.execute(f"INSERT INTO {dataset}.copy SELECT * FROM {staging} WHERE id >= @from", {"from": 3}) == 2
    assert count(wh, f"{dataset}.copy") == 5

    merged = wh.execute(
        f"""
        MERGE {target} T
        USING {staging} S
        ON T.id = S.id
        WHEN MATCHED THEN UPDATE SET name = CONCAT(S.name, @suffix)
        WHEN NOT MATCHED THEN INSERT (id, name) VALUES (S.id, S.name)
        """,
        {"suffix": "-merged"},
    )
    assert merged == 3  # id 2 updated, ids 3 and 4 inserted
    names = wh.query(f"SELECT name FROM {target} ORDER BY id").column("name").to_pylist()
    assert names == ["n0", "n1", "n2-merged", "n3", "n4"]
    assert wh.execute(f"DELETE FROM {target} WHERE id < @cut", {"cut": 2}) == 2
    assert wh.execute(f"UPDATE {target} SET active = TRUE WHERE TRUE") == 3


# -- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT FROM WHERE", "SELECT (1"])
def test_bad_sql_is_terminal(wh: Warehouse, sql: str) -> None:
    with pytest.raises(TerminalError):
        wh.query(sql)


def test_unknown_column_is_terminal(wh: Warehouse, dataset: str) -> None:
    wh.write_table(f"{dataset}.facts", rows(range(1)))
    with pytest.raises(TerminalError, match="no_such_column"):
        wh.query(f"SELECT no_such_column FROM {dataset}.facts")


def test_missing_table_is_terminal(wh: Warehouse, dataset: str) -> None:
    with pytest.raises(TerminalError, match="nope"):
        wh.query(f"SELECT * FROM {dataset}.nope")
    with pytest.raises(TerminalError, match="nope"):
        wh.execute(f"INSERT INTO {dataset}.nope (id) VALUES (1)")


def test_missing_parameter_is_terminal(wh: Warehouse) -> None:
    with pytest.raises(TerminalError):
        wh.query("SELECT @absent AS a")


def test_bad_table_name_is_terminal(wh: Warehouse) -> None:
    with pytest.raises(TerminalError):
        wh.table_exists("no_dataset_part")


# -- concurrency -------------------------------------------------------------------------------------------------


def test_eight_threads_share_one_warehouse(wh: Warehouse, dataset: str) -> None:
    table = f"{dataset}.shared"
    wh.create_table(table, SCHEMA)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            wh.write_table(table, rows(range(i * 10, i * 10 + 3)))
            got = wh.query(
                f"SELECT COUNT(*) AS n FROM {table} WHERE id >= @lo AND id < @hi", {"lo": i * 10, "hi": i * 10 + 10}
            )
            assert got.column("n")[0].as_py() == 3
        except BaseException as e:  # collected: an assertion in a thread would otherwise be lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert count(wh, table) == 24


# -- BigQuery failure modes (no emulator needed) -----------------------------------------------------------------


def test_unreachable_bigquery_is_transient_within_the_retry_deadline() -> None:
    """The client's own defaults would retry for 600 s; the adapter must give up after its deadline."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wh = BigQueryWarehouse(BQ_PROJECT, endpoint=f"http://127.0.0.1:{port}", retry_deadline_s=1, request_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(TransientError):
        wh.query("SELECT 1 AS one")
    with pytest.raises(TransientError):
        wh.table_exists("ds.t")
    assert time.monotonic() - started < 15
    wh.close()


# -- per-step sessions -------------------------------------------------------------------------------------------


def test_a_cancelled_session_starts_nothing_and_leaves_the_warehouse_usable(wh: Warehouse, dataset: str) -> None:
    session = wh.session()
    assert session.query("SELECT 1 AS x").to_pylist() == [{"x": 1}]  # same data, same answers
    other = wh.session()
    session.cancel_running()
    session.cancel_running()  # idempotent
    with pytest.raises(TerminalError, match="cancelled"):
        session.execute(f"CREATE TABLE {dataset}.late AS SELECT 1 AS x")
    assert not wh.table_exists(f"{dataset}.late")
    assert other.query("SELECT 2 AS x").to_pylist() == [{"x": 2}]  # another step's session is untouched
    session.close()  # a session's close leaves the shared connection/client open
    assert wh.query("SELECT 3 AS x").to_pylist() == [{"x": 3}]
