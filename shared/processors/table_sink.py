"""Land a stream of record batches in one warehouse table with bounded memory and all-or-nothing effect.

Small results (everything fits in one flush) are written with a single `write_table`, which is atomic on both
engines. Larger ones are flushed chunk by chunk into a staging table next to the destination and moved over with one
transaction at the end, so a step that dies half-way leaves the destination as it was. The staging table is named
after the run and step (`_cloudact_stage_<run>_<step>`), so a retried attempt drops the leftovers of the one
before it.

`truncate` keeps the destination table (and its partitioning) when the columns are the same, and replaces the table
when they changed (a new column in a reloaded export must not fail the load).

Appending is at-least-once like every hop here: an attempt that committed but crashed before the stage was recorded
as done appends again on retry. Use `truncate` (or dedupe downstream) where that matters.
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
"""Shared with bigquery.query: tenants cannot name a table like this."""
DEFAULT_FLUSH_ROWS = 500_000
DEFAULT_FLUSH_BYTES = 64 * 1024 * 1024


class TableSink:
    def __init__(
        self,
        warehouse: Warehouse,
        table: str,
        mode: WriteMode,
        stage_tag: str,
        flush_rows: int | None = None,
        flush_bytes: int | None = None,
    ) -> None:
        if mode not in ("append", "truncate"):
            raise TerminalError(f"write_mode must be append or truncate, got {mode!r}")
        self._wh = warehouse
        self._table = table
        self._mode = mode
        dataset = table.rsplit(".", 1)[0]
        self._stage = f"{dataset}.{STAGE_PREFIX}{re.sub(r'[^a-z0-9_]', '_', stage_tag.lower())}"[:1000]
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
        if not self._staging:
            schema = self._schema or empty_schema
            if schema is None:
                if self._mode == "truncate" and self._wh.table_exists(self._table):
                    self._wh.execute(f"DELETE FROM {self._table} WHERE TRUE")
                return 0
            data = pa.Table.from_batches(self._buffer, schema=schema)
            self._clear_buffer()
            if self._mode == "truncate" and self._columns_changed(schema):
                self._wh.execute(f"DROP TABLE IF EXISTS {self._table}")
            self._wh.write_table(self._table, data, self._mode)
            return self.rows_written
        self._flush()
        assert self._schema is not None
        columns = ", ".join(quote_column(name) for name in self._schema.names)
        if self._mode == "truncate" and self._columns_changed(self._schema):
            self._wh.execute(f"CREATE OR REPLACE TABLE {self._table} AS SELECT {columns} FROM {self._stage}")
        else:
            if not self._wh.table_exists(self._table):
                self._wh.create_table(self._table, self._schema)
            move = f"INSERT INTO {self._table} ({columns}) SELECT {columns} FROM {self._stage}"
            if self._mode == "truncate":
                move = f"BEGIN TRANSACTION; DELETE FROM {self._table} WHERE TRUE; {move}; COMMIT TRANSACTION"
            self._wh.execute(move)
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

    def _columns_changed(self, schema: pa.Schema) -> bool:
        """Does the existing destination have other columns than the new rows? Then `truncate` replaces the table
        itself (its partitioning/clustering included) so that it follows the data, as a reload of a changed file or
        query should; with the same columns the table is kept and only its rows are replaced."""
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
