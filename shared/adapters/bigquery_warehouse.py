"""The production warehouse: BigQuery through google-cloud-bigquery, also pointed at bqemulator in tests.

Why every call carries an explicit `retry=` and `timeout=`: the client's defaults retry HTTP 5xx for up to 600 s, so one
bad request (bqemulator answers some with a 500) would freeze a Cloud Function until its own timeout. Here retries stop
after `retry_deadline_s` and the pipeline's own redelivery (a TransientError -> nack) takes over. `job_retry=None` too:
with any job_retry set, `Client.query` wraps the job insert in a private 600 s retry that ignores our deadline (seen:
a query to a dead endpoint hung 575 s with `job_retry=DEFAULT_JOB_RETRY.with_deadline(2)`).

Choices that keep one code path valid on both real BigQuery and bqemulator:
- Results come back with `to_arrow(create_bqstorage_client=False)`: no Storage API client, no extra dependency.
- Destination tables are written with DDL/DML (`CREATE TABLE ... AS`, `INSERT INTO ... SELECT`), never with
  `QueryJobConfig(destination=...)`, which bqemulator ignores.
- Loads go through `load_table_from_file` with a Parquet BytesIO and no `size=`, i.e. a resumable upload: the multipart
  upload the client picks when the size is known is rejected by bqemulator.
- Runtime paths never create datasets (`require_dataset` only looks them up): on GCP datasets are provisioned by
  Terraform or onboarding, and a tenant's identity may not create one (BigQuery checks `bigquery.datasets.create` on
  the project even with `exists_ok`, https://cloud.google.com/bigquery/docs/datasets#required_permissions).

Jobs (https://cloud.google.com/bigquery/docs/running-jobs#generate-jobid): a step's handle (`for_step`) gives each
job the id `cdp_{run}_{stage}_{attempt}_{n}_{hash}`. Job ids are unique per project: inserting one that exists answers
409 Conflict, and the adapter then attaches to that job (jobs.get + wait) instead of running the statement twice.
Every query carries `maximum_bytes_billed` (the tenant's plan cap): BigQuery fails a query that would bill more
before it reads anything (https://cloud.google.com/bigquery/docs/best-practices-costs#limit_query_costs_by_restricting_the_number_of_bytes_billed),
and the adapter turns that into a TerminalError naming the step, the bytes and the cap.

Identity: on GCP each tenant's warehouse is built with `credentials=` the tenant's impersonated service account
(shared/adapters/gcp_identity.py), so its jobs can touch only that tenant's datasets whatever SQL reaches them.
`identity` says who the client acts as; every job is labelled with the tenant and that account.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.adapters.bigquery_datasets import BigQueryDatasets
from shared.adapters.bigquery_errors import mapped_errors
from shared.adapters.bigquery_statements import BigQueryStatementJobs
from shared.adapters.bigquery_values import googlesql_type, parameter, row_id
from shared.adapters.gcp_identity import credentials_identity
from shared.adapters.running_work import RunningWork, WorkCancelled
from shared.errors import TerminalError, TransientError
from shared.ports.warehouse import DryRun, StepJobs, WriteMode

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import bigquery

_INSERT_BATCH = 500
"""Rows per insertAll request (Google recommends about 500: https://cloud.google.com/bigquery/quotas#streaming_inserts)."""


class BigQueryWarehouse(BigQueryDatasets, BigQueryStatementJobs):
    """A `Warehouse` on BigQuery. `endpoint` (e.g. bqemulator's `http://127.0.0.1:9050`) switches to anonymous
    credentials (the emulator checks none); otherwise the client acts as `credentials` (a tenant's impersonated
    service account on GCP) or, without them, as the Application Default Credentials of the process.
    `tenant_id` labels every job (`tenant`), next to the account it runs as (`identity`). `max_bytes_billed` gives
    the cap of the query about to start (called per query, so a plan change applies without a restart; None: none).
    `dataset_writer` (a service account email) gets WRITER on each dataset `create_dataset` creates.

    Timeouts: `retry_deadline_s` bounds the retries of any one API call, `request_timeout_s` each HTTP request, and
    `job_timeout_s` the wait for a query or load job to finish.
    """

    def __init__(
        self,
        project: str,
        endpoint: str | None = None,
        location: str = "US",
        retry_deadline_s: float = 60.0,
        request_timeout_s: float = 30.0,
        job_timeout_s: float = 600.0,
        credentials: Credentials | None = None,
        tenant_id: str | None = None,
        max_bytes_billed: Callable[[], int | None] | None = None,
        dataset_writer: str | None = None,
    ) -> None:
        # Imported here so the embedded runtime never pays for (or needs) the BigQuery client.
        from google.cloud import bigquery

        self._bq = bigquery
        self._work: RunningWork[bigquery.QueryJob] = RunningWork()
        self._is_session = False
        self._step: StepJobs | None = None
        self._sequence: Iterator[int] = itertools.count()
        self._max_bytes_billed = max_bytes_billed
        self._dataset_writer = dataset_writer
        self._project = project
        self._tenant_id = tenant_id
        self._location = location
        self._timeout = request_timeout_s
        self._job_timeout = job_timeout_s
        self._retry = bigquery.DEFAULT_RETRY.with_deadline(retry_deadline_s)
        if endpoint:
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials

            self.identity = "anonymous (emulator)"
            self._client = bigquery.Client(
                project=project,
                location=location,
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options=ClientOptions(api_endpoint=endpoint),
            )
        else:
            self.identity = credentials_identity(credentials)
            self._client = bigquery.Client(project=project, location=location, credentials=credentials)
        self.credentials = self._client._credentials
        """What every request of this client is authorised with (google-auth credentials)."""
        self.job_labels = _job_labels(tenant_id, self.identity)
        """Labels of every query and load job: who ran it, for billing exports and audit (INFORMATION_SCHEMA.JOBS)."""

    # -- Warehouse (datasets and tables: BigQueryDatasets) -------------------------------------------------------

    def dry_run(self, sql: str, params: Mapping[str, Any] | None = None) -> DryRun:
        """A dry-run query job: BigQuery parses, resolves and plans the query, reads nothing, bills nothing."""
        config = self._bq.QueryJobConfig(
            dry_run=True,
            use_query_cache=False,
            query_parameters=[parameter(self._bq, k, v) for k, v in (params or {}).items()],
            labels=dict(self.job_labels),
        )
        with mapped_errors("dry run", self.identity):
            job = self._client.query(sql, job_config=config, retry=self._retry, timeout=self._timeout, job_retry=None)
            columns = tuple((str(f.name), googlesql_type(f)) for f in (job.schema or []))
            scanned = job.total_bytes_processed
        return DryRun(columns, int(scanned) if scanned is not None else None)

    def preview(self, table: str, limit: int) -> pa.Table:
        with mapped_errors(f"reading {table}", self.identity):
            rows = self._client.list_rows(
                self._ref(table), max_results=max(0, int(limit)), retry=self._retry, timeout=self._timeout
            )
            result: pa.Table = rows.to_arrow(create_bqstorage_client=False)
        return result

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        with self._errors("query"):
            job = self._run(sql, params)
            rows = job.result(retry=self._retry, timeout=self._job_timeout, job_retry=None)
            result: pa.Table = rows.to_arrow(create_bqstorage_client=False)
        return result

    def query_batches(
        self, sql: str, params: Mapping[str, Any] | None = None, batch_rows: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        """Stream the result page by page over the REST API (`page_size=batch_rows`); no Storage API client."""
        with self._errors("query"):
            job = self._run(sql, params)
            rows = job.result(retry=self._retry, timeout=self._job_timeout, job_retry=None, page_size=batch_rows)
            yield from rows.to_arrow_iterable()

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run DDL/DML; returns BigQuery's `num_dml_affected_rows` (None, i.e. 0, for DDL such as CREATE TABLE AS)."""
        with self._errors("execute"):
            job = self._run(sql, params)
            job.result(retry=self._retry, timeout=self._job_timeout, job_retry=None)
        return int(job.num_dml_affected_rows or 0)

    def write_table(self, table: str, data: pa.Table, mode: WriteMode = "append") -> int:
        """Load arrow rows as Parquet, creating the table from the arrow schema if missing (a load job: for bulk data;
        small recurring writes go through `append_rows`, which no per-table daily load quota limits).

        The load names the table's own schema (REQUIRED modes, NUMERIC, partitioning all kept): a schema derived from
        the arrow data could differ in mode or type and make BigQuery reject the append or rewrite the table.
        """
        from google.api_core.exceptions import Conflict

        if mode not in ("append", "truncate"):
            raise TerminalError(f"write mode must be 'append' or 'truncate', got {mode!r}")
        ref = self._ref(table)
        if not self.table_exists(table):
            self.create_table(table, data.schema)
        with mapped_errors(f"writing {table}", self.identity):
            schema = self._client.get_table(ref, retry=self._retry, timeout=self._timeout).schema
            config = self._bq.LoadJobConfig(
                source_format=self._bq.SourceFormat.PARQUET,
                write_disposition="WRITE_TRUNCATE" if mode == "truncate" else "WRITE_APPEND",
                schema=schema,
                labels=dict(self.job_labels),
            )
            parquet_options = self._bq.ParquetOptions()  # type: ignore[no-untyped-call]
            parquet_options.enable_list_inference = True  # list<T> columns load as REPEATED T, not a record wrapper
            config.parquet_options = parquet_options
            buf = io.BytesIO()
            # BigQuery stores microseconds; nanosecond arrow timestamps would be rejected.
            pq.write_table(data, buf, coerce_timestamps="us", allow_truncated_timestamps=True)
            buf.seek(0)
            job_id = self._job_id(f"load {ref} {mode} {data.num_rows} {data.schema}")
            try:
                # No size= on purpose: a resumable upload (module docstring). No retry= argument exists here.
                job = self._client.load_table_from_file(
                    buf, ref, job_config=config, job_id=job_id, timeout=self._timeout
                )
            except Conflict:  # a redelivered attempt: this load was started before, wait for it
                job = self._attach(job_id)
            job.result(retry=self._retry, timeout=self._job_timeout)
        return int(data.num_rows)

    def append_rows(self, table: str, data: pa.Table, key_columns: Sequence[str]) -> int:
        """A streaming insert (tabledata.insertAll) with each row's key as its insertId.

        Why streaming and not a load job: loads count against 1,500 load jobs per table per day
        (https://cloud.google.com/bigquery/quotas#load_jobs), which one history write per run exhausts at ~1,500 runs
        a day per tenant; insertAll has no per-table daily cap (https://cloud.google.com/bigquery/quotas#streaming_inserts).
        Why not the Storage Write API: exactly-once there needs application-created streams and protobuf row
        descriptors (google-cloud-bigquery-storage), a second client and dependency for a few rows per run.
        BigQuery drops a repeated insertId on a best-effort basis for about a minute
        (https://cloud.google.com/bigquery/docs/streaming-data-into-bigquery#dataconsistency); rows in the streaming
        buffer cannot be updated or deleted for up to 90 minutes, so these tables are append-only and their readers
        take the latest row per key (shared/runs/metadata.py).
        """
        if not key_columns:
            raise TerminalError("append_rows needs the key columns that make a row unique")
        ref = self._ref(table)
        rows = data.to_pylist()
        row_ids = [row_id(ref, key_columns, row) for row in rows]
        from google.api_core.exceptions import NotFound

        with mapped_errors(f"writing {table}", self.identity):
            bq_table = self._client.get_table(ref, retry=self._retry, timeout=self._timeout)
            for start in range(0, len(rows), _INSERT_BATCH):
                try:
                    errors = self._client.insert_rows(
                        bq_table,
                        rows[start : start + _INSERT_BATCH],
                        row_ids=row_ids[start : start + _INSERT_BATCH],
                        retry=self._retry,
                        timeout=self._timeout,
                    )
                except NotFound as exc:  # get_table found it: a table created moments ago is not streamable yet
                    raise TransientError(f"BigQuery writing {table}: not yet open to streaming: {exc}", 30.0) from exc
                if errors:
                    raise TerminalError(f"BigQuery writing {table}: rows refused: {str(errors)[:500]}")
        return len(rows)

    def session(self) -> BigQueryWarehouse:
        """A handle sharing this client for one step's work: `cancel_running` cancels the jobs it started, no others."""
        session = copy.copy(self)
        session._work = RunningWork()
        session._is_session = True
        return session

    def for_step(self, jobs: StepJobs) -> BigQueryWarehouse:
        """This handle's client and running work (a cancel of the session still reaches these jobs), with the step's
        labels and deterministic job ids: the n-th statement of an attempt always gets the same id."""
        handle = copy.copy(self)
        handle._step = jobs
        handle._sequence = itertools.count()
        handle.job_labels = {**self.job_labels, **jobs.labels()}
        return handle

    def cancel_running(self) -> bool:
        """Cancel the query jobs this session started (jobs.cancel; a finished job ignores it) and refuse new ones.
        False: the jobs stop on the server, and none starts after this (`_run`), so there is nothing to wait for."""
        self._work.cancel(self._cancel_job)
        return False

    def close(self) -> None:
        """Close the client; a session only cancels its own jobs (the client is shared)."""
        if self._is_session:
            self.cancel_running()
        else:
            self._client.close()  # type: ignore[no-untyped-call]

    # -- internals -----------------------------------------------------------------------------------------------

    def _run(self, sql: str, params: Mapping[str, Any] | None) -> bigquery.QueryJob:
        from google.api_core.exceptions import Conflict

        config = self._query_config(params)
        job_id = self._job_id(sql + "\n" + repr(sorted((params or {}).items(), key=lambda kv: kv[0])))
        self._work.check()
        try:
            job = self._client.query(
                sql, job_config=config, job_id=job_id, retry=self._retry, timeout=self._timeout, job_retry=None
            )
        except Conflict:  # this attempt already started this statement (a redelivery): wait for that job instead
            job = self._attach(job_id)
        if self._is_session:  # a session lives for one step; the shared handle keeps no list of every job it ran
            try:
                self._work.started(job)
            except WorkCancelled:  # cancelled while the job was being inserted
                self._cancel_job(job)
                raise
        return job

    def _query_config(self, params: Mapping[str, Any] | None) -> bigquery.QueryJobConfig:
        """Parameters, the job's labels and the tenant's bytes cap (asked now: a plan change applies at once)."""
        query_parameters = [parameter(self._bq, k, v) for k, v in (params or {}).items()]
        config: bigquery.QueryJobConfig = self._bq.QueryJobConfig(
            query_parameters=query_parameters, labels=dict(self.job_labels)
        )
        cap_of = self._step.max_bytes_billed if self._step and self._step.max_bytes_billed else self._max_bytes_billed
        cap = cap_of() if cap_of else None
        if cap is not None:
            config.maximum_bytes_billed = cap
        return config

    def _attach(self, job_id: str | None) -> Any:
        """The job a Conflict said exists (jobs.get): a QueryJob or LoadJob, as the insert that collided."""
        if job_id is None:  # only an id chosen here can collide: the client's random ones do not
            raise TransientError("BigQuery answered 409 to a job insert with a random id; retrying")
        return self._client.get_job(job_id, location=self._location, retry=self._retry, timeout=self._timeout)

    def _job_id(self, text: str) -> str | None:
        """The next job's id within a step's attempt; None (the client picks a random one) outside a step."""
        return self._step.job_id(next(self._sequence), text) if self._step else None

    def _errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        return mapped_errors(action, self.identity, f"step {self._step.stage_id}" if self._step else "the query")

    def _cancel_job(self, job: bigquery.QueryJob) -> None:
        self._client.cancel_job(job.job_id, location=job.location, retry=self._retry, timeout=self._timeout)


# -- labels --------------------------------------------------------------------------------------------------------


def _job_labels(tenant_id: str | None, identity: str) -> dict[str, str]:
    """`app`, `tenant` and `identity` (the account id: label values allow [a-z0-9_-], no '@')."""
    labels = {"app": "cdp"}
    if tenant_id:
        labels["tenant"] = tenant_id
    if "@" in identity:
        labels["identity"] = identity.split("@", 1)[0]
    return labels
