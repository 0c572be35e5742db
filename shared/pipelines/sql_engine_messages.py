"""What a warehouse says about a query, made fit for the YAML it came from: where the name an engine complains about
stands in the user's query, and the message without the SQL it quotes.

Both engines name the offending column, table or function in their messages; their own positions refer to the SQL
they were given (translated for DuckDB, regenerated for BigQuery), never to what the user wrote.
"""

from __future__ import annotations

import re

_NAMED = (
    re.compile(r'Referenced column "([^"]+)" not found'),
    re.compile(r"Table with name (\w+) does not exist"),
    re.compile(r"(?:Scalar|Aggregate|Table) Function with name (\w+) does not exist"),
    re.compile(r"Unrecognized name: (\w+)"),
    re.compile(r"Name (\w+) not found inside"),
    re.compile(r"Function not found: (\w+)"),
    re.compile(r"Field name (\w+) does not exist"),
    re.compile(r"Not found: Table [\w.:-]+?\.(\w+) was not found"),
    re.compile(r"translated for DuckDB: (\w+) (?:is not supported|cannot be transpiled)"),
)


def offset_of_name(message: str, sql: str) -> int | None:
    """Where the name an engine's message complains about first appears in the query (both engines name it; their
    own positions refer to the translated or regenerated text, not what the user wrote)."""
    for pattern in _NAMED:
        match = pattern.search(message)
        if match:
            found = re.search(rf"(?<![A-Za-z0-9_]){re.escape(match.group(1))}(?![A-Za-z0-9_])", sql, re.IGNORECASE)
            if found:
                return found.start()
    return None


def clean(message: str) -> str:
    """An engine's message without the SQL it quotes (a translation error quotes the whole statement) and on one
    line."""
    message = message.split("\n[SQL:", 1)[0]
    # the adapter's own pointer into the SQL it was given (regenerated from the template): the YAML position replaces it
    message = re.sub(r" \(at line \d+, column \d+ of your SQL: .*\)$", "", message, flags=re.DOTALL)
    message = re.sub(r"^(DuckDB dry run|BigQuery dry run): ", "", message)
    # BigQuery's HTTP framing, job location/id and positions in the SQL it was sent (not the user's)
    message = re.sub(r"^\d{3} [A-Z]+ \S+: ", "", message)
    message = re.sub(r"\s*Location: \S+\s*Job ID: \S+", "", message)
    message = re.sub(r"\s*LINE \d+:.*$", "", message, flags=re.DOTALL)
    message = re.sub(r" at \[\d+:\d+\]", "", message)
    return " ".join(message.split())[:500]
