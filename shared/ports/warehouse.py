"""The warehouse port: BigQuery in production, DuckDB embedded. SQL is GoogleSQL (BigQuery) in both.

Tables are named `dataset.table`; the project is the adapter's. Values reach SQL only as named query parameters
(`@name`), never pasted into the text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import pyarrow as pa

from shared.errors import TerminalError

WriteMode = Literal["append", "truncate"]

PROVISION_HINT = (
    "provision it: Terraform's tenant module (terraform/modules/tenant), or `cloudact tenants provision {tenant}`"
)
"""How a missing dataset is fixed; `require_dataset` errors end with it (`{tenant}` filled in when known)."""


@dataclass(frozen=True)
class StepJobs:
    """Whose warehouse jobs these are: a step's attempt of a run. Every BigQuery job started through
    `Warehouse.for_step` carries these as labels (billing export, INFORMATION_SCHEMA.JOBS), a job id derived from
    them (so a redelivered attempt attaches to its job instead of starting a second one), and the tenant's cap on
    the bytes one query may bill."""

    tenant_id: str
    pipeline_id: str
    run_id: str
    stage_id: str
    attempt: int
    max_bytes_billed: Callable[[], int | None] | None = field(default=None, compare=False)
    """The cap of the query about to start (the tenant's plan, shared/tenancy/plans.py), asked per query job so only
    a warehouse that bills (BigQuery) looks it up; None: no cap."""

    def labels(self) -> dict[str, str]:
        """tenant, pipeline, run, stage, attempt as BigQuery label values ([a-z0-9_-], at most 63 characters)."""
        raw = {
            "tenant": self.tenant_id,
            "pipeline": self.pipeline_id,
            "run": self.run_id,
            "stage": self.stage_id,
            "attempt": str(self.attempt),
        }
        return {key: label_value(value) for key, value in raw.items()}

    def job_id(self, sequence: int, text: str) -> str:
        """`cdp_{run}_{stage}_{attempt}_{hash}`: the same statement at the same place of the same attempt always gets
        the same id; `sequence` (the statement's rank in the attempt) keeps a repeated statement a new job."""
        digest = hashlib.sha256(f"{sequence}\n{text}".encode()).hexdigest()[:16]
        parts = (self.run_id, self.stage_id, str(self.attempt))
        return "cdp_" + "_".join(_JOB_ID_UNSAFE.sub("_", p)[:128] for p in parts) + f"_{sequence}_{digest}"


_LABEL_UNSAFE = re.compile(r"[^a-z0-9_-]")
_JOB_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_LABEL_VALUE = 63


def label_value(value: str) -> str:
    """A BigQuery label value: lower-case, characters outside [a-z0-9_-] as '_', at most 63 characters (a longer one
    keeps 54 and 8 hex digits of its sha256, so two long values stay distinct).
    https://cloud.google.com/bigquery/docs/labels-intro#requirements"""
    clean = _LABEL_UNSAFE.sub("_", value.lower())
    if len(clean) <= MAX_LABEL_VALUE:
        return clean
    return clean[:54] + "-" + hashlib.sha256(value.encode()).hexdigest()[:8]


class DatasetCreationRefused(TerminalError):
    """The identity provisioning runs as may not create datasets (BigQuery 403 on datasets.insert)."""


class Warehouse(Protocol):
    def require_dataset(self, dataset: str) -> None:
        """Check the dataset exists; a TerminalError naming it and `PROVISION_HINT` when it does not. Runtime paths
        (run finalisation, processors) call this, never `create_dataset`: on BigQuery a tenant's identity may not
        create datasets (BigQuery checks bigquery.datasets.create on the project first, even for one that exists).
        The embedded warehouse, built with `create_missing_datasets` (the local runtime, whose user owns the file),
        creates a missing one instead, without racing a parallel step doing the same."""
        ...

    def create_dataset(self, dataset: str) -> bool:
        """Provisioning only (onboarding, `cloudact tenants provision`, with an identity allowed to create datasets):
        create the dataset when missing. True when this call created it."""
        ...

    def append_rows(self, table: str, data: pa.Table, key_columns: Sequence[str]) -> int:
        """Append rows to an existing table without a load job, idempotently by the values of `key_columns`: a row
        whose key was appended before is not added again (DuckDB: always, in one transaction; BigQuery: a streaming
        insert whose insertId is that key, deduplicated by BigQuery within its best-effort window of about a minute,
        so readers of such tables take the latest row per key). Returns the rows sent."""
        ...

    def for_step(self, jobs: StepJobs) -> Warehouse:
        """The same warehouse (and, on a session, the same cancellable work) for one step's attempt: its jobs carry
        `jobs` as labels, deterministic job ids and the bytes cap. DuckDB runs no jobs and bills nothing: the handle is
        unchanged."""
        ...

    def table_exists(self, table: str) -> bool: ...

    def create_table(
        self,
        table: str,
        schema: pa.Schema,
        partition_field: str | None = None,
        cluster_by: Sequence[str] = (),
    ) -> None:
        """Create the table if it does not exist (no-op otherwise)."""
        ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a GoogleSQL query and return its rows."""
        ...

    def query_batches(
        self, sql: str, params: Mapping[str, Any] | None = None, batch_rows: int = 65_536
    ) -> Iterator[pa.RecordBatch]:
        """Run one GoogleSQL SELECT and stream its rows as record batches of at most `batch_rows`: memory holds a
        batch at a time, not the result (arrow.transform reads tables of any size through this)."""
        ...

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run a GoogleSQL DDL/DML statement; returns affected rows (0 for DDL)."""
        ...

    def write_table(self, table: str, data: pa.Table, mode: WriteMode = "append") -> int:
        """Load arrow data into an existing or new table; returns rows written."""
        ...

    def session(self) -> WarehouseSession:
        """A handle on the same data for one step's work, so that work can be stopped alone when the step's time is
        up (the engine calls `cancel_running` on timeout, before the stage is finished)."""
        ...

    def close(self) -> None:
        """Release the warehouse; on a session, only stop that session's work (the shared connection stays)."""
        ...


class WarehouseSession(Warehouse, Protocol):
    def cancel_running(self) -> bool:
        """Stop every statement or job this session has running (DuckDB: interrupt; BigQuery: cancel the job) and
        refuse to start new ones. Idempotent and callable from any thread. Returns True while some of the session's
        work may still be running: the caller calls again (briefly) until it returns False."""
        ...


@runtime_checkable
class TenantDatasets(Protocol):
    """A tenant's warehouse can list and drop the tenant's own datasets: offboarding deletes its data through it."""

    def list_datasets(self) -> list[str]:
        """The tenant's datasets (embedded: every schema of its own file; BigQuery: those named `{tenant}_...`)."""
        ...

    def drop_dataset(self, dataset: str) -> bool:
        """Drop the dataset with everything in it; False when it was not there."""
        ...


@dataclass(frozen=True)
class TableInfo:
    """One table or view of a dataset, as `cloudact tables` lists it."""

    dataset: str
    table: str
    kind: Literal["table", "view"]
    rows: int | None
    """Rows in the table (DuckDB: COUNT(*); BigQuery: the table's numRows, which excludes the streaming buffer);
    None for a view (counting would run it)."""


@dataclass(frozen=True)
class DryRun:
    """What a query would return and read, found without running it."""

    columns: tuple[tuple[str, str], ...]
    """(name, type) of each result column; the type by its GoogleSQL name (INT64, STRING, FLOAT64, NUMERIC, BOOL,
    DATE, TIMESTAMP, DATETIME, ARRAY<...>) on both engines, or the engine's own name where GoogleSQL has none."""
    bytes_processed: int | None
    """BigQuery's estimate of the bytes the query would scan (what it is billed on); None on DuckDB."""


@runtime_checkable
class WarehouseCatalog(Protocol):
    """Looking at a warehouse without changing it: its tables, and whether a query would run (both adapters)."""

    def list_tables(self, dataset: str) -> list[TableInfo]:
        """Tables and views of `dataset` (the full name, e.g. `acme_sales`), by name; [] when it does not exist."""
        ...

    def dry_run(self, sql: str, params: Mapping[str, Any] | None = None) -> DryRun:
        """Check one GoogleSQL SELECT against the warehouse without running it: syntax (and, embedded, translation),
        tables, columns and types (DuckDB: the translated statement is bound and planned; BigQuery: a dry-run job).
        Raises TerminalError naming the problem."""
        ...

    def preview(self, table: str, limit: int) -> pa.Table:
        """The first `limit` rows of `dataset.table` as stored, in no particular order, without a query job
        (BigQuery: tabledata.list, which bills nothing where `SELECT * ... LIMIT` bills a scan of every column;
        DuckDB: a LIMIT scan)."""
        ...
