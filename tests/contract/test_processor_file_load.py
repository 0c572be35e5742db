"""file.load: parquet / csv / ndjson from the tenant's folders or gs:// (a real GCS emulator) into a table."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.catalog.loader import PipelineValidationError, load_pipeline
from shared.errors import TerminalError
from shared.pipelines.spec import StepSpec
from shared.pipelines.templating import ValidationScope
from shared.processors import file_load, file_sources, table_sink
from shared.tenancy.sources import TenantSourcesError, load_tenant_sources
from tests.processor_support import StepEnv, engine_fixture, env_fixture, warehouse_fixture  # noqa: F401

CSV = "id,name,amount,day\n1,alpha,1.5,2026-11-01\n2,beta,,2026-11-02\n3,gamma,3.25,2026-11-03\n"


def _step(source: dict[str, Any], config: dict[str, Any] | None = None, mode: str = "truncate") -> dict[str, Any]:
    return {
        "step_id": "load",
        "ps_type": "file.load",
        "source": source,
        "destination": {"dataset": "raw", "table": "landed", "write_mode": mode},
        "config": config or {},
    }


def test_parquet_lands_with_its_own_schema(env: StepEnv) -> None:
    data = pa.table(
        {
            "id": pa.array(range(300), pa.int64()),
            "ts": pa.array(
                [dt.datetime(2026, 11, 1, i % 24, tzinfo=dt.UTC) for i in range(300)], pa.timestamp("us", "UTC")
            ),
            "tags": [[f"t{i}"] for i in range(300)],
        }
    )
    pq.write_table(data, env.landing / "events.parquet", row_group_size=64)
    result = env.run(_step({"path": "events.parquet"}, {"batch_rows": 50}))
    assert result.rows_out == 300 and result.details["format"] == "parquet"
    rows = env.table("raw", "landed", order_by="id")
    assert rows[5] == {"id": 5, "ts": dt.datetime(2026, 11, 1, 5, tzinfo=dt.UTC), "tags": ["t5"]}


def test_csv_with_an_explicit_schema(env: StepEnv) -> None:
    (env.landing / "sales.csv").write_text(CSV)
    schema = {"id": "INT64", "name": "STRING", "amount": "NUMERIC", "day": "DATE"}
    env.run(_step({"path": "sales.csv"}, {"schema": schema}))
    rows = env.table("raw", "landed", order_by="id")
    assert [r["day"] for r in rows] == [dt.date(2026, 11, d) for d in (1, 2, 3)]
    assert [None if r["amount"] is None else float(r["amount"]) for r in rows] == [1.5, None, 3.25]


def test_gzipped_csv_and_ndjson_with_inferred_schemas(env: StepEnv) -> None:
    (env.landing / "sales.csv.gz").write_bytes(gzip.compress(CSV.encode()))
    env.run(_step({"path": "sales.csv.gz"}))
    assert [r["name"] for r in env.table("raw", "landed", order_by="id")] == ["alpha", "beta", "gamma"]
    lines = [{"id": i, "meta": {"source": "api", "n": i}, "seen": "2026-11-01T10:00:00Z"} for i in range(4)]
    (env.landing / "events.ndjson").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    env.run(_step({"path": "events.ndjson"}))
    rows = env.table("raw", "landed", order_by="id")
    assert [r["meta"]["n"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["seen"].replace(tzinfo=None) == dt.datetime(2026, 11, 1, 10)


def test_a_glob_and_placeholders_load_every_matching_file(env: StepEnv) -> None:
    folder = env.landing / "exports" / "2026-11-02"
    folder.mkdir(parents=True)
    for part in range(3):
        pq.write_table(pa.table({"part": [part] * 10, "n": list(range(10))}), folder / f"part-{part}.parquet")
    (folder / "notes.txt").write_text("not data")
    result = env.run(_step({"path": "exports/{run_date}/part-*.parquet"}), run_date=dt.date(2026, 11, 2))
    assert result.rows_out == 30
    assert sorted({r["part"] for r in env.table("raw", "landed")}) == [0, 1, 2]
    assert env.run(_step({"path": "exports/*/part-1.parquet"})).rows_out == 10
    with pytest.raises(TerminalError, match="outside the tenant's folders"):
        env.run(_step({"path": "../*/part-1.parquet"}))


def test_append_adds_and_truncate_replaces(env: StepEnv) -> None:
    pq.write_table(pa.table({"n": [1, 2, 3]}), env.landing / "n.parquet")
    env.run(_step({"path": "n.parquet"}))
    env.run(_step({"path": "n.parquet"}, mode="append"))
    assert len(env.table("raw", "landed")) == 6
    env.run(_step({"path": "n.parquet"}))
    assert len(env.table("raw", "landed")) == 3


def test_append_happens_once_per_run_and_step(env: StepEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    pq.write_table(pa.table({"n": list(range(250))}), env.landing / "n.parquet", row_group_size=100)
    step = _step({"path": "n.parquet"}, {"batch_rows": 100}, mode="append")
    env.run(step, run_id="run_once")
    env.run(step, run_id="run_once")  # a redelivered / retried stage of the same run
    assert len(env.table("raw", "landed")) == 250
    monkeypatch.setattr(table_sink, "DEFAULT_FLUSH_ROWS", 100)  # also when the rows were flushed in chunks
    env.run(step, run_id="run_twice")
    env.run(step, run_id="run_twice")
    assert len(env.table("raw", "landed")) == 500


def test_big_files_go_through_a_staging_table(env: StepEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_sink, "DEFAULT_FLUSH_ROWS", 200)
    pq.write_table(pa.table({"n": list(range(1000))}), env.landing / "n.parquet", row_group_size=100)
    result = env.run(_step({"path": "n.parquet"}, {"batch_rows": 100}), run_id="run_big")
    assert result.rows_out == 1000
    assert sorted(r["n"] for r in env.table("raw", "landed")) == list(range(1000))
    assert not env.warehouse.table_exists(f"{env.tenant_id}_raw._cloudact_stage_run_big_load")


@pytest.mark.parametrize(
    "path",
    ["../../../../etc/passwd", "/etc/passwd", "../othertenant/secrets.csv", "exports/../../x.csv"],
)
def test_paths_outside_the_tenants_folders_are_refused(env: StepEnv, path: str) -> None:
    with pytest.raises(TerminalError, match="outside the tenant's folders"):
        env.run(_step({"path": path, "format": "csv"}))


def test_a_symlink_out_of_the_landing_folder_is_refused(env: StepEnv, tmp_path: Any) -> None:
    outside = tmp_path / "private.csv"
    outside.write_text(CSV)
    (env.landing / "innocent.csv").symlink_to(outside)
    with pytest.raises(TerminalError, match="outside the tenant's folders"):
        env.run(_step({"path": "innocent.csv"}))


def test_the_platforms_own_files_and_other_tenants_are_out_of_reach(env: StepEnv, tmp_path: Any) -> None:
    home = env.context.settings.home
    (home / "credentials.json").write_text('{"admin_token": "x"}')
    other = home / "files" / "othertenant"
    other.mkdir(parents=True)
    (other / "orders.csv").write_text(CSV)
    (env.landing / "exports").mkdir()
    (env.landing / "exports" / "mine.csv").write_text(CSV)
    (env.landing / "linked").symlink_to(other, target_is_directory=True)
    for path in (
        "../../credentials.json",
        str(home / "credentials.json"),
        str(other / "orders.csv"),
        "linked/orders.csv",  # a symlinked folder
        "linked/*.csv",  # ... matched by a glob
        "exports/*/../../../othertenant/orders.csv",  # '..' after a wildcard
        "*/../../othertenant/*.csv",
    ):
        with pytest.raises(TerminalError, match=r"outside the tenant's folders|no file matches") as caught:
            env.run(_step({"path": path, "format": "csv"}))
        assert "admin_token" not in str(caught.value)
    env.run(_step({"path": str(env.landing / "exports" / "mine.csv")}))  # absolute, but inside: fine
    assert len(env.table("raw", "landed")) == 3


def test_a_folder_swapped_for_a_symlink_after_the_check_is_caught_at_open(
    env: StepEnv, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path check passes on a real folder; before the file is opened the folder becomes a symlink to another
    tenant's files (a race). What was opened is checked again, so nothing is read."""
    (env.landing / "exports").mkdir()
    (env.landing / "exports" / "day.csv").write_text(CSV)
    elsewhere = tmp_path / "victim"
    elsewhere.mkdir()
    (elsewhere / "day.csv").write_text("id,name,amount,day\n666,stolen,0,2026-11-01\n")
    checked = file_sources.resolve_local

    def check_then_swap(location: str, roots: list[Any]) -> list[Any]:
        found = checked(location, roots)
        (env.landing / "exports").rename(env.landing / "exports_before")
        (env.landing / "exports").symlink_to(elsewhere, target_is_directory=True)
        return found

    monkeypatch.setattr(file_sources, "resolve_local", check_then_swap)
    with pytest.raises(TerminalError, match="outside the tenant's folders"):
        env.run(_step({"path": "exports/day.csv"}))
    assert not env.warehouse.table_exists(f"{env.tenant_id}_raw.landed")


def test_a_parameter_cannot_walk_the_path(env: StepEnv) -> None:
    with pytest.raises(TerminalError, match="not allowed in a path"):
        env.run(_step({"path": "exports/{day}.csv"}), parameters={"day": "../../etc/passwd"})


def test_the_tenant_config_folder_is_readable(env: StepEnv) -> None:
    seed = env.context.settings.config_dir / env.tenant_id / "seeds"
    seed.mkdir()
    (seed / "currencies.csv").write_text("code,rate\nUSD,1.0\nEUR,1.08\n")
    env.run(_step({"path": str(seed / "currencies.csv")}))
    assert {r["code"] for r in env.table("raw", "landed")} == {"USD", "EUR"}


def test_missing_files_and_bad_contents_fail_clearly(env: StepEnv) -> None:
    with pytest.raises(TerminalError, match=r"file not found: 'nope\.parquet'"):
        env.run(_step({"path": "nope.parquet"}))
    with pytest.raises(TerminalError, match="no file matches"):
        env.run(_step({"path": "nope-*.parquet"}))
    (env.landing / "data.bin").write_bytes(b"\x00\x01")
    with pytest.raises(TerminalError, match="cannot tell the format"):
        env.run(_step({"path": "data.bin"}))
    (env.landing / "broken.parquet").write_text("not parquet at all")
    with pytest.raises(TerminalError, match=r"cannot read .*broken\.parquet as parquet"):
        env.run(_step({"path": "broken.parquet"}))
    (env.landing / "sales.csv").write_text(CSV)
    with pytest.raises(TerminalError, match=r"cannot read .*sales\.csv as csv"):
        env.run(_step({"path": "sales.csv"}, {"schema": {"id": "INT64", "name": "DATE"}}))


def test_validation_names_the_key() -> None:
    def issues(raw: dict[str, Any]) -> dict[tuple[str | int, ...], str]:
        step = StepSpec.model_validate({"step_id": "load", "ps_type": "file.load", **raw})
        return {issue.path: issue.message for issue in file_load.SPEC.validate(step, ValidationScope())}

    ok = _step({"path": "x.parquet"})
    assert issues({k: v for k, v in ok.items() if k not in ("step_id", "ps_type")}) == {}
    found = issues(
        {
            "source": {"path": "x.csv", "format": "xlsx", "csv": {"delimiter": ";;"}},
            "destination": {"dataset": "metadata", "table": "t"},
            "config": {"schema": {"amount": "MONEY"}},
        }
    )
    assert "'parquet', 'csv' or 'ndjson'" in found[("source", "format")]
    assert "at most 1 character" in found[("source", "csv", "delimiter")]
    assert "reserved for run history" in found[("destination", "dataset")]
    assert "unknown column type 'MONEY'" in found[("config", "schema", "amount")]


# -- gs:// against a real GCS emulator ---------------------------------------------------------------------------


def _declare_buckets(env: StepEnv, *buckets: str) -> None:
    tenant_yaml = env.context.settings.config_dir / env.tenant_id / "tenant.yaml"
    tenant_yaml.write_text(f"tenant_id: {env.tenant_id}\nsources:\n  gcs_buckets: [{', '.join(buckets)}]\n")


@pytest.fixture
def gcs_bucket(env: StepEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The emulator's `exports` bucket (declared by the test tenant) and `other-tenant` (not declared)."""
    from gcp_storage_emulator.server import create_server

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="exports")
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    file_sources.reset_gcs_client()
    from google.cloud import storage

    client = storage.Client(project="test")
    client.create_bucket("other-tenant").blob("billing/export.csv").upload_from_string(b"day,n\n2026-11-02,7\n")
    _declare_buckets(env, "exports")
    yield client.bucket("exports")
    file_sources.reset_gcs_client()
    server.stop()


def test_gcs_objects_load_with_globs(env: StepEnv, gcs_bucket: Any) -> None:
    for day in ("2026-11-01", "2026-11-02"):
        buf = io.BytesIO()
        pq.write_table(pa.table({"day": [day] * 5, "n": list(range(5))}), buf)
        gcs_bucket.blob(f"billing/{day}/export.parquet").upload_from_string(buf.getvalue())
    gcs_bucket.blob("billing/2026-11-02/extra.csv.gz").upload_from_string(gzip.compress(b"day,n\n2026-11-02,99\n"))
    result = env.run(_step({"path": "gs://exports/billing/*/export.parquet"}))
    assert result.rows_out == 10 and result.details["source"] == "gs://exports/billing/*/export.parquet"
    env.run(_step({"path": "gs://exports/billing/{run_date}/extra.csv.gz"}), run_date=dt.date(2026, 11, 2))
    assert env.table("raw", "landed") == [{"day": "2026-11-02", "n": 99}]  # the table keeps its STRING day
    with pytest.raises(TerminalError, match=r"gs://exports/billing/missing\.parquet: not found"):
        env.run(_step({"path": "gs://exports/billing/missing.parquet"}))
    assert os.environ["STORAGE_EMULATOR_HOST"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    "path",
    [
        "gs://other-tenant/billing/export.csv",
        "gs://other-tenant/billing/*.csv",
        "gs://Exports/billing/x.csv",
        "gs://exports.evil/billing/x.csv",
        "gs://exports@other-tenant/billing/x.csv",
    ],
)
def test_undeclared_buckets_are_refused_at_run_time(env: StepEnv, gcs_bucket: Any, path: str) -> None:
    with pytest.raises(
        TerminalError, match=r"is not declared in tenant\.yaml sources\.gcs_buckets \(declared: exports\)"
    ):
        env.run(_step({"path": path, "format": "csv"}))


def test_a_rendered_bucket_is_checked_after_rendering(env: StepEnv, gcs_bucket: Any) -> None:
    gcs_bucket.blob("billing/export.csv").upload_from_string(b"day,n\n2026-11-02,1\n")
    env.run(_step({"path": "gs://{bucket}/billing/export.csv"}), parameters={"bucket": "exports"})
    assert env.table("raw", "landed") == [{"day": dt.date(2026, 11, 2), "n": 1}]
    with pytest.raises(TerminalError, match="'other-tenant' is not declared"):
        env.run(_step({"path": "gs://{bucket}/billing/export.csv"}), parameters={"bucket": "other-tenant"})
    assert env.table("raw", "landed") == [{"day": dt.date(2026, 11, 2), "n": 1}]  # nothing of the other bucket


def _pipeline_file(env: StepEnv, path: str) -> Any:
    folder = env.context.settings.config_dir / env.tenant_id / "pipelines"
    folder.mkdir(exist_ok=True)
    file = folder / "gcs_load.yaml"
    file.write_text(
        "pipeline_id: gcs_load\n"
        "parameters:\n  bucket: {type: string, default: exports}\n"
        "steps:\n"
        "  - step_id: load\n"
        "    ps_type: file.load\n"
        f"    source: {{path: {json.dumps(path)}}}\n"
        "    destination: {dataset: raw, table: landed}\n"
    )
    return file


def test_undeclared_buckets_are_refused_at_validation_time(env: StepEnv) -> None:
    _declare_buckets(env, "acme-exports", "acme.billing.example")
    for accepted in ("gs://acme-exports/a/*.parquet", "gs://acme.billing.example/x.csv", "gs://{bucket}/x.csv"):
        load_pipeline(_pipeline_file(env, accepted))
    with pytest.raises(PipelineValidationError) as caught:
        load_pipeline(_pipeline_file(env, "gs://globex-exports/a.parquet"))
    (issue,) = caught.value.issues
    assert (issue.line, issue.key) == (7, "steps[0].source.path")
    assert "bucket 'globex-exports' is not declared" in issue.message and "acme-exports" in issue.message


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ("sources:\n  gcs_buckets: [gs://acme-exports]\n", "write the bucket name alone"),
        ("sources:\n  gcs_buckets: [ok-bucket, Bad_Upper]\n", "'Bad_Upper' is not a bucket name"),
        ("sources:\n  gcs_buckets: [a, b]\n", "not a bucket name"),
        ("sources:\n  gcs_buckets: [x-bucket, x-bucket]\n", "listed twice"),
        ("sources:\n  gcs_buckets: [google-data]\n", "contain 'google'"),
        ("sources:\n  gcs_bucket: [x-bucket]\n", "Extra inputs are not permitted"),
        ("sources: [x-bucket]\n", "must be a mapping"),
    ],
)
def test_tenant_yaml_sources_are_validated_with_positions(env: StepEnv, declaration: str, message: str) -> None:
    tenant_yaml = env.context.settings.config_dir / env.tenant_id / "tenant.yaml"
    tenant_yaml.write_text(f"tenant_id: {env.tenant_id}\n{declaration}")
    with pytest.raises(TenantSourcesError) as caught:
        load_tenant_sources(env.context.settings.config_dir, env.tenant_id)
    issue = caught.value.issues[0]
    assert issue.file == str(tenant_yaml) and issue.line in (2, 3) and message in issue.message
    with pytest.raises(PipelineValidationError, match=r"tenant's sources cannot be read: .*tenant\.yaml:\d+:\d+"):
        load_pipeline(_pipeline_file(env, "gs://x-bucket/a.csv"))
