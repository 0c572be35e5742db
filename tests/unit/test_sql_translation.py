"""GoogleSQL -> DuckDB rewrites (shared/adapters/googlesql_to_duckdb.py), each checked by the rows DuckDB returns for
a small table of arrays of STRUCTs, against values worked out by hand or in Python; the SQL check's UNNEST rule; and
case-insensitive @PARAM names on the validation and run paths."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.adapters.googlesql_errors import in_user_terms, locate_in_source
from shared.errors import TerminalError
from shared.pipelines.sql_scope import TableScope, checked_query, query_parameter_names

KV = pa.struct([("key", pa.string()), ("value", pa.string())])
CREDIT = pa.struct([("type", pa.string()), ("amount", pa.float64())])
ROWS = pa.table(
    {
        "id": [1, 2, 3, 4],
        "cost": [10.0, 20.0, 30.0, 40.0],
        "day": [dt.date(2026, 10, 1), dt.date(2026, 10, 4), dt.date(2026, 10, 5), dt.date(2027, 1, 3)],
        "labels": pa.array(
            [
                [{"key": "app", "value": "web"}, {"key": "env", "value": "prod"}],
                [],
                [{"key": "env", "value": "dev"}],
                None,
            ],
            pa.list_(KV),
        ),
        "credits": pa.array(
            [
                [{"type": "SUD", "amount": -1.0}, {"type": "CUD", "amount": -2.0}],
                [],
                [{"type": "SUD", "amount": -3.0}],
                [],
            ],
            pa.list_(CREDIT),
        ),
        "tags": [["a", "b"], [], ["c"], ["d", "e", "f"]],
    }
)


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    warehouse = DuckDBWarehouse(tmp_path / "wh.duckdb")
    warehouse.execute("CREATE SCHEMA IF NOT EXISTS acme_b")
    warehouse.write_table("acme_b.t", ROWS)
    yield warehouse
    warehouse.close()


def rows(wh: DuckDBWarehouse, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return wh.query(sql, params).to_pylist()


def test_an_unnest_alias_named_like_its_column_is_the_element(wh: DuckDBWarehouse) -> None:
    sql = (
        "SELECT id, labels.value AS app FROM acme_b.t LEFT JOIN UNNEST(labels) AS labels ON labels.key = 'app' "
        "ORDER BY id"
    )
    assert rows(wh, sql) == [
        {"id": 1, "app": "web"},
        {"id": 2, "app": None},
        {"id": 3, "app": None},
        {"id": 4, "app": None},
    ]
    pairs = rows(wh, "SELECT id, labels.key FROM acme_b.t LEFT JOIN UNNEST(labels) AS labels ORDER BY id, key")
    assert [(r["id"], r["key"]) for r in pairs] == [(1, "app"), (1, "env"), (2, None), (3, "env"), (4, None)]


def test_a_bare_unnest_alias_in_the_select_list_keeps_its_name(wh: DuckDBWarehouse) -> None:
    got = rows(wh, "SELECT tags FROM acme_b.t, UNNEST(tags) AS tags WHERE id = 1 ORDER BY tags")
    assert got == [{"tags": "a"}, {"tags": "b"}]


def test_correlated_unnest_in_scalar_subqueries(wh: DuckDBWarehouse) -> None:
    sql = """
        SELECT id,
               (SELECT SUM(c.amount) FROM UNNEST(credits) c) AS aliased,
               (SELECT SUM(amount) FROM UNNEST(credits) WHERE type = 'SUD') AS unaliased_fields,
               (SELECT COUNT(*) FROM UNNEST(tags)) AS scalar_elements,
               (SELECT value FROM UNNEST(labels) WHERE key = 'env') AS env
        FROM acme_b.t ORDER BY id
    """
    assert rows(wh, sql) == [
        {"id": 1, "aliased": -3.0, "unaliased_fields": -1.0, "scalar_elements": 2, "env": "prod"},
        {"id": 2, "aliased": None, "unaliased_fields": None, "scalar_elements": 0, "env": None},
        {"id": 3, "aliased": -3.0, "unaliased_fields": -3.0, "scalar_elements": 1, "env": "dev"},
        {"id": 4, "aliased": None, "unaliased_fields": None, "scalar_elements": 3, "env": None},
    ]


def test_a_nested_query_with_its_own_alias_of_the_same_name_keeps_it(wh: DuckDBWarehouse) -> None:
    sql = """
        SELECT c.type AS outer_type,
               (SELECT COUNT(*) FROM UNNEST(tags) AS c WHERE c = 'a') AS inner_a
        FROM acme_b.t, UNNEST(credits) AS c WHERE id = 1 ORDER BY outer_type
    """
    assert rows(wh, sql) == [{"outer_type": "CUD", "inner_a": 1}, {"outer_type": "SUD", "inner_a": 1}]


def test_with_offset_counts_from_zero_and_using_keeps_the_alias(wh: DuckDBWarehouse) -> None:
    got = rows(wh, "SELECT pos, tag FROM acme_b.t, UNNEST(tags) AS tag WITH OFFSET AS pos WHERE id = 4 ORDER BY pos")
    assert got == [{"pos": 0, "tag": "d"}, {"pos": 1, "tag": "e"}, {"pos": 2, "tag": "f"}]
    sql = (
        "WITH costs AS (SELECT day, cost FROM acme_b.t) SELECT day, IFNULL(cost, 0) AS cost "
        "FROM UNNEST(GENERATE_DATE_ARRAY(DATE '2026-10-01', DATE '2026-10-03')) AS day LEFT JOIN costs USING (day) "
        "ORDER BY day"
    )
    assert [r["cost"] for r in rows(wh, sql)] == [10.0, 0, 0]


def test_array_subquery_offset_and_array_agg_limit(wh: DuckDBWarehouse) -> None:
    sql = "SELECT ARRAY(SELECT c.type FROM UNNEST(credits) c ORDER BY c.amount)[OFFSET(0)] AS biggest FROM acme_b.t"
    assert rows(wh, sql + " WHERE id = 1") == [{"biggest": "CUD"}]
    got = rows(wh, "SELECT ARRAY_AGG(id ORDER BY cost DESC LIMIT 2) AS top FROM acme_b.t")
    assert got == [{"top": [4, 3]}]
    got = rows(wh, "SELECT ARRAY_AGG(t IGNORE NULLS ORDER BY t LIMIT 3) AS x FROM acme_b.t, UNNEST(tags) AS t")
    assert got == [{"x": ["a", "b", "c"]}]


def test_approx_quantiles_are_exact_discrete_quantiles(wh: DuckDBWarehouse) -> None:
    got = rows(wh, "SELECT APPROX_QUANTILES(cost, 4) AS q, APPROX_QUANTILES(cost, 2)[OFFSET(1)] AS med FROM acme_b.t")
    assert got[0]["q"][0] == 10.0 and got[0]["q"][-1] == 40.0 and len(got[0]["q"]) == 5
    assert got[0]["med"] in (20.0, 30.0)  # either middle value is a correct median of four
    with pytest.raises(TerminalError, match="integer literal"):
        wh.query("SELECT APPROX_QUANTILES(cost, @n) FROM acme_b.t", {"n": 4})


def test_week_functions_match_bigquerys_definitions(wh: DuckDBWarehouse) -> None:
    days = [dt.date(2024, 12, 25) + dt.timedelta(days=i) for i in range(800)]
    table = pa.table({"d": days})
    wh.write_table("acme_b.days", table)
    got = rows(
        wh,
        "SELECT d, DATE_TRUNC(d, WEEK) AS sunday, DATE_TRUNC(d, WEEK(MONDAY)) AS monday, "
        "EXTRACT(WEEK FROM d) AS w_sun, EXTRACT(WEEK(MONDAY) FROM d) AS w_mon, "
        "EXTRACT(WEEK(THURSDAY) FROM d) AS w_thu, "
        "EXTRACT(ISOWEEK FROM d) AS iso, DATE_ADD(d, INTERVAL 1 MONTH) AS next_month FROM acme_b.days ORDER BY d",
    )
    for r in got:
        d: dt.date = r["d"]
        assert r["sunday"] == d - dt.timedelta(days=(d.weekday() + 1) % 7)
        assert r["monday"] == d - dt.timedelta(days=d.weekday())
        assert r["w_sun"] == int(d.strftime("%U")) and r["w_mon"] == int(d.strftime("%W"))
        first_thursday = dt.date(d.year, 1, 1) + dt.timedelta(days=(3 - dt.date(d.year, 1, 1).weekday()) % 7)
        assert r["w_thu"] == (0 if d < first_thursday else (d - first_thursday).days // 7 + 1)
        assert r["iso"] == d.isocalendar()[1]
        assert isinstance(r["next_month"], dt.date) and not isinstance(r["next_month"], dt.datetime)


def test_numeric_types_and_ieee_divide(wh: DuckDBWarehouse) -> None:
    got = rows(
        wh,
        "SELECT SUM(CAST(cost AS NUMERIC)) AS n, SUM(CAST(cost AS BIGNUMERIC)) AS b, IEEE_DIVIDE(1, 0) AS inf, "
        "IEEE_DIVIDE(0, 0) AS nan FROM acme_b.t",
    )[0]
    assert got["n"] == Decimal("100") and isinstance(got["n"], Decimal) and isinstance(got["b"], Decimal)
    assert got["inf"] == math.inf and math.isnan(got["nan"])


def test_partition_pseudo_columns_are_refused_with_the_reason(wh: DuckDBWarehouse) -> None:
    with pytest.raises(TerminalError, match=r"_PARTITIONTIME is not available.*partition_field"):
        wh.query("SELECT COUNT(*) FROM acme_b.t WHERE _PARTITIONTIME >= TIMESTAMP '2026-10-01'")
    with pytest.raises(TerminalError, match="_PARTITIONDATE is not available"):
        wh.query("SELECT _PARTITIONDATE AS d FROM acme_b.t")


def test_parameter_names_ignore_case(wh: DuckDBWarehouse) -> None:
    for key in ("START", "start"):  # the name as written or in another case, as on BigQuery
        got = rows(wh, "SELECT COUNT(*) AS n FROM acme_b.t WHERE day >= @START", {key: dt.date(2026, 10, 4)})
        assert got == [{"n": 3}]
    scope = TableScope(tenant_marker="acme")
    canonical, issues = checked_query("SELECT * FROM acme_b.t WHERE day >= @Start_Date AND id > @ID", scope)
    assert not issues and canonical is not None and "@start_date" in canonical and "@id" in canonical
    assert query_parameter_names("SELECT @RUN_DATE, @run_date, @X") == ["run_date", "x"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM UNNEST(acme_b.t)",
        "SELECT * FROM acme_b.t AS x, UNNEST(globex_sales.orders) AS o",
        "SELECT * FROM UNNEST(`globex_sales.orders`)",
        "SELECT * FROM UNNEST(proj.acme_b.t)",
        "SELECT * FROM UNNEST(read_parquet('x.parquet'))",
        "SELECT * FROM UNNEST(duckdb_tables())",
    ],
)
def test_unnest_takes_arrays_never_tables_or_table_functions(sql: str) -> None:
    scope = TableScope(tenant_marker="acme", other_tenants=frozenset({"globex"}), project_markers=frozenset({"proj"}))
    canonical, issues = checked_query(sql, scope)
    assert canonical is None and issues
    assert any("names a table" in i.message or "not allowed" in i.message for i in issues), issues


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM acme_b.t AS e, UNNEST(e.credits) AS c",
        "SELECT * FROM acme_b.t AS acme_x, UNNEST(acme_x.credits) AS c",
        "SELECT (SELECT SUM(amount) FROM UNNEST(project.credits)) AS s FROM acme_b.t",
        "SELECT x FROM UNNEST(GENERATE_ARRAY(1, 3)) AS x",
        "SELECT x FROM UNNEST(@values) AS x",
        "SELECT x FROM UNNEST([1, 2]) AS x",
    ],
)
def test_unnest_of_array_columns_paths_literals_and_parameters_is_accepted(sql: str) -> None:
    canonical, issues = checked_query(sql, TableScope(tenant_marker="acme", other_tenants=frozenset({"globex"})))
    assert not issues and canonical is not None


def test_errors_name_the_users_sql_not_the_translation(wh: DuckDBWarehouse) -> None:
    sql = "SELECT id,\n  labels.nope AS x\nFROM acme_b.t LEFT JOIN UNNEST(labels) AS labels"
    with pytest.raises(TerminalError) as caught:
        wh.query(sql)
    message = str(caught.value)
    assert "__labels_u" not in message and "line 2, column" in message and "labels.nope AS x" in message
    assert locate_in_source("SELECT a\nFROM t", 'Referenced column "zzz" not found') == ""
    with pytest.raises(TerminalError) as caught:
        wh.execute("CREATE TABLE acme_b.x AS\nSELECT SUM(amount) AS s\nFROM acme_b.t")
    assert "line 2, column 12 of your SQL: SELECT SUM(amount) AS s" in str(caught.value)
    with in_user_terms("SELECT 1"), pytest.raises(ValueError):
        raise ValueError("other errors pass through untouched")


def test_approx_count_distinct_is_the_exact_count(wh: DuckDBWarehouse) -> None:
    got = rows(wh, "SELECT APPROX_COUNT_DISTINCT(t) AS n FROM acme_b.t, UNNEST(tags) AS t")
    assert got == [{"n": 6}]


def test_parse_numeric_and_safe_functions(wh: DuckDBWarehouse) -> None:
    got = rows(
        wh,
        "SELECT PARSE_NUMERIC(' - 1.25') AS n, PARSE_BIGNUMERIC('2.5') AS b, SAFE.PARSE_NUMERIC('x') AS bad, "
        "SAFE.PARSE_DATE('%Y-%m-%d', 'not a date') AS no_date, SAFE.PARSE_DATE('%Y-%m-%d', '2026-10-01') AS day",
    )
    assert got == [
        {"n": Decimal("-1.25"), "b": Decimal("2.5"), "bad": None, "no_date": None, "day": dt.date(2026, 10, 1)}
    ]


def test_validation_accepts_upper_case_parameters_and_names_unknown_ones() -> None:
    from shared.pipelines.sql_scope import validate_sql_template
    from shared.pipelines.templating import ValidationScope

    scope = ValidationScope(tenant_id="acme", parameter_types={"start_date": "date"})
    sql = "SELECT * FROM {tenant_id}_b.t WHERE day >= @START_DATE AND day < @Run_Date"
    assert validate_sql_template(sql, scope) == []
    problems = validate_sql_template("SELECT * FROM {tenant_id}_b.t WHERE day >= @END_DATE", scope)
    assert len(problems) == 1 and problems[0][0] == 43 and "@END_DATE is not a parameter" in problems[0][1]


def test_numeric_division_and_average_stay_numeric(wh: DuckDBWarehouse) -> None:
    got = rows(
        wh,
        "SELECT AVG(CAST(cost AS NUMERIC)) AS a, SUM(CAST(cost AS NUMERIC)) / COUNT(*) AS per_row, "
        "SUM(CAST(cost AS NUMERIC)) / 3 AS third, SUM(CAST(cost AS NUMERIC)) / 2.5 AS by_float, cost / 4 AS plain "
        "FROM acme_b.t GROUP BY cost ORDER BY cost LIMIT 1",
    )[0]
    assert got["a"] == Decimal("10") and isinstance(got["a"], Decimal) and isinstance(got["per_row"], Decimal)
    assert got["third"] == Decimal("3.333333333")  # NUMERIC / INT64 is NUMERIC, rounded at 9 decimals
    assert isinstance(got["by_float"], float) and isinstance(got["plain"], float)  # FLOAT64 operands stay FLOAT64


def test_numeric_products_are_rounded_to_nine_decimals(wh: DuckDBWarehouse) -> None:
    got = rows(
        wh,
        "SELECT CAST('0.000000001' AS NUMERIC) * CAST('0.5' AS NUMERIC) AS half_up, "
        "CAST('-0.000000001' AS NUMERIC) * CAST('0.5' AS NUMERIC) AS half_down, "
        "SUM(CAST(cost AS NUMERIC) * CAST('0.333333333' AS NUMERIC)) AS summed FROM acme_b.t",
    )[0]
    assert got["half_up"] == Decimal("0.000000001") and got["half_down"] == Decimal("-0.000000001")
    # each product rounded first: 3.33333333 + 6.66666666 + 9.99999999 + 13.33333332
    assert got["summed"] == Decimal("33.33333330")


def test_select_star_keeps_the_unnest_alias_as_the_column_name(wh: DuckDBWarehouse) -> None:
    got = rows(wh, "SELECT * EXCEPT (labels, credits, tags, day, cost) FROM acme_b.t, UNNEST(tags) AS tag WHERE id = 1")
    assert got == [{"id": 1, "tag": "a"}, {"id": 1, "tag": "b"}]


def test_formatting_and_conversions(wh: DuckDBWarehouse) -> None:
    got = rows(
        wh,
        "SELECT FORMAT('%d items at %.2f (%s)', 3, cost, 'x') AS f, DATE_FROM_UNIX_DATE(20000) AS d, "
        "BYTE_LENGTH('é') AS b, PARSE_TIMESTAMP('%Y-%m-%d %H:%M', '2026-10-01 05:06') AS ts, "
        "EXTRACT(DATE FROM PARSE_TIMESTAMP('%Y-%m-%d %H:%M', '2026-10-01 23:06')) AS day, "
        "TIME(PARSE_TIMESTAMP('%Y-%m-%d %H:%M', '2026-10-01 05:06')) AS t FROM acme_b.t WHERE id = 1",
    )
    assert got == [
        {
            "f": "3 items at 10.00 (x)",
            "d": dt.date(2024, 10, 4),
            "b": 2,
            "ts": dt.datetime(2026, 10, 1, 5, 6, tzinfo=dt.UTC),
            "day": dt.date(2026, 10, 1),
            "t": dt.time(5, 6),
        }
    ]


def test_array_subquery_over_an_unnest_named_like_its_column(wh: DuckDBWarehouse) -> None:
    sql = (
        "SELECT id, ARRAY(SELECT labels.value FROM UNNEST(labels) AS labels WHERE labels.key = 'env')[SAFE_OFFSET(0)]"
        " AS env, ARRAY(SELECT AS STRUCT c.type, c.amount FROM UNNEST(credits) AS c ORDER BY c.amount)[SAFE_OFFSET(0)]"
        ".type AS biggest FROM acme_b.t ORDER BY id"
    )
    assert rows(wh, sql) == [
        {"id": 1, "env": "prod", "biggest": "CUD"},
        {"id": 2, "env": None, "biggest": None},
        {"id": 3, "env": "dev", "biggest": "SUD"},
        {"id": 4, "env": None, "biggest": None},
    ]


def test_pivot_columns_are_named_as_in_bigquery(wh: DuckDBWarehouse) -> None:
    sql = (
        "SELECT * FROM (SELECT id, cost FROM acme_b.t) PIVOT (SUM(cost) AS total FOR id IN (1, 2 AS two)) "
        "ORDER BY total_1"
    )
    assert rows(wh, sql) == [{"total_1": 10.0, "total_two": 20.0}]


def test_numeric_arithmetic_with_columns_follows_the_columns_type(wh: DuckDBWarehouse) -> None:
    wh.execute(
        "CREATE TABLE acme_b.prices AS SELECT CAST('0.333333333' AS NUMERIC) AS u, 0.5 AS f, 4 AS i "
        "UNION ALL SELECT CAST('0.666666667' AS NUMERIC), 0.25, 8"
    )
    got = rows(
        wh,
        "SELECT SUM(CAST('1.5' AS NUMERIC) * u) AS by_numeric, SUM(CAST('1.5' AS NUMERIC) * f) AS by_float, "
        "SUM(CAST('1.5' AS NUMERIC) * i) AS by_int, MAX(CAST('1' AS NUMERIC) / i) AS per_int, "
        "MAX(CAST('1' AS NUMERIC) / f) AS per_float, CAST('1.5' AS NUMERIC) * 1.5 AS literal FROM acme_b.prices",
    )[0]
    # NUMERIC x NUMERIC rounds each product to 9 decimals: 0.4999999995 -> 0.500000000, 1.0000000005 -> 1.000000001
    assert got["by_numeric"] == Decimal("1.500000001") and isinstance(got["by_numeric"], Decimal)
    assert isinstance(got["by_float"], float) and got["by_float"] == pytest.approx(1.125)
    assert got["by_int"] == Decimal("18") and got["per_int"] == Decimal("0.25")
    assert isinstance(got["per_float"], float) and isinstance(got["literal"], float)
