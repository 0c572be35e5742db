"""Opening one tenant's DuckDB database locked down: it can reach its own file and nothing else.

DuckDB's defaults let SQL read and write any file the process can (`read_text('/etc/passwd')`, `COPY ... TO`),
ATTACH other database files, install and autoload extensions (httpfs reaches the network) and change any setting.
A tenant's connection is opened with:

- `enable_external_access=false`: no file system or network access from SQL (read_*/glob/COPY/EXPORT/ATTACH of a
  file/INSTALL/LOAD of an extension file). Arrow tables handed over with `register` still work: they are in memory.
- `autoinstall_known_extensions=false`, `autoload_known_extensions=false`: an unknown function never pulls in code.
- `memory_limit` and `threads`: one tenant's query cannot take the memory or every core of the process;
- then, after the one setting the adapter needs (the UTC time zone), `lock_configuration=true`: from then on no
  statement on any cursor can change a setting (SET/RESET/PRAGMA fail), so the two above cannot be turned back on.

Isolation between tenants is structural on top of that: each tenant has its own database file, so nothing another
tenant stored is in the catalog a connection can see. DuckDB still lets SQL read the bytes of the database's own
files (the file, its WAL, its spill folder), which hold nothing but that tenant's data; every other path is refused.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from shared.errors import TerminalError

TENANT_MEMORY_LIMIT = "2GB"
"""DuckDB's buffer-managed memory (hash tables of joins and aggregates, sorts) of one tenant's database; its default
is 80 % of the host's, which would let one tenant's join squeeze every other tenant of the process. Measured on
duckdb 2.0: one huge scalar value (`REPEAT('x', 3e9)`) is allocated outside this limit, so it is not a bound on that."""
TENANT_THREADS = 2
"""Threads one tenant's queries may use: the machine's cores are shared by every tenant's steps."""

LOCKED_DOWN_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "memory_limit": TENANT_MEMORY_LIMIT,
    "threads": TENANT_THREADS,
}


def open_locked_down(path: str | Path) -> duckdb.DuckDBPyConnection:
    """Open (creating it if missing) the database at `path` (or `":memory:"`) with the settings above, locked."""
    target = str(path)
    if target != ":memory:":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(target, config=LOCKED_DOWN_CONFIG)
    try:
        # GLOBAL, not session: cursors are fresh connections and would not inherit a session setting.
        # (duckdb.connect(config={"TimeZone": ...}) raises on duckdb 2.0.)
        con.execute("SET GLOBAL TimeZone='UTC'")
        con.execute("SET GLOBAL lock_configuration=true")  # last: nothing can change a setting after this
    except BaseException:
        con.close()
        raise
    return con


class TenantDatabase:
    """One open, locked-down database, shared by a warehouse handle and its per-step sessions; closed once."""

    def __init__(self, path: str | Path) -> None:
        self._con = open_locked_down(path)
        self._lock = threading.Lock()
        self._closed = False

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the same database (DuckDB connections are not thread-safe; cursors are independent)."""
        with self._lock:
            if self._closed:
                raise TerminalError("DuckDBWarehouse is closed")
            return self._con.cursor()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._con.close()
