"""P10: what checking SQL steps costs - `pipelines validate`'s warehouse checks and the execute API's translation check.

The sample `daily_sales` pipeline (4 bigquery.query steps, 3 of them reading tables an upstream step creates) is
checked with `sql_check.check_pipeline` against a fresh tenant warehouse (an empty DuckDB: every downstream table is
stood in for by its upstream query's columns) and, when `CLOUDACT_BIGQUERY_ENDPOINT` names a bqemulator, against
BigQuery's API (dry-run jobs). The execute API's own check (`translation_issues`) is timed cold (first execute after
a file change) and warm (every later execute: a cache lookup). Nothing here needs a running runtime.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench.harness import Case, CaseResult, Figure, Options, Target, median, percentile

TARGET_VALIDATE_MS = 1_000.0
"""A person runs validate: a 4-query pipeline checked within a second."""
TARGET_EXECUTE_WARM_MS = 1.0
"""The execute path must not notice the check once the file is cached."""
if TYPE_CHECKING:
    from shared.pipelines.spec import PipelineSpec

REPO = Path(__file__).resolve().parents[2]


def _timed_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure(options: Options) -> CaseResult:
    from shared.adapters.duckdb_sql import transpile
    from shared.adapters.duckdb_warehouse import DuckDBWarehouse
    from shared.catalog.loader import load_pipeline
    from shared.catalog.sql_check import _translation_issues_cached, check_pipeline, translation_issues

    path = REPO / "tenant_configs" / "acme" / "pipelines" / "daily_sales.yaml"
    spec = load_pipeline(path)
    repeat = 3 if options.quick else 20
    duck = DuckDBWarehouse(":memory:")
    try:
        report = check_pipeline(path, spec, duck, "bench")
        if report.errors or report.dry_runs != 4:
            raise RuntimeError(f"expected 4 clean dry runs, got {report.dry_runs} and {report.errors}")
        validate = _timed_ms(lambda: check_pipeline(path, spec, duck, "bench"), repeat)
    finally:
        duck.close()
    cold = []
    for _ in range(repeat):
        _translation_issues_cached.cache_clear()
        cold += _timed_ms(lambda: translation_issues(path, spec, "bench", transpile), 1)
    warm = _timed_ms(lambda: translation_issues(path, spec, "bench", transpile), repeat * 50)
    figures = [
        Figure(
            "validate's warehouse checks, 4 SQL steps, DuckDB",
            median(validate),
            "ms",
            Target("<=", TARGET_VALIDATE_MS),
            note=f"p95 {percentile(validate, 95):.0f} ms; 4 dry runs (3 over stand-ins for tables not created yet)",
            samples=len(validate),
        ),
        Figure(
            "execute's translation check, first after a file change",
            median(cold),
            "ms",
            note="parse, scope check and DuckDB translation of 4 queries",
            samples=len(cold),
        ),
        Figure(
            "execute's translation check, cached (p95)",
            percentile(warm, 95),
            "ms",
            Target("<=", TARGET_EXECUTE_WARM_MS),
            samples=len(warm),
        ),
    ]
    endpoint = os.environ.get("CLOUDACT_BIGQUERY_ENDPOINT")
    if endpoint:
        figures.append(_bigquery_figure(path, spec, endpoint, repeat))
    details = {"pipeline": "tenant_configs/acme/pipelines/daily_sales.yaml", "bigquery": endpoint or "not measured"}
    return CaseResult("P10", CASE.title, "measured", figures, details=details)


def _bigquery_figure(path: Path, spec: PipelineSpec, endpoint: str, repeat: int) -> Figure:
    from shared.adapters.bigquery_warehouse import BigQueryWarehouse
    from shared.catalog.sql_check import check_pipeline

    wh = BigQueryWarehouse("cloudact-test", endpoint=endpoint, retry_deadline_s=5, request_timeout_s=10)
    try:
        samples = _timed_ms(lambda: check_pipeline(path, spec, wh, "cloudact-test"), max(2, repeat // 4))
    finally:
        wh.close()
    return Figure(
        "validate's warehouse checks, 4 SQL steps, BigQuery API (bqemulator)",
        median(samples),
        "ms",
        note="4 dry-run jobs + 1 table listing; real BigQuery adds its own round trips (~0.2-1 s per job)",
        samples=len(samples),
    )


CASE = Case("P10", "SQL steps checked: validate (dry runs) and execute (translation)", measure)
