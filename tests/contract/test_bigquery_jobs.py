"""Every BigQuery job of a step carries its identity and the tenant's bytes cap, and a redelivered attempt attaches to
its jobs instead of starting them again. bqemulator runs the jobs; a recording server in front of it (tests/
bigquery_recorder.py) shows what was sent and answers a repeated job id with BigQuery's 409."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from shared.adapters.bigquery_warehouse import BigQueryWarehouse
from shared.ports.warehouse import StepJobs
from shared.processors.base import StepContext
from shared.runtime.context import Context
from shared.runtime.settings import Settings
from tests.bigquery_recorder import BigQueryRecorder, recorder_fixture  # noqa: F401
from tests.processor_support import BQ_PROJECT

pytestmark = pytest.mark.bqemulator


@pytest.fixture
def dataset(recorder: BigQueryRecorder) -> Iterator[str]:
    admin = BigQueryWarehouse(BQ_PROJECT, endpoint=recorder.url, retry_deadline_s=5)
    name = f"jobs_{uuid.uuid4().hex[:10]}"
    admin.create_dataset(name)
    yield name
    admin._client.delete_dataset(name, delete_contents=True, not_found_ok=True, timeout=10)
    admin.close()


def _warehouse(recorder: BigQueryRecorder, cap: int | None = None) -> BigQueryWarehouse:
    return BigQueryWarehouse(
        BQ_PROJECT,
        endpoint=recorder.url,
        retry_deadline_s=5,
        tenant_id="acme",
        max_bytes_billed=(lambda: cap) if cap is not None else None,
    )


JOBS = StepJobs("acme", "Daily.Sales", "run_0a1b2c", "load_orders", 2)


def test_a_steps_jobs_carry_labels_a_deterministic_id_and_the_bytes_cap(
    recorder: BigQueryRecorder, dataset: str
) -> None:
    step = _warehouse(recorder, cap=10 << 30).session().for_step(JOBS)
    step.execute(f"CREATE TABLE {dataset}.t AS SELECT 1 AS x")
    assert step.query(f"SELECT x FROM {dataset}.t WHERE x = @x", {"x": 1}).to_pylist() == [{"x": 1}]
    inserts = recorder.job_inserts()
    assert len(inserts) == 2
    for job in inserts:
        assert job["configuration"]["labels"] == {
            "app": "cdp",
            "tenant": "acme",
            "pipeline": "daily_sales",  # '.' is no label character; upper case is lowered
            "run": "run_0a1b2c",
            "stage": "load_orders",
            "attempt": "2",
        }
        assert job["configuration"]["query"]["maximumBytesBilled"] == str(10 << 30)
        assert re.fullmatch(r"cdp_run_0a1b2c_load_orders_2_[01]_[0-9a-f]{16}", job["jobReference"]["jobId"])
    assert len({job["jobReference"]["jobId"] for job in inserts}) == 2


def test_a_redelivered_attempt_attaches_to_its_jobs_instead_of_running_them_again(
    recorder: BigQueryRecorder, dataset: str
) -> None:
    warehouse = _warehouse(recorder)
    sql = f"INSERT INTO {dataset}.t (x) VALUES (1)"
    warehouse.execute(f"CREATE TABLE {dataset}.t (x INT64)")
    first = warehouse.session().for_step(JOBS)
    assert first.execute(sql) == 1
    assert first.query(f"SELECT COUNT(*) AS n FROM {dataset}.t").to_pylist() == [{"n": 1}]
    again = warehouse.session().for_step(JOBS)  # the same attempt delivered again: same statements, same ids
    assert again.execute(sql) == 1  # the first job's answer: BigQuery said 409, the adapter fetched that job
    assert again.query(f"SELECT COUNT(*) AS n FROM {dataset}.t").to_pylist() == [{"n": 1}]
    assert warehouse.query(f"SELECT COUNT(*) AS n FROM {dataset}.t").to_pylist() == [{"n": 1}]  # inserted once
    step_jobs = [j for j in recorder.forwarded_job_ids() if j.startswith("cdp_")]
    assert len(step_jobs) == len(set(step_jobs)) == 2  # the INSERT and the SELECT ran once each
    assert len([r for r in recorder.requests if r.status == 409]) == 2  # the redelivery's two inserts
    next_attempt = warehouse.session().for_step(StepJobs("acme", "daily", "run_0a1b2c", "load_orders", 3))
    assert next_attempt.execute(sql) == 1  # a new attempt is new work: new ids
    assert warehouse.query(f"SELECT COUNT(*) AS n FROM {dataset}.t").to_pylist() == [{"n": 2}]


def test_loads_are_labelled_and_history_rows_carry_deterministic_insert_ids(
    recorder: BigQueryRecorder, dataset: str
) -> None:
    step = _warehouse(recorder).session().for_step(JOBS)
    step.write_table(f"{dataset}.loaded", pa.table({"x": [1, 2]}))
    load = [j for j in recorder.job_inserts() if "load" in j["configuration"]]
    assert len(load) == 1 and load[0]["configuration"]["labels"]["run"] == "run_0a1b2c"
    assert load[0]["jobReference"]["jobId"].startswith("cdp_run_0a1b2c_load_orders_2_")
    schema = pa.schema([("run_id", pa.string()), ("end_time", pa.timestamp("us", tz="UTC"))])
    rows = pa.Table.from_pylist([{"run_id": "r1", "end_time": dt.datetime(2026, 11, 2, tzinfo=dt.UTC)}], schema=schema)
    step.create_table(f"{dataset}.history", schema)
    step.append_rows(f"{dataset}.history", rows, ("run_id", "end_time"))
    step.append_rows(f"{dataset}.history", rows, ("run_id", "end_time"))  # a redelivered finalisation
    ids = recorder.insert_ids()
    assert len(ids) == 2 and ids[0] == ids[1]  # the same insertId: BigQuery drops the repeat within its window
    assert not [j for j in recorder.job_inserts() if "load" in j["configuration"] and "history" in str(j)]


def test_a_step_context_gives_the_tenants_plan_cap_to_its_queries(
    recorder: BigQueryRecorder, dataset: str, tmp_path: Path
) -> None:
    config_dir = tmp_path / "configs"
    (config_dir / "acme").mkdir(parents=True)
    (config_dir / "acme" / "tenant.yaml").write_text("plan: free\n")  # no tenant document: the declared plan
    ctx = StepContext(
        tenant_id="acme",
        pipeline_id="p",
        run_id="run_cap",
        stage_id="s",
        attempt=1,
        run_date=dt.date(2026, 11, 2),
        parameters={},
        variables={},
        warehouse=_warehouse(recorder).session(),
        deadline_monotonic=time.monotonic() + 60,
        runtime=Context(Settings(project=BQ_PROJECT, home=tmp_path, config_dir=config_dir)),
    )
    ctx.warehouse.query("SELECT 1 AS x")
    (job,) = recorder.job_inserts()
    assert job["configuration"]["query"]["maximumBytesBilled"] == str(10 << 30)  # the free plan's 10 GiB
    assert job["configuration"]["labels"]["run"] == "run_cap"
