"""How bigquery.query moves a staging table's rows into its destination: one statement per write mode (the
module docstring of shared/processors/bigquery_query.py tells the whole write)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from shared.errors import TerminalError
from shared.ports.warehouse import Warehouse
from shared.processors.table_sink import APPEND_LOG, APPEND_LOG_SCHEMA

if TYPE_CHECKING:
    from shared.processors.bigquery_query import QueryDestination

COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")
_SAFE_LITERAL = re.compile(r"^[A-Za-z0-9_.:\-]{1,300}$")


class StagingWriter:
    """Moves a staging table's rows into the destination with one statement per write mode (module docstring)."""

    def __init__(self, wh: Warehouse, dataset: str, table: str, dest: QueryDestination, write_id: str) -> None:
        self.wh, self.dataset, self.table, self.dest, self.write_id = wh, dataset, table, dest, write_id

    def write_from(self, staging: str) -> dict[str, Any]:
        schema = self.wh.query(f"SELECT * FROM {staging} LIMIT 0").schema
        self._check_columns(schema)
        rows = count_rows(self.wh, staging)
        mode = self.dest.write_mode
        recreated = self._ensure_table(schema, replace_if_changed=mode == "truncate")
        columns = ", ".join(_q(c) for c in schema.names)
        values = ", ".join(f"s.{_q(c)}" for c in schema.names)
        details: dict[str, Any] = {"table": self.table, "write_mode": mode, "rows": rows}
        if recreated:
            details["table_created"] = True
        if mode == "truncate":
            self.wh.execute(
                f"MERGE {self.table} AS t USING {staging} AS s ON FALSE "
                f"WHEN NOT MATCHED BY SOURCE THEN DELETE "
                f"WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"
            )
        elif mode == "append":
            self._append(staging, columns)
        else:
            self._check_keys(staging)
            keys = set(self.dest.merge_keys)
            on = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in self.dest.merge_keys)
            updates = ", ".join(f"{_q(c)} = s.{_q(c)}" for c in schema.names if c not in keys)
            matched = f"WHEN MATCHED THEN UPDATE SET {updates} " if updates else ""
            details["rows_merged"] = self.wh.execute(
                f"MERGE {self.table} AS t USING {staging} AS s ON {on} "
                f"{matched}WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"
            )
        return details

    def _check_columns(self, schema: pa.Schema) -> None:
        bad = [name for name in schema.names if not COLUMN.match(name)]
        if bad:
            raise TerminalError(f"the query returns columns that are not plain names: {bad} (alias them)")
        wanted = [*self.dest.merge_keys, *self.dest.cluster_by]
        if self.dest.partition_field:
            wanted.append(self.dest.partition_field)
            field_type = (
                schema.field(self.dest.partition_field).type if self.dest.partition_field in schema.names else None
            )
            if field_type is not None and not (pa.types.is_date(field_type) or pa.types.is_timestamp(field_type)):
                raise TerminalError(
                    f"partition_field {self.dest.partition_field!r} is {field_type}, not DATE/TIMESTAMP"
                )
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise TerminalError(f"the query does not return column(s) {missing} named in destination")

    def _ensure_table(self, schema: pa.Schema, replace_if_changed: bool) -> bool:
        """Create the destination if missing (True if created). A truncate whose columns changed re-creates it;
        append and merge keep the table and need every query column to exist in it."""
        if self.wh.table_exists(self.table):
            current = self.wh.query(f"SELECT * FROM {self.table} LIMIT 0").schema
            if _columns(current) == _columns(schema):
                return False
            if not replace_if_changed:
                extra = [c for c in schema.names if c not in current.names]
                if extra:
                    raise TerminalError(
                        f"{self.table} has no column(s) {extra} that the query returns; write_mode "
                        f"{self.dest.write_mode} keeps the table's schema (add the columns, or use truncate)"
                    )
                return False
            self.wh.execute(f"DROP TABLE {self.table}")
        self.wh.create_table(self.table, schema, self.dest.partition_field, tuple(self.dest.cluster_by))
        return True

    def _append(self, staging: str, columns: str) -> None:
        log_table = f"{self.dataset}.{APPEND_LOG}"
        if not self.wh.table_exists(log_table):
            self.wh.create_table(log_table, APPEND_LOG_SCHEMA)
        # Literals, not @params: bqemulator drops parameters inside a script. Both are checked to be [A-Za-z0-9_.:-].
        write_id, table_name = _literal(self.write_id), _literal(self.table)
        not_written = f"NOT EXISTS (SELECT 1 FROM {log_table} WHERE write_id = '{write_id}')"
        self.wh.execute(
            "BEGIN TRANSACTION;\n"
            f"INSERT INTO {self.table} ({columns}) SELECT {columns} FROM {staging} WHERE {not_written};\n"
            f"INSERT INTO {log_table} (write_id, table_name, row_count, written_at) "
            f"SELECT '{write_id}', '{table_name}', (SELECT COUNT(*) FROM {staging}), CURRENT_TIMESTAMP() "
            f"FROM (SELECT 1) WHERE {not_written};\n"
            "COMMIT TRANSACTION;"
        )

    def _check_keys(self, staging: str) -> None:
        keys = self.dest.merge_keys
        any_null = " OR ".join(f"{_q(k)} IS NULL" for k in keys)
        group = ", ".join(_q(k) for k in keys)
        found = self.wh.query(
            f"SELECT (SELECT COUNT(*) FROM {staging} WHERE {any_null}) AS null_keys, "
            f"(SELECT COUNT(*) FROM (SELECT 1 FROM {staging} GROUP BY {group} HAVING COUNT(*) > 1)) AS dup_keys"
        ).to_pylist()[0]
        if found["null_keys"] or found["dup_keys"]:
            raise TerminalError(
                f"merge_keys {keys} must identify one row each: the query returns {found['null_keys']} row(s) with "
                f"a NULL key and {found['dup_keys']} key(s) on more than one row"
            )


def count_rows(wh: Warehouse, table: str) -> int:
    return int(wh.query(f"SELECT COUNT(*) AS n FROM {table}").column("n")[0].as_py() or 0)


def _columns(schema: pa.Schema) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in schema}


def _q(column: str) -> str:
    return f"`{column}`"


def _literal(text: str) -> str:
    if not _SAFE_LITERAL.match(text):
        raise TerminalError(f"{text!r} cannot be written as a SQL literal")
    return text
