"""arrow.transform: the expression language, each operation, streaming reads, staging, and config validation."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.errors import TerminalError
from shared.pipelines.spec import StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors import arrow_ops, arrow_transform, table_sink
from shared.processors.expressions import ExpressionError, compile_expression, evaluate_to_array
from tests.processor_support import StepEnv, engine_fixture, env_fixture, warehouse_fixture  # noqa: F401

UTC = dt.UTC
CREDIT = pa.struct([("name", pa.string()), ("amount", pa.float64())])
KV = pa.struct([("key", pa.string()), ("value", pa.string())])
BATCH = pa.RecordBatch.from_pydict(
    {
        "cost": [1.5, -2.0, None, 4.0],
        "n": [1, 2, 3, 4],
        "cur": ["USD", "EUR", None, "USD"],
        "ts": pa.array([dt.datetime(2026, 10, 5, 23, tzinfo=UTC)] * 3 + [None], pa.timestamp("us", tz="UTC")),
        "svc": pa.array([{"id": "a", "description": "Compute"}] * 4),
        "credits": pa.array(
            [
                [{"name": "x", "amount": -0.5}, {"name": "y", "amount": -0.25}],
                [],
                None,
                [{"name": "z", "amount": -1.0}],
            ],
            pa.list_(CREDIT),
        ),
        "labels": pa.array(
            [
                [{"key": "env", "value": "prod"}, {"key": "team", "value": "a"}],
                [{"key": "team", "value": "b"}],
                None,
                [],
            ],
            pa.list_(KV),
        ),
    }
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cost > 0 and cur == 'USD'", [True, False, None, True]),
        ("n / 2", [0.5, 1.0, 1.5, 2.0]),
        ("n * 2 - 1", [1, 3, 5, 7]),
        ("1 < n <= 3", [False, True, True, False]),
        ("cur in ['USD', 'GBP']", [True, False, None, True]),
        ("cur not in ['USD']", [False, True, None, False]),
        ("not (cost > 0)", [False, True, None, False]),
        ("-cost", [-1.5, 2.0, None, -4.0]),
        ("svc.description", ["Compute"] * 4),
        ("credits.amount", [[-0.5, -0.25], [], None, [-1.0]]),
        ("list_sum(credits.amount)", [-0.75, 0.0, None, -1.0]),
        ("list_len(credits)", [2, 0, None, 1]),
        ("kv_lookup(labels, 'team')", ["a", "b", None, None]),
        ("date(ts)", [dt.date(2026, 10, 5)] * 3 + [None]),
        ("ts < '2026-10-06'", [True, True, True, None]),
        ("date(ts) >= '2026-10-06'", [False, False, False, None]),
        ("coalesce(cost, 0.0)", [1.5, -2.0, 0.0, 4.0]),
        ("round(cost * 1.2345, 2)", [1.85, -2.47, None, 4.94]),
        ("concat(cur, '-', n)", ["USD-1", "EUR-2", None, "USD-4"]),
        ("strftime(ts, '%Y%m')", ["202610", "202610", "202610", None]),
        ("cast(n, 'string')", ["1", "2", "3", "4"]),
        ("if_else(cost > 0, 'in', 'out')", ["in", "out", None, "in"]),
        ("safe_divide(cost, n - 1)", [None, -2.0, None, 4.0 / 3]),
        ("substr(lower(cur), 2, 2)", ["sd", "ur", None, "sd"]),
        ("regex_match(cur, '^U')", [True, False, None, True]),
        ("7", [7, 7, 7, 7]),
    ],
)
def test_expressions_compute_like_sql(text: str, expected: list[Any]) -> None:
    assert evaluate_to_array(compile_expression(text), BATCH).to_pylist() == expected


def test_expressions_over_a_sliced_batch_keep_rows_aligned() -> None:
    sliced = BATCH.slice(1, 3)
    assert evaluate_to_array(compile_expression("list_sum(credits.amount)"), sliced).to_pylist() == [0.0, None, -1.0]
    assert evaluate_to_array(compile_expression("kv_lookup(labels, 'team')"), sliced).to_pylist() == ["b", None, None]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('id')", "only plain function calls are allowed"),
        ("__import__('os')", "unknown function '__import__'"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("cost ** 2", "operator Pow is not allowed"),
        ("x[0]", "at column 1: Subscript is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("cost if cur else n", "IfExp is not allowed"),
        ("round()", "round() takes 1..2 arguments, got 0"),
        ("cast(n, 'weird')", "unknown column type 'weird'"),
        ("cur in ['a'] in ['b']", "nothing can be compared with a list"),
        ("cost > ", "syntax error"),
    ],
)
def test_expressions_refuse_everything_outside_the_language(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        compile_expression(text)


def test_expression_on_a_missing_column_names_the_columns() -> None:
    with pytest.raises(TerminalError, match=r"no column 'missing' \(columns: cost, n, cur"):
        evaluate_to_array(compile_expression("missing > 1"), BATCH)


# -- the processor on both warehouses ----------------------------------------------------------------------------


def _orders(n: int) -> pa.Table:
    return pa.table(
        {
            "order_id": pa.array([i // 2 if i % 10 == 0 else i for i in range(n)], pa.int64()),  # some duplicates
            "region": [["emea", "amer", "apac", None][i % 4] for i in range(n)],
            "amount": pa.array([None if i % 7 == 0 else float(i % 50) for i in range(n)], pa.float64()),
            "qty": pa.array([str(i % 5) for i in range(n)], pa.string()),
        }
    )


def _expected(data: pa.Table) -> dict[str | None, dict[str, Any]]:
    """Independent computation: dedupe on order_id (first wins), amount > 5, grouped by region."""
    seen: set[int] = set()
    groups: dict[str | None, dict[str, Any]] = defaultdict(lambda: {"total": 0.0, "orders": 0, "qty": 0, "top": None})
    for row in data.to_pylist():
        if row["order_id"] in seen:
            continue
        seen.add(row["order_id"])
        if row["amount"] is None or row["amount"] <= 5:
            continue
        g = groups[row["region"]]
        g["total"] += row["amount"] * 2
        g["orders"] += 1
        g["qty"] += int(row["qty"])
        g["top"] = row["amount"] if g["top"] is None else max(g["top"], row["amount"])
    return groups


def _transform(dest_table: str = "by_region", **config: Any) -> dict[str, Any]:
    operations = [
        {"dedupe": ["order_id"]},
        {"filter": "amount > 5"},
        {"cast": {"qty": "INT64"}},
        {"derive": {"doubled": "amount * 2"}},
        {"rename": {"region": "area"}},
        {
            "aggregate": {
                "group_by": ["area"],
                "metrics": {"total": "sum(doubled)", "orders": "count()", "qty": "sum(qty)", "top": "max(amount)"},
            }
        },
        {"select": ["area", "orders", "total", "qty", "top"]},
    ]
    return {
        "step_id": "transform",
        "ps_type": "arrow.transform",
        "source": {"dataset": "raw", "table": "orders"},
        "destination": {"dataset": "mart", "table": dest_table, "write_mode": "truncate"},
        "config": {"operations": operations, **config},
    }


def test_transform_dedupes_filters_derives_and_aggregates(env: StepEnv) -> None:
    data = _orders(400)
    env.load("raw", "orders", data)
    result = env.run(_transform(batch_rows=64))
    rows = {r["area"]: r for r in env.table("mart", "by_region")}
    expected = _expected(data)
    assert set(rows) == set(expected)
    for region, want in expected.items():
        got = rows[region]
        assert got["orders"] == want["orders"] and got["qty"] == want["qty"] and got["top"] == want["top"]
        assert got["total"] == pytest.approx(want["total"])
    assert result.rows_in == 400 and result.rows_out == len(expected)
    ops = {o["op"]: o for o in result.details["operations"]}
    assert ops["dedupe"]["rows_in"] == 400 and ops["dedupe"]["rows_out"] == len(
        {r["order_id"] for r in data.to_pylist()}
    )


def test_two_level_aggregate_matches_a_direct_computation(env: StepEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrow_ops, "_REFOLD_ROWS", 5)  # fold partial aggregates again every few batches
    n = 600
    data = pa.table(
        {
            "k": [f"g{i % 37}" for i in range(n)],
            "v": pa.array([None if i % 11 == 0 else i % 13 for i in range(n)], pa.int64()),
        }
    )
    env.load("raw", "numbers", data)
    env.run(
        {
            "step_id": "agg",
            "ps_type": "arrow.transform",
            "source": {"dataset": "raw", "table": "numbers"},
            "destination": {"dataset": "mart", "table": "stats"},
            "config": {
                "batch_rows": 16,
                "operations": [
                    {
                        "aggregate": {
                            "group_by": ["k"],
                            "metrics": {
                                "rows": "count(*)",
                                "values": "count(v)",
                                "total": "sum(v)",
                                "low": "min(v)",
                                "high": "max(v)",
                                "avg": "mean(v)",
                            },
                        }
                    }
                ],
            },
        }
    )
    groups: dict[str, list[int | None]] = defaultdict(list)
    for row in data.to_pylist():
        groups[row["k"]].append(row["v"])
    got = {r["k"]: r for r in env.table("mart", "stats")}
    assert set(got) == set(groups)
    for k, values in groups.items():
        present = [v for v in values if v is not None]
        row = got[k]
        assert (row["rows"], row["values"], row["total"]) == (len(values), len(present), sum(present))
        assert (row["low"], row["high"]) == (min(present), max(present))
        assert row["avg"] == pytest.approx(sum(present) / len(present))


def test_table_reads_stream_in_batches(env: StepEnv) -> None:
    env.load("raw", "orders", _orders(2500))
    sizes = [
        b.num_rows for b in env.warehouse.query_batches(f"SELECT * FROM {env.tenant_id}_raw.orders", batch_rows=1000)
    ]
    assert sum(sizes) == 2500
    assert max(sizes) <= 1000 and len([s for s in sizes if s]) >= 3


def test_large_output_is_staged_and_moved_over_atomically(env: StepEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_sink, "DEFAULT_FLUSH_ROWS", 100)
    env.load("raw", "orders", _orders(1000))
    step = {
        "step_id": "copy",
        "ps_type": "arrow.transform",
        "source": {"dataset": "raw", "table": "orders"},
        "destination": {"dataset": "mart", "table": "copy", "write_mode": "truncate"},
        "config": {"batch_rows": 128, "operations": [{"select": ["order_id", "region", "qty"]}]},
    }
    assert env.run(step, run_id="run_a").rows_out == 1000
    assert env.run(step, run_id="run_b").rows_out == 1000  # truncate replaces
    assert len(env.table("mart", "copy")) == 1000
    step["destination"]["write_mode"] = "append"
    env.run(step, run_id="run_c")
    assert len(env.table("mart", "copy")) == 2000
    for run in ("run_a", "run_b", "run_c"):  # the staging tables are gone
        assert not env.warehouse.table_exists(f"{env.tenant_id}_mart._cloudact_stage_{run}_copy")


def test_a_failure_half_way_leaves_the_destination_as_it_was(env: StepEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_sink, "DEFAULT_FLUSH_ROWS", 100)
    good = _orders(500)
    env.load("raw", "orders", good)
    step = _transform("copy")
    step["config"] = {"batch_rows": 50, "operations": [{"cast": {"qty": "INT64"}}]}
    env.run(step)
    bad = good.set_column(3, "qty", pa.array([str(i % 5) if i < 400 else "n/a" for i in range(500)]))
    env.load("raw", "orders", bad)  # batches 1..8 cast fine, batch 9 does not: rows were already staged
    with pytest.raises(TerminalError, match="cast: column 'qty' to INT64"):
        env.run(step)
    assert len(env.table("mart", "copy")) == 500


def test_an_empty_source_still_replaces_the_destination(env: StepEnv) -> None:
    env.load("raw", "orders", _orders(20))
    step = _transform("copy")
    step["config"] = {"operations": [{"filter": "amount > 0"}]}
    env.run(step)
    assert len(env.table("mart", "copy")) > 0
    env.load("raw", "orders", _orders(20).slice(0, 0))
    result = env.run(step)
    assert result.rows_out == 0 and env.table("mart", "copy") == []


def test_a_file_can_be_the_source(env: StepEnv) -> None:
    pq.write_table(_orders(50), env.landing / "orders.parquet")
    env.run(
        {
            "step_id": "from_file",
            "ps_type": "arrow.transform",
            "source": {"path": "orders.parquet"},
            "destination": {"dataset": "mart", "table": "apac"},
            "config": {"operations": [{"filter": "region == 'apac'"}, {"select": ["order_id"]}]},
        }
    )
    expected = sorted(r["order_id"] for r in _orders(50).to_pylist() if r["region"] == "apac")
    assert sorted(r["order_id"] for r in env.table("mart", "apac")) == expected


def test_a_missing_column_fails_with_the_columns_there_are(env: StepEnv) -> None:
    env.load("raw", "orders", _orders(10))
    step = _transform("copy")
    step["config"] = {"operations": [{"select": ["order_id", "price"]}]}
    with pytest.raises(TerminalError, match="select: no column 'price' \\(columns: order_id, region, amount, qty\\)"):
        env.run(step)


def test_another_tenants_dataset_is_refused(env: StepEnv) -> None:
    other = env.context.settings.config_dir / f"{env.tenant_id}_eu"
    other.mkdir()
    step = _transform("copy")
    step["source"] = {"dataset": "eu_sales", "table": "orders"}  # {tenant}_eu_sales is tenant {tenant}_eu's `sales`
    with pytest.raises(TerminalError, match=f"belongs to tenant '{env.tenant_id}_eu'"):
        env.run(step)


# -- validation --------------------------------------------------------------------------------------------------


def _issues(raw: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    step = StepSpec.model_validate({"step_id": "t", "ps_type": "arrow.transform", **raw})
    return [(issue.path, issue.message) for issue in arrow_transform.SPEC.validate(step, ValidationScope())]


def test_validation_points_at_the_offending_key() -> None:
    base = {"source": {"dataset": "raw", "table": "t"}, "destination": {"dataset": "mart", "table": "out"}}
    assert _issues({**base, "config": {"operations": [{"select": ["a"]}]}}) == []
    issues = dict(
        _issues(
            {
                **base,
                "config": {
                    "operations": [
                        {"filter": "a >> 2"},
                        {"explode": ["a"]},
                        {"aggregate": {"group_by": ["a"], "metrics": {"x": "median(b)"}}},
                        {"select": ["a"], "drop": ["b"]},
                    ]
                },
            }
        )
    )
    assert "operator RShift is not allowed" in issues[("config", "operations", 0, "filter")]
    assert "Extra inputs are not permitted" in issues[("config", "operations", 1, "explode")]
    assert "is not sum(col), count()" in issues[("config", "operations", 2, "aggregate", "metrics")]
    assert "exactly one of" in issues[("config", "operations", 3)]


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ({"source": {"dataset": "raw", "table": "t", "path": "x.csv"}}, ("source",), "either dataset + table"),
        ({"destination": {"dataset": "raw", "table": "t"}}, (), "may not be the source table"),
        ({"destination": {"dataset": "metadata", "table": "x"}}, ("destination", "dataset"), "reserved for run"),
        ({"destination": {"dataset": "Mart", "table": "x"}}, ("destination", "dataset"), "not a valid name"),
    ],
)
def test_validation_refuses_bad_sources_and_destinations(
    raw: dict[str, Any], path: tuple[str, ...], message: str
) -> None:
    step = {
        "source": {"dataset": "raw", "table": "t"},
        "destination": {"dataset": "mart", "table": "out"},
        "config": {"operations": [{"select": ["a"]}]},
        **raw,
    }
    issues = _issues(step)
    assert any(p == path and message in m for p, m in issues), issues
