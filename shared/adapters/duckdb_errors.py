"""DuckDB exceptions as the pipeline's errors: the transient/terminal split, and text fit to show a tenant.

A DuckDB message is shown to the tenant whose step failed (the run's error in the API), so it is cut down to what
describes the tenant's own mistake:
- "Did you mean "x.y"?" suggestions are dropped: they name whatever object is closest, which before per-tenant files
  was another tenant's table, and still names system catalog objects;
- the "LINE n: ..." excerpt with its caret is dropped: it quotes the translated DuckDB SQL, not what the tenant wrote;
- file system paths (the database file, the extension folder, the lock holder's executable) become `<path>`.
"Table with name x does not exist!" and "Referenced column "c" not found" stay as DuckDB wrote them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from shared.error_text import without_local_paths
from shared.errors import TerminalError, TransientError

_SUGGESTION = re.compile(r"[ \t]*Did you mean\b[^\n]*", re.IGNORECASE)
_SQL_EXCERPT = re.compile(r"\n\s*LINE \d+:.*", re.DOTALL)
# DuckDB's message prefixes of the errors a later attempt can get past (the rest map to duckdb.Error: terminal).
_STREAMED_TRANSIENT: dict[str, type[duckdb.Error]] = {
    "INTERRUPT Error": duckdb.InterruptException,
    "IO Error": duckdb.IOException,
    "Out of Memory Error": duckdb.OutOfMemoryException,
    "TransactionContext Error": duckdb.TransactionException,
}


def tenant_safe_message(exc: duckdb.Error) -> str:
    """DuckDB's message without suggestions, SQL excerpt or local paths (module docstring)."""
    text = _SQL_EXCERPT.sub("", str(exc))
    text = _SUGGESTION.sub("", text)
    text = without_local_paths(text)
    return re.sub(r"\n{2,}", "\n", text).strip()


@contextmanager
def mapped_errors(action: str) -> Iterator[None]:
    """Translate DuckDB exceptions into the pipeline's transient/terminal split.

    User mistakes (parse, bind, catalog, conversion, constraint, bad input, permission) are terminal; contention
    (transaction conflicts), IO, lock and memory trouble are transient because a later attempt can succeed. An
    interrupted statement is transient too: it was cut short (a step's timeout), not wrong.
    """
    try:
        yield
    except duckdb.Error as exc:
        detail = f"DuckDB {action}: {tenant_safe_message(exc)}"
        if isinstance(exc, duckdb.OperationalError | duckdb.InterruptException):
            raise TransientError(detail) from exc
        raise TerminalError(detail) from exc


def streamed(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The reader's batches. A DuckDB error met while streaming (a bad cast in a later row, an interrupt) reaches
    Python from arrow as a bare OSError carrying DuckDB's message; it is raised again as the duckdb.Error it is, so
    `mapped_errors` classifies and scrubs it like any other."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except OSError as exc:
            text = str(exc)
            kind = next((k for prefix, k in _STREAMED_TRANSIENT.items() if text.startswith(prefix)), duckdb.Error)
            raise kind(text) from exc
        yield batch
