"""DuckDB's errors about a translated statement, put back in the terms of the GoogleSQL the user wrote: the
internal names the translation gives (googlesql_to_duckdb) are dropped, and the line and column of the name DuckDB
complains about are found in the user's SQL (DuckDB's own excerpt quotes the translated text and is scrubbed by
duckdb_errors)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from shared.errors import TerminalError

_INTERNAL_NAME = re.compile(r'"?__u\d+"?\.')
"""The table alias `rewrite` puts in front of an UNNEST element (`__u0.labels`): dropped from messages."""


@contextmanager
def in_user_terms(google_sql: str) -> Iterator[None]:
    """A terminal error raised inside (DuckDB's own, already mapped) names what the user wrote: the translation's
    internal qualifiers are dropped, and the line and column of the name it complains about in their GoogleSQL is
    added."""
    try:
        yield
    except TerminalError as exc:
        if type(exc) is not TerminalError:
            raise
        message = _INTERNAL_NAME.sub("", str(exc))
        raise TerminalError(message + locate_in_source(google_sql, message)) from exc


_QUOTED_NAME = re.compile(r'(?:column|name|key|function)\s+"?([A-Za-z_][A-Za-z0-9_]*)"?', re.IGNORECASE)


def locate_in_source(google_sql: str, message: str) -> str:
    """` at line L, column C of your SQL: <that line>` for the first name DuckDB's message quotes that occurs in
    the user's GoogleSQL, or "" when none does (the message then stands alone)."""
    for match in _QUOTED_NAME.finditer(message):
        name = match.group(1)
        found = re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", google_sql, re.IGNORECASE)
        if found:
            line_no = google_sql.count("\n", 0, found.start()) + 1
            line_start = google_sql.rfind("\n", 0, found.start()) + 1
            line_end = google_sql.find("\n", found.start())
            line = google_sql[line_start : None if line_end < 0 else line_end]
            column = found.start() - line_start + 1
            return f" (at line {line_no}, column {column} of your SQL: {line.strip()[:200]})"
    return ""
