"""The warehouse port: BigQuery in production, DuckDB embedded. SQL is GoogleSQL (BigQuery) in both.

Tables are named `dataset.table`; the project is the adapter's. Values reach SQL only as named query parameters
(`@name`), never pasted into the text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import pyarrow as pa

WriteMode = Literal["append", "truncate"]


class Warehouse(Protocol):
    def ensure_dataset(self, dataset: str) -> None: ...

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
    """(name, engine type name) of each result column."""
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
