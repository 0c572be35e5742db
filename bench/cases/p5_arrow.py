"""P5: `arrow.transform`'s operations over 1 M and 10 M rows against plain pyarrow doing the same thing, in one run.

The data is a generated parquet file (order lines: day, category, status, amount, qty). The op chain is a representative
filter + derive + aggregate, written once as `arrow.transform` operations (shared.processors.arrow_ops.Pipeline, the
processor's engine: streamed record batches, the safe expression language, two-level aggregate) and once as the
pyarrow.compute calls a developer would write by hand over the whole table. The warehouse read/write around the
processor is not part of the figure (DuckDB's cost, not the transform's). Each measurement runs in its own child
process so its peak RSS (VmHWM) is its own; rows/s count input rows. The billing sample's daily-cost stage (the
globex billing_costs line_items + daily_costs operations, chained) is measured too, without a hand-written twin.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT, Case, CaseResult, Figure, Options, Target, median, progress

RATIO_TARGET = 1.3
RSS_TARGET_MIB = 1024.0
BATCH_ROWS = 65_536
CHAIN: list[dict[str, Any]] = [
    {"filter": "amount > 10 and status == 'ok'"},
    {"derive": {"net": "amount * qty", "day_bucket": "day"}},
    {"aggregate": {"group_by": ["day_bucket", "category"], "metrics": {"net": "sum(net)", "lines": "count()"}}},
]
BILLING_CHAIN_STEPS = ("line_items", "daily_costs")


# ------------------------------------------------------------------------------------------------- child process
def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _generate(rows: int, path: str) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    categories = np.array([f"category_{i:02d}" for i in range(40)])
    statuses = np.array(["ok", "ok", "ok", "refunded", "cancelled"])
    schema = pa.schema(
        [("day", pa.date32()), ("category", pa.string()), ("status", pa.string()),
         ("amount", pa.float64()), ("qty", pa.int64())]
    )  # fmt: skip
    with pq.ParquetWriter(path, schema) as writer:
        for chunk, first in enumerate(range(0, rows, 1_000_000)):
            n = min(1_000_000, rows - first)
            rng = np.random.default_rng([7, chunk])
            columns = [
                pa.array(rng.integers(20_000, 20_090, n).astype("int32"), pa.int32()).cast(pa.date32()),
                pa.array(categories[rng.integers(0, len(categories), n)]),
                pa.array(statuses[rng.integers(0, len(statuses), n)]),
                pa.array(rng.gamma(2.0, 20.0, n).round(2)),
                pa.array(rng.integers(1, 10, n)),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def _generate_billing(rows: int, path: str) -> None:
    import pyarrow.parquet as pq

    from shared.samples.billing import generate_batches

    writer = None
    for batch in generate_batches(rows):
        if writer is None:
            writer = pq.ParquetWriter(path, batch.schema)
        writer.write_batch(batch)
    if writer is not None:
        writer.close()


def _transform(path: str, operations: list[dict[str, Any]]) -> int:
    import pyarrow.parquet as pq

    from shared.processors.arrow_ops import Operation, Pipeline

    pipeline = Pipeline([Operation.model_validate(op) for op in operations], batch_rows=BATCH_ROWS)
    out = 0
    for batch in pipeline.apply(pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)):
        out += batch.num_rows
    return out


def _plain_pyarrow(path: str) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    table = table.filter(pc.and_(pc.greater(table["amount"], 10), pc.equal(table["status"], "ok")))
    table = table.append_column("net", pc.multiply_checked(table["amount"], table["qty"]))
    table = table.append_column("day_bucket", table["day"])
    result = table.group_by(["day_bucket", "category"]).aggregate([("net", "sum"), ([], "count_all")])
    return int(result.num_rows)


def _billing_operations() -> list[dict[str, Any]]:
    import yaml

    spec = yaml.safe_load((REPO_ROOT / "tenant_configs" / "globex" / "pipelines" / "billing_costs.yaml").read_text())
    steps = {s["step_id"]: s for s in spec["steps"]}
    return [op for step in BILLING_CHAIN_STEPS for op in steps[step]["config"]["operations"]]


def child(argv: list[str]) -> None:
    """`python -m bench.cases.p5_arrow MODE ARGS...`: do one thing, print {"seconds", "rows_out", "peak_rss_mib"}."""
    mode, *args = argv
    # imports are a warm process's sunk cost, not the work: loaded before the clock starts
    import pyarrow.compute
    import pyarrow.parquet  # noqa: F401

    if mode in ("transform", "billing", "generate-billing"):
        import shared.processors.arrow_ops
        import shared.samples.billing  # noqa: F401
    started = time.perf_counter()
    rows_out = 0
    if mode == "generate":
        _generate(int(args[0]), args[1])
    elif mode == "generate-billing":
        _generate_billing(int(args[0]), args[1])
    elif mode == "transform":
        rows_out = _transform(args[0], CHAIN)
    elif mode == "pyarrow":
        rows_out = _plain_pyarrow(args[0])
    elif mode == "billing":
        import pyarrow.parquet as pq

        columns = ["service", "sku", "usage_start_time", "project", "location", "cost", "credits", "invoice"]
        columns.append("cost_type")
        # the line_items step reads these columns only (its source.columns); so does this
        source = pq.ParquetFile(args[0]).iter_batches(batch_size=BATCH_ROWS, columns=columns)
        from shared.processors.arrow_ops import Operation, Pipeline

        pipeline = Pipeline([Operation.model_validate(op) for op in _billing_operations()], batch_rows=BATCH_ROWS)
        started = time.perf_counter()
        rows_out = sum(b.num_rows for b in pipeline.apply(source))
    else:
        raise SystemExit(f"unknown mode {mode}")
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows_out": rows_out, "peak_rss_mib": _peak_rss_mib()}))


def _run_child(*args: str, timeout_s: float = 600) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.cases.p5_arrow", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"p5 child {args[0]} failed: {done.stderr.strip()[-800:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ------------------------------------------------------------------------------------------------- the case
def _label(rows: int) -> str:
    return f"{rows // 1_000_000} M" if rows >= 1_000_000 else f"{rows // 1000} k"


def measure(options: Options) -> CaseResult:
    sizes = (200_000, 1_000_000) if options.quick else (1_000_000, 10_000_000)
    repeats = 1 if options.quick else 3
    billing_sizes = (200_000,) if options.quick else (1_000_000, 10_000_000)
    figures: list[Figure] = []
    details: dict[str, Any] = {"chain": CHAIN, "batch_rows": BATCH_ROWS, "repeats": repeats, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="cloudact-bench-p5-") as tmp:
        for rows in sizes:
            path = str(Path(tmp) / f"orders_{rows}.parquet")
            progress(f"P5: generating {rows:,} rows")
            _run_child("generate", str(rows), path)
            runs: dict[str, list[dict[str, float]]] = {"transform": [], "pyarrow": []}
            for _ in range(repeats):  # interleaved, so drifting machine load hits both alike
                for mode in ("transform", "pyarrow"):
                    progress(f"P5: {mode} over {rows:,} rows")
                    runs[mode].append(_run_child(mode, path))
            if runs["transform"][0]["rows_out"] != runs["pyarrow"][0]["rows_out"]:
                raise RuntimeError(f"transform and pyarrow disagree: {runs['transform'][0]} vs {runs['pyarrow'][0]}")
            details["runs"][rows] = runs
            t_s = median([r["seconds"] for r in runs["transform"]])
            p_s = median([r["seconds"] for r in runs["pyarrow"]])
            t_rss = max(r["peak_rss_mib"] for r in runs["transform"])
            p_rss = max(r["peak_rss_mib"] for r in runs["pyarrow"])
            n = _label(rows)
            figures += [
                Figure(f"arrow.transform {n} rows", rows / t_s, "rows/s", samples=repeats, note=f"{t_s:.2f} s"),
                Figure(f"plain pyarrow {n} rows", rows / p_s, "rows/s", samples=repeats, note=f"{p_s:.2f} s"),
                Figure(
                    f"arrow.transform / pyarrow time {n} rows",
                    t_s / p_s,
                    "x",
                    Target("<=", RATIO_TARGET),
                    note="medians, same run",
                ),
                Figure(
                    f"arrow.transform peak RSS {n} rows",
                    t_rss,
                    "MiB",
                    Target("<=", RSS_TARGET_MIB),
                    note=f"plain pyarrow (whole table) {p_rss:,.0f} MiB",
                ),
            ]
        for rows in billing_sizes:
            path = str(Path(tmp) / f"billing_{rows}.parquet")
            progress(f"P5: generating a {rows:,}-row billing export")
            _run_child("generate-billing", str(rows), path)
            progress(f"P5: billing line_items + daily_costs operations over {rows:,} rows")
            billing = _run_child("billing", path)
            details.setdefault("billing", {})[rows] = billing
            n = _label(rows)
            figures += [
                Figure(
                    f"billing line_items + daily_costs {n} rows",
                    rows / billing["seconds"],
                    "rows/s",
                    note=f"{billing['seconds']:.2f} s -> {int(billing['rows_out']):,} daily rows; no pyarrow twin",
                ),
                Figure(f"billing peak RSS {n} rows", billing["peak_rss_mib"], "MiB", Target("<=", RSS_TARGET_MIB)),
            ]
    return CaseResult("P5", CASE.title, "measured", figures, details=details)


CASE = Case("P5", "arrow.transform and the billing sample vs plain pyarrow (child processes)", measure)

if __name__ == "__main__":
    child(sys.argv[1:])
