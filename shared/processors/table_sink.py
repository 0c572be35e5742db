"""Land a stream of record batches in one warehouse table with bounded memory and all-or-nothing effect.

Memory holds one flush of rows at most (DEFAULT_FLUSH_ROWS / DEFAULT_FLUSH_BYTES). Rows beyond that are flushed
chunk by chunk into a staging table next to the destination, `_cloudact_stage_<run>_<step>` (a retried attempt drops
the leftovers of the one before it), and moved over by one statement or transaction at the end, so a step that dies
half-way leaves the destination as it was.

- truncate: a result that fits in one flush is written with one `write_table` (atomic on both engines); a bigger one
  replaces the rows from the staging table in one transaction. The table itself (and its partitioning) is kept while
  the columns stay the same, and replaced when they changed (a reloaded export with a new column must not fail).
- append: exactly once per (run, step). Rows always go through the staging table, and the insert is recorded in the
  dataset's `_cloudact_append_log` in the same transaction, guarded by "not recorded yet" - the same log and rule as
  bigquery.query - so an attempt that committed but crashed before the stage was marked done cannot append twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress

import pyarrow as pa

from shared.errors import TerminalError
from shared.ports.warehouse import Warehouse
from shared.processors.step_config import WriteMode, quote_column

STAGE_PREFIX = "_cloudact_stage_"
"""Shared with bigquery.query: tenants cannot name a table like this (names start with a letter)."""
APPEND_LOG = "_cloudact_append_log"
APPEND_LOG_SCHEMA = pa.schema(
    [
        pa.field("write_id", pa.string(), nullable=False),
        pa.field("table_name", pa.string()),
        pa.field("row_count", pa.int64()),
        pa.field("written_at", pa.timestamp("us", tz="UTC")),
    ]
)
"""The same table bigquery.query keeps per dataset (one row per (run, step) that appended)."""
DEFAULT_FLUSH_ROWS = 500_000
DEFAULT_FLUSH_BYTES = 64 * 1024 * 1024
_UNSAFE = re.compile(r"[^a-z0-9_]")


class TableSink:
    def __init__(
        self,
        warehouse: Warehouse,
        table: str,
        mode: WriteMode,
        run_id: str,
        step_id: str,
        flush_rows: int | None = None,
        flush_bytes: int | None = None,
    ) -> None:
        if mode not in ("append", "truncate"):
            raise TerminalError(f"write_mode must be append or truncate, got {mode!r}")
        self._wh = warehouse
        self._table = table
        self._mode = mode
        self._dataset = table.rsplit(".", 1)[0]
        run, step = _UNSAFE.sub("_", run_id.lower()), _UNSAFE.sub("_", step_id.lower())
        self._stage = f"{self._dataset}.{STAGE_PREFIX}{run}_{step}"[:1000]
        self._write_id = f"{run}:{step}"
        self._flush_rows = flush_rows or DEFAULT_FLUSH_ROWS
        self._flush_bytes = flush_bytes or DEFAULT_FLUSH_BYTES
        self._buffer: list[pa.RecordBatch] = []
        self._buffered_rows = 0
        self._buffered_bytes = 0
        self._staging = False
        self._schema: pa.Schema | None = None
        self.rows_written = 0
        self.bytes_written = 0

    @property
    def schema(self) -> pa.Schema | None:
        return self._schema

    def write(self, data: pa.RecordBatch | pa.Table) -> None:
        batches: Iterable[pa.RecordBatch] = data.to_batches() if isinstance(data, pa.Table) else [data]
        for batch in batches:
            self._add(batch)

    def commit(self, empty_schema: pa.Schema | None = None) -> int:
        """Make the rows visible in the destination; returns how many were written.

        `empty_schema` types the destination when no batch arrived at all (an empty source still replaces a table).
        """
        schema = self._schema or empty_schema
        if self._mode == "append":
            if self.rows_written == 0:
                if schema is not None and not self._wh.table_exists(self._table):
                    self._wh.create_table(self._table, schema)
                return 0
            self._flush()
            self._append_once()
        elif not self._staging:
            if schema is None:
                if self._wh.table_exists(self._table):
                    self._wh.execute(f"DELETE FROM {self._table} WHERE TRUE")
                return 0
            data = pa.Table.from_batches(self._buffer, schema=schema)
            self._clear_buffer()
            if self._columns_changed(schema):
                self._wh.execute(f"DROP TABLE IF EXISTS {self._table}")
            self._wh.write_table(self._table, data, "truncate")
            return self.rows_written
        else:
            self._flush()
            self._replace_from_stage()
        self._drop_stage()
        return self.rows_written

    def abort(self) -> None:
        """Forget buffered rows and drop the staging table (best effort: a retry drops it anyway)."""
        self._clear_buffer()
        if self._staging:
            with suppress(Exception):  # the original error matters more than a failed cleanup
                self._drop_stage()

    # -- internals -------------------------------------------------------------------------------------------------

    def _add(self, batch: pa.RecordBatch) -> None:
        if self._schema is None:
            self._schema = batch.schema
        elif batch.schema != self._schema:
            try:
                batch = batch.select(self._schema.names).cast(self._schema)
            except (KeyError, ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise TerminalError(
                    f"{self._table}: a batch does not match the first batch's columns: {batch.schema} vs {self._schema}"
                ) from exc
        if batch.num_rows == 0:
            return
        self._buffer.append(batch)
        self._buffered_rows += batch.num_rows
        self._buffered_bytes += batch.nbytes
        self.rows_written += batch.num_rows
        self.bytes_written += batch.nbytes
        if self._buffered_rows >= self._flush_rows or self._buffered_bytes >= self._flush_bytes:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer or self._schema is None:
            return
        if not self._staging:
            self._wh.execute(f"DROP TABLE IF EXISTS {self._stage}")
            self._staging = True
        data = pa.Table.from_batches(self._buffer, schema=self._schema)
        self._clear_buffer()
        self._wh.write_table(self._stage, data, "append")

    def _columns(self) -> str:
        assert self._schema is not None
        return ", ".join(quote_column(name) for name in self._schema.names)

    def _replace_from_stage(self) -> None:
        assert self._schema is not None
        columns = self._columns()
        if self._columns_changed(self._schema):
            self._wh.execute(f"CREATE OR REPLACE TABLE {self._table} AS SELECT {columns} FROM {self._stage}")
            return
        if not self._wh.table_exists(self._table):
            self._wh.create_table(self._table, self._schema)
        self._wh.execute(
            f"BEGIN TRANSACTION; DELETE FROM {self._table} WHERE TRUE; "
            f"INSERT INTO {self._table} ({columns}) SELECT {columns} FROM {self._stage}; COMMIT TRANSACTION"
        )

    def _append_once(self) -> None:
        assert self._schema is not None
        if not self._wh.table_exists(self._table):
            self._wh.create_table(self._table, self._schema)
        log = f"{self._dataset}.{APPEND_LOG}"
        if not self._wh.table_exists(log):
            self._wh.create_table(log, APPEND_LOG_SCHEMA)
        columns = self._columns()
        # Literals, not @params (bqemulator drops parameters inside a script): both are [a-z0-9_.:] only.
        table_name = self._table.replace("'", "")
        not_written = f"NOT EXISTS (SELECT 1 FROM {log} WHERE write_id = '{self._write_id}')"
        self._wh.execute(
            "BEGIN TRANSACTION;\n"
            f"INSERT INTO {self._table} ({columns}) SELECT {columns} FROM {self._stage} WHERE {not_written};\n"
            f"INSERT INTO {log} (write_id, table_name, row_count, written_at) "
            f"SELECT '{self._write_id}', '{table_name}', {self.rows_written}, CURRENT_TIMESTAMP() "
            f"FROM (SELECT 1) WHERE {not_written};\n"
            "COMMIT TRANSACTION;"
        )

    def _columns_changed(self, schema: pa.Schema) -> bool:
        """Does the existing destination have other columns than the new rows? (See the module docstring.)"""
        if not self._wh.table_exists(self._table):
            return False
        existing = self._wh.query(f"SELECT * FROM {self._table} LIMIT 0").schema.names
        return [n.lower() for n in existing] != [n.lower() for n in schema.names]

    def _clear_buffer(self) -> None:
        self._buffer = []
        self._buffered_rows = 0
        self._buffered_bytes = 0

    def _drop_stage(self) -> None:
        self._wh.execute(f"DROP TABLE IF EXISTS {self._stage}")
        self._staging = False
