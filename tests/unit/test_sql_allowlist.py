"""Tenant SQL is accepted by an allow-list over the whole parsed statement: everyday GoogleSQL passes, and every
attack form of issue 13 (table functions, LATERAL, catalog names, unknown functions, other tenants' datasets written
with quotes, case, comments, unicode or nesting, reserved datasets) is refused before anything runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.errors import TerminalError
from shared.pipelines.sql_scope import (
    QueryScopeError,
    TableScope,
    check_select,
    checked_query,
    render_checked_sql,
    writable_dataset_problem,
)
from tests.processor_support import StepEnv, env_fixture, warehouse_fixture  # noqa: F401

SCOPE = TableScope("acme", project_markers=frozenset({"proj"}), other_tenants=frozenset({"globex", "acme_eu"}))

EVERYDAY = [
    "SELECT a, b AS c FROM acme_sales.orders WHERE a > 1 AND b IS NOT NULL ORDER BY a DESC LIMIT 10 OFFSET 5",
    "SELECT region, SUM(amount) AS total, COUNT(DISTINCT id) AS n FROM acme_sales.orders GROUP BY region "
    "HAVING SUM(amount) > 0",
    "WITH recent AS (SELECT * FROM acme_sales.orders WHERE day >= DATE_SUB(CURRENT_DATE(), INTERVAL 7 DAY)), "
    "totals AS (SELECT region, SUM(amount) AS s FROM recent GROUP BY 1) SELECT * FROM totals",
    "SELECT * FROM acme_sales.orders o JOIN acme_sales.customers c USING (customer_id) "
    "LEFT JOIN acme_ref.regions r ON r.id = c.region_id",
    "SELECT * FROM acme_sales.a UNION ALL SELECT * FROM acme_sales.b EXCEPT DISTINCT SELECT * FROM acme_sales.c",
    "SELECT id, ROW_NUMBER() OVER (PARTITION BY region ORDER BY ts DESC) AS rn FROM acme_sales.orders QUALIFY rn = 1",
    "SELECT e, off FROM acme_sales.t, UNNEST(t.items) AS e WITH OFFSET AS off",
    "SELECT * FROM UNNEST(GENERATE_DATE_ARRAY('2024-01-01', '2024-01-31')) AS day",
    "SELECT * EXCEPT (secret) REPLACE (UPPER(name) AS name) FROM acme_sales.people",
    "SELECT STRUCT(1 AS a, 'x' AS b) AS s, [1, 2, 3] AS arr, arr[OFFSET(0)] AS first, s.a FROM acme_sales.t",
    "SELECT CASE WHEN x > 0 THEN 'pos' ELSE 'neg' END AS sign, IF(y, 1, 0), COALESCE(z, 0) FROM acme_sales.t",
    "SELECT SAFE_CAST(x AS INT64), CAST(y AS STRING), SAFE.PARSE_DATE('%Y-%m-%d', d) FROM acme_sales.t",
    "SELECT * FROM acme_sales.t WHERE x IN (SELECT x FROM acme_sales.u) "
    "AND EXISTS (SELECT 1 FROM acme_sales.v WHERE v.id = t.id)",
    "SELECT * FROM acme_sales.t WHERE name LIKE 'a%' AND x BETWEEN 1 AND 10 AND y IN UNNEST(@ids) AND day = @run_date",
    "SELECT region, product, amount FROM acme_sales.sales PIVOT (SUM(amount) FOR quarter IN ('Q1', 'Q2'))",
    "SELECT * FROM acme_sales.sales UNPIVOT (amount FOR quarter IN (q1, q2))",
    "SELECT region, SUM(x) FROM acme_sales.t GROUP BY ROLLUP (region)",
    "SELECT JSON_VALUE(payload, '$.user.id') AS uid, JSON_QUERY(payload, '$.items') FROM acme_raw.events",
    "SELECT ARRAY_AGG(x IGNORE NULLS ORDER BY y LIMIT 5), STRING_AGG(DISTINCT name, ', ') FROM acme_sales.t",
    "SELECT * FROM `acme_sales.orders`",
    "SELECT * FROM `proj`.acme_sales.orders",
    "SELECT * FROM acme_sales.t FOR SYSTEM_TIME AS OF TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 HOUR)",
    "SELECT * FROM acme_sales.t TABLESAMPLE SYSTEM (10 PERCENT)",
    "SELECT (SELECT MAX(x) FROM acme_sales.t) AS m, ARRAY(SELECT y FROM acme_sales.u) AS ys",
    "WITH RECURSIVE n AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT * FROM n",
    "WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM a) SELECT * FROM b, (SELECT * FROM a) AS again",
    "SELECT ANY_VALUE(x HAVING MAX y), APPROX_QUANTILES(x, 4), LOGICAL_AND(b), COUNTIF(b) FROM acme_sales.t",
    "SELECT DATE_TRUNC(d, MONTH), EXTRACT(YEAR FROM d), FORMAT_DATE('%Y%m', d), DATE_DIFF(d, e, DAY) FROM acme_x.t",
    "SELECT REGEXP_CONTAINS(s, r'^a'), REGEXP_EXTRACT(s, r'(\\d+)'), SPLIT(s, ','), LOWER(s) || UPPER(s) "
    "FROM acme_sales.t",
    "SELECT x, LAG(x) OVER w, SUM(x) OVER (ORDER BY ts ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) "
    "FROM acme_sales.t WINDOW w AS (ORDER BY ts)",
    "SELECT NET.HOST(url), NET.PUBLIC_SUFFIX(url), FARM_FINGERPRINT(s), TO_HEX(MD5(s)), GENERATE_UUID() "
    "FROM acme_sales.t",
    "SELECT DATE '2024-01-01', TIMESTAMP '2024-01-01 00:00:00', JSON '{\"a\": 1}', B'ab', NUMERIC '1.5', TRUE, NULL",
    "SELECT * FROM acme_metadata.pipeline_executions WHERE execution_date >= CURRENT_DATE() - 7",
    "SELECT * FROM acme_sales.t AS temp JOIN acme_sales.u AS main ON temp.id = main.id",
]


@pytest.mark.parametrize("sql", EVERYDAY)
def test_everyday_googlesql_is_accepted(sql: str) -> None:
    assert check_select(sql, SCOPE) == []


ATTACKS = [
    # class 1: table functions, wherever they stand
    ("SELECT * FROM acme_sales.t a, LATERAL query_table('globex_sales.orders')", "LATERAL is not allowed"),
    ("SELECT * FROM read_text('/etc/passwd')", "table functions are not allowed"),
    ("SELECT * FROM acme_sales.t JOIN read_csv('/x.csv') ON TRUE", "table functions are not allowed"),
    ("SELECT * FROM acme_sales.t WHERE x IN (SELECT * FROM read_json_auto('/x'))", "table functions are not allowed"),
    ("SELECT * FROM `acme_sales`.read_text('/etc/passwd')", "table functions are not allowed"),
    ("SELECT * FROM range(10)", "table functions are not allowed"),
    ("SELECT * FROM duckdb_settings()", "table functions are not allowed"),
    ("SELECT * FROM EXTERNAL_QUERY('conn', 'SELECT 1')", "table functions are not allowed"),
    ("SELECT * FROM acme_sales.t, LATERAL (SELECT 1)", "LATERAL is not allowed"),
    ('SELECT * FROM acme_sales."/etc/passwd"', "not a plain name"),
    ('SELECT * FROM "/etc/passwd"', "is not a table of this tenant"),
    ("SELECT * FROM 'creds.json'", "not one of this tenant's datasets"),
    # class 2: catalog disclosure
    ("WITH duckdb_tables AS (SELECT 1) SELECT * FROM (SELECT * FROM duckdb_tables)", "catalog/system"),
    ("SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) AS q, duckdb_tables", "needs its dataset"),
    ("(WITH a AS (SELECT 1) SELECT * FROM a) UNION ALL SELECT * FROM a", "needs its dataset"),
    ("WITH a AS (SELECT * FROM a) SELECT * FROM a", "needs its dataset"),
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "needs its dataset"),
    ("WITH a AS (SELECT 1) SELECT * FROM (WITH A AS (SELECT 2) SELECT * FROM a)", "defined twice"),
    ("WITH Pg_Settings AS (SELECT 1) SELECT * FROM Pg_Settings", "catalog/system"),
    ("WITH `sqlite_master` AS (SELECT 1) SELECT 1", "catalog/system"),
    ("SELECT * FROM acme_sales.t AS duckdb_databases", "catalog/system"),
    ("SELECT * FROM acme_sales.t AS x(duckdb_tables)", "catalog/system"),
    ("SELECT * FROM sqlite_master", "needs its dataset"),
    ("SELECT * FROM information_schema.tables", "is not a table of this tenant"),
    ("SELECT * FROM pg_catalog.pg_settings", "not one of this tenant's datasets"),
    ("SELECT * FROM `region-us`.INFORMATION_SCHEMA.JOBS", "project/region-wide"),
    ("SELECT * FROM acme_sales.INFORMATION_SCHEMA.JOBS_BY_PROJECT", "INFORMATION_SCHEMA is the warehouse's catalog"),
    ("SELECT * FROM acme_sales.INFORMATION_SCHEMA.TABLES", "INFORMATION_SCHEMA is the warehouse's catalog"),
    ("SELECT * FROM acme_sales.information_schema.columns", "INFORMATION_SCHEMA is the warehouse's catalog"),
    ("SELECT * FROM `proj.acme_sales.INFORMATION_SCHEMA.TABLES`", "INFORMATION_SCHEMA is the warehouse's catalog"),
    ("SELECT current_setting('temp_directory')", "function current_setting() is not allowed"),
    ("SELECT CURRENT_SETTING('memory_limit')", "is not allowed"),
    ("SELECT getenv('HOME')", "is not allowed"),
    ("SELECT `query`('SELECT * FROM globex_sales.orders')", "is not allowed"),
    ("SELECT SAFE.read_text('/etc/passwd')", "function read_text() is not allowed"),
    ("SELECT NET.read_text('/etc/passwd')", "function read_text() is not allowed"),
    ("SELECT PUBLIC_SUFFIX('x')", "is not allowed"),
    ("SELECT COLUMNS(*) FROM acme_sales.t", "is not allowed"),
    ("SELECT list_transform([1], y -> y)", "is not allowed"),
    ("SELECT acme_udf.score(1)", "user-defined functions"),
    ("SELECT `acme_udf.score`(1)", "is not allowed"),
    ("SELECT CURRENT_USER()", "is not allowed"),
    ("SELECT @@project_id", "system variable"),
    ("SELECT * FROM (VALUES (1))", "VALUES"),
    # other tenants' data: quoting, case, comments, unicode, nesting
    ("SELECT * FROM `globex_sales`.orders", "not one of this tenant's datasets"),
    ("SELECT * FROM `globex_sales.orders`", "not one of this tenant's datasets"),
    ('SELECT * FROM "globex_sales"."orders"', "not one of this tenant's datasets"),
    ("SELECT * FROM acme_EU_sales.orders", "belongs to tenant 'acme_eu'"),
    ("SELECT * FROM acme_Eu.orders", "belongs to tenant 'acme_eu'"),
    ("SELECT * FROM ACME_sales.orders", "not one of this tenant's datasets"),
    ("SELECT * FROM acme_sales.t -- comment\n, globex_sales.o", "not one of this tenant's datasets"),
    ("SELECT * FROM acme_sales.t /* x */ , /**/globex_sales.o", "not one of this tenant's datasets"),
    ("SELECT * FROM acme_\u0455ales.t", "not one of this tenant's datasets"),  # Cyrillic dze
    ("SELECT * FROM \uff41cme_sales.t", "not one of this tenant's datasets"),  # full-width a
    ("SELECT * FROM acme_sales.t WHERE x IN (SELECT y FROM (SELECT y FROM (SELECT y FROM globex_sales.o)))", "not one"),
    ("SELECT ARRAY(SELECT AS STRUCT * FROM globex_sales.o)", "not one of this tenant's datasets"),
    ("SELECT * FROM acme_sales.t JOIN UNNEST((SELECT ARRAY_AGG(x) FROM globex_sales.o)) AS u", "not one"),
    ("SELECT * FROM acme_sales.t PIVOT (SUM(a) FOR b IN (SELECT b FROM globex_sales.o))", "not one"),
    ("SELECT * FROM acme_sales.t FOR SYSTEM_TIME AS OF (SELECT MAX(ts) FROM globex_sales.o)", "not one"),
    ("SELECT * FROM main.globex_sales.orders", "project `main` is not allowed"),
    ("SELECT * FROM proj.globex_sales.orders", "not one of this tenant's datasets"),
    ("SELECT * FROM acme_sales.`t``x`", "not a plain name"),
    ("SELECT * FROM acme_sales.orders$20240101", "may only appear inside a string literal"),
    # statements: only a query runs, the processor writes
    ("SELECT 1 AS x; DROP TABLE acme_sales.t", "one statement only"),
    ("EXPORT DATA OPTIONS(uri='gs://x/*') AS SELECT 1", "only a SELECT query"),
    ("COPY acme_sales.t TO '/tmp/x'", "only a SELECT query"),
    ("PRAGMA database_list", "only a SELECT query"),
    ("INSTALL httpfs", "only a SELECT query"),
    ("ATTACH '/tmp/globex.duckdb' AS g", "SQL syntax error"),
    ("SET x = 1", "only a SELECT query"),
]


@pytest.mark.parametrize(("sql", "reason"), ATTACKS, ids=[f"{i:02d}" for i in range(len(ATTACKS))])
def test_every_attack_form_is_refused_with_a_reason(sql: str, reason: str) -> None:
    canonical, issues = checked_query(sql, SCOPE)
    assert canonical is None
    assert any(reason in issue.message for issue in issues), [issue.message for issue in issues]


def test_what_runs_is_regenerated_from_the_checked_statement() -> None:
    values = {"tenant_id": "acme", "region": "emea", "project": "proj"}
    sql = "SELECT a -- {{keep}} out\n/* also */ FROM {tenant_id}_sales.orders_{region} WHERE note = '{{x}}'"
    sent = render_checked_sql(sql, values, tenant_id="acme", project="proj")
    assert sent == "SELECT a FROM acme_sales.orders_emea WHERE note = '{x}'"  # comments dropped, text regenerated
    assert check_select(sent, SCOPE) == []


def test_a_query_nested_too_deeply_is_refused_not_crashed() -> None:
    depth = 2000
    issues = check_select("SELECT " + "(" * depth + "1" + ")" * depth, SCOPE)
    assert [issue.message for issue in issues] == [
        "the query is nested too deeply to check (flatten nested parentheses or subqueries, e.g. with CTEs)"
    ]


def test_a_query_full_of_refusals_gets_a_bounded_report() -> None:
    sql = "SELECT * FROM " + ", ".join(f"read_text('/f{i}')" for i in range(500))
    issues = check_select(sql, SCOPE)
    assert len(issues) == 21
    assert issues[-1].message == "... and 480 more problem(s) of the same kinds"


@pytest.mark.parametrize(
    ("dataset", "problem"),
    [
        ("acme_sales", None),
        ("acme_metadata", "'metadata' is reserved for run history"),
        ("acme_Metadata", "'Metadata' is reserved for run history"),
        ("acme_METADATA", "'METADATA' is reserved for run history"),
        ("acme_EU_x", "belongs to tenant 'acme_eu'"),
        ("Acme_sales", "not one of this tenant's datasets"),
        ("acme_sales-x", "not one of this tenant's datasets"),
    ],
)
def test_a_destination_is_checked_after_rendering_and_case_insensitively(dataset: str, problem: str | None) -> None:
    found = writable_dataset_problem(dataset, SCOPE)
    assert (found is None) if problem is None else (found is not None and problem in found)


QUERIES_TO_RUN = [
    "SELECT region, SUM(amount) AS total FROM acme_sales.orders GROUP BY region ORDER BY region",
    "WITH big AS (SELECT * FROM acme_sales.orders WHERE amount > 1) SELECT COUNT(*) AS n FROM big",
    "SELECT id, ROW_NUMBER() OVER (PARTITION BY region ORDER BY amount DESC) AS rn FROM acme_sales.orders ORDER BY id",
    "SELECT id, item FROM acme_sales.orders, UNNEST(items) AS item ORDER BY id, item",
    "SELECT id, SAFE_DIVIDE(amount, 0) AS d, IF(amount > 2, 'big', 'small') AS size FROM acme_sales.orders ORDER BY id",
    "SELECT DATE_TRUNC(day, MONTH) AS m, FORMAT_DATE('%Y%m', day) AS ym FROM acme_sales.orders ORDER BY id",
    "SELECT * EXCEPT (items) FROM acme_sales.orders WHERE region LIKE 'e%' -- comment\nORDER BY id",
    "SELECT REGEXP_CONTAINS(region, r'^e') AS e, UPPER(region) || '!' AS shout FROM acme_sales.orders ORDER BY id",
]


@pytest.mark.parametrize("sql", QUERIES_TO_RUN)
def test_the_regenerated_sql_returns_the_same_rows_as_the_query_written(sql: str, tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "wh.duckdb")
    wh.create_dataset("acme_sales")
    orders = {
        "id": [1, 2, 3],
        "region": ["emea", "amer", "emea"],
        "amount": [1.5, 2.5, 4.0],
        "items": [[1, 2], [3], []],
        "day": [dt.date(2026, 1, 5), dt.date(2026, 2, 6), dt.date(2026, 2, 7)],
    }
    wh.write_table("acme_sales.orders", pa.table(orders))
    sent = render_checked_sql(sql, {"tenant_id": "acme", "project": "proj"}, tenant_id="acme", project="proj")
    assert wh.query(sent).to_pylist() == wh.query(sql).to_pylist()
    wh.close()


# -- the processors refuse before any SQL runs --------------------------------------------------------------------


@pytest.fixture(name="engine")
def duckdb_only() -> str:
    return "duckdb"


def test_a_table_function_never_reaches_the_warehouse(env: StepEnv) -> None:
    env.load("sales", "t", pa.table({"id": [1]}))
    step = {
        "step_id": "peek",
        "ps_type": "bigquery.query",
        "source": {"query": "SELECT * FROM {tenant_id}_sales.t, LATERAL read_text('/etc/passwd')"},
        "destination": {"dataset": "sales", "table": "leaked"},
    }
    with pytest.raises(QueryScopeError, match="LATERAL is not allowed") as caught:
        env.run(step)
    assert "root:" not in str(caught.value)
    assert not env.warehouse.table_exists(f"{env.tenant_id}_sales.leaked")


def test_a_parameter_cannot_point_a_destination_at_the_reserved_dataset(env: StepEnv) -> None:
    step = {
        "step_id": "forge",
        "ps_type": "bigquery.query",
        "source": {"query": "SELECT 'x' AS run_id"},
        "destination": {"dataset": "{ds}", "table": "pipeline_executions", "write_mode": "append"},
    }
    for value in ("metadata", "Metadata", "METADATA"):
        with pytest.raises(TerminalError, match="reserved for run history"):
            env.run(step, parameters={"ds": value})
    assert not env.warehouse.table_exists(f"{env.tenant_id}_metadata.pipeline_executions")


DOLLAR_DIFFERENTIALS = [
    # DuckDB reads $tag$ ... $tag$ as a string: what sqlglot checks as a literal would run there as SQL
    "SELECT $a$ AS c, 'x $a$, current_setting($q$temp_directory$q$) AS v, $c$' AS d, $c$ AS e FROM acme_sales.orders",
    "SELECT $$ AS c, 'x $$, (SELECT 1 FROM duckdb_settings()) AS v, $$' AS d FROM acme_sales.orders",
    "SELECT amount AS $a$, 'x $a$, 1 AS v' FROM acme_sales.orders",
    "SELECT `a$b` FROM acme_sales.orders",
]


@pytest.mark.parametrize("sql", DOLLAR_DIFFERENTIALS)
def test_dollar_signs_outside_strings_are_refused_so_duckdb_cannot_read_another_query(sql: str) -> None:
    issues = check_select(sql, TableScope("acme"))
    assert any("`$` may only appear inside a string literal" in i.message for i in issues), issues


def test_dollar_signs_inside_strings_are_plain_text() -> None:
    assert check_select("SELECT 'US$ 5' AS price, r'$x' AS raw FROM acme_sales.orders", TableScope("acme")) == []


def test_queries_over_the_length_cap_are_refused_before_parsing() -> None:
    sql = "SELECT " + " + ".join(["1"] * 40_000) + " AS n FROM acme_sales.orders"
    issues = check_select(sql, TableScope("acme"))
    assert len(issues) == 1 and "at most 65,536 may run" in issues[0].message
