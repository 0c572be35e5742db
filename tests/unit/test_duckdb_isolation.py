"""The embedded warehouse isolates tenants by construction (real DuckDB): one locked-down database file per tenant.

Each attack is tried twice where it makes sense: through the warehouse API (GoogleSQL, as a pipeline step would send
it) and straight on a locked-down DuckDB connection, so the lock holds even for SQL the translator let through.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from shared.adapters.duckdb_connection import open_locked_down
from shared.errors import TerminalError
from shared.ports.warehouse import Warehouse
from shared.runtime.context import Context, tenant_warehouse_path
from shared.runtime.settings import Settings

SECRET_TEXT = "root:x:0:0:the-secret-line"


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    context = Context(Settings(runtime="embedded", home=tmp_path / ".cloudact"))
    yield context
    context.close()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    path.write_text(SECRET_TEXT + "\n")
    return path


@pytest.fixture
def acme(ctx: Context) -> Warehouse:
    wh = ctx.warehouse_for("acme")
    wh.create_dataset("acme_sales")
    wh.write_table("acme_sales.orders", pa.table({"id": [1, 2], "secret": ["acme-only", "acme-only"]}))
    return wh


@pytest.fixture
def globex(ctx: Context, acme: Warehouse) -> Warehouse:
    """A second tenant, opened while acme's data exists in the same process and folder."""
    wh = ctx.warehouse_for("globex")
    wh.create_dataset("globex_sales")
    wh.write_table("globex_sales.orders", pa.table({"id": [7]}))
    return wh


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = open_locked_down(tmp_path / "raw" / "tenant.duckdb")
    connection.execute("CREATE SCHEMA s; CREATE TABLE s.t AS SELECT 1 AS x")
    yield connection
    connection.close()


def refused(wh: Warehouse, sql: str) -> str:
    """Run `sql` as a tenant's step would; it must fail terminally. Returns the message the tenant would see."""
    with pytest.raises(TerminalError) as caught:
        wh.query(sql)
    return str(caught.value)


# -- one file per tenant -----------------------------------------------------------------------------------------


def test_each_tenant_has_its_own_file_and_one_handle_per_process(ctx: Context, acme: Warehouse) -> None:
    assert ctx.warehouse_for("acme") is acme
    assert tenant_warehouse_path(ctx.settings, "acme") == ctx.settings.home / "warehouse" / "acme.duckdb"
    assert tenant_warehouse_path(ctx.settings, "acme").is_file()
    assert not (ctx.settings.home / "warehouse.duckdb").exists()


@pytest.mark.parametrize("tenant_id", ["../acme", "acme/../../x", "Acme", "ab", "acme\n", "acme.duckdb", "", "a" * 51])
def test_a_tenant_id_that_is_not_a_plain_name_opens_no_file(ctx: Context, tenant_id: str) -> None:
    with pytest.raises(ValueError, match="invalid tenant id"):
        ctx.warehouse_for(tenant_id)
    assert not (ctx.settings.home / "warehouse").exists()


def test_another_tenants_data_cannot_be_named_at_all(ctx: Context, acme: Warehouse, globex: Warehouse) -> None:
    for sql in (
        "SELECT * FROM acme_sales.orders",
        "SELECT * FROM `acme_sales.orders`",
        "SELECT * FROM acme.acme_sales.orders",
        "SELECT * FROM query_table('acme_sales.orders')",
        "SELECT * FROM globex_sales.orders JOIN acme_sales.orders USING (id)",
    ):
        assert "acme-only" not in refused(globex, sql)
    acme_file = tenant_warehouse_path(ctx.settings, "acme")
    for path in (acme_file, f"{acme_file}.wal", f"{tenant_warehouse_path(ctx.settings, 'globex')}/../acme.duckdb"):
        assert "acme-only" not in refused(globex, f"SELECT content FROM read_blob('{path}')")
    assert not globex.table_exists("acme_sales.orders")
    assert globex.query("SELECT COUNT(*) AS n FROM globex_sales.orders").to_pylist() == [{"n": 1}]


def test_the_catalog_shows_only_the_tenants_own_objects(acme: Warehouse, globex: Warehouse) -> None:
    schemas = set(globex.query("SELECT schema_name FROM duckdb_schemas()").column("schema_name").to_pylist())
    tables = set(globex.query("SELECT schema_name, table_name FROM duckdb_tables()").to_pylist()[0].values())
    databases = set(globex.query("SELECT database_name FROM duckdb_databases()").column("database_name").to_pylist())
    assert "globex_sales" in schemas and not any(s.startswith("acme") for s in schemas)
    assert tables == {"globex_sales", "orders"}
    assert databases == {"globex", "system", "temp"}  # no other tenant's database is attached


# -- the connection is locked down -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_text('{path}')",
        "SELECT * FROM read_csv('{path}')",
        "SELECT * FROM read_csv_auto('{path}', header = false)",
        "SELECT * FROM read_json_auto('{path}')",
        "SELECT * FROM read_parquet('{path}')",
        "SELECT * FROM read_blob('{path}')",
        "SELECT * FROM glob('{dir}/*')",
        "SELECT * FROM sniff_csv('{path}')",
        "SELECT content FROM t, LATERAL read_text('{path}')",
    ],
)
def test_sql_cannot_read_files(acme: Warehouse, con: duckdb.DuckDBPyConnection, secret_file: Path, sql: str) -> None:
    text = sql.format(path=secret_file, dir=secret_file.parent).replace("FROM t,", "FROM acme_sales.orders AS t,")
    assert SECRET_TEXT not in refused(acme, text)
    with pytest.raises(duckdb.Error) as caught:
        con.execute(text.replace("acme_sales.orders", "s.t")).fetchall()
    assert SECRET_TEXT not in str(caught.value)


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH '{other}' AS other",
        "ATTACH '{other}' AS other (READ_ONLY)",
        "COPY s.t TO '{out}'",
        "COPY s.t FROM '{secret}'",
        "EXPORT DATABASE '{dir}'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "LOAD '{secret}'",
        "SET enable_external_access = true",
        "SET GLOBAL enable_external_access = true",
        "SET lock_configuration = false",
        "SET TimeZone = 'Europe/Paris'",
        "RESET TimeZone",
        "SET memory_limit = '64GB'",
        "SET threads = 64",
        "PRAGMA enable_profiling",
        "PRAGMA memory_limit = '64GB'",
        "CREATE SECRET s3secret (TYPE s3, KEY_ID 'k', SECRET 's')",
    ],
)
def test_the_connection_itself_refuses_files_extensions_and_settings(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, secret_file: Path, sql: str
) -> None:
    other = open_locked_down(tmp_path / "other.duckdb")
    other.close()
    text = sql.format(other=tmp_path / "other.duckdb", out=tmp_path / "out.csv", secret=secret_file, dir=tmp_path / "x")
    with pytest.raises(duckdb.Error):
        con.execute(text)
    assert con.execute("SELECT current_setting('enable_external_access')").fetchone() == (False,)
    assert con.execute("SELECT current_setting('TimeZone')").fetchone() == ("UTC",)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH ':memory:' AS scratch",
        "ATTACH '{other}' AS other",
        "DETACH acme",
        "USE system",
        "SET x = 1",
        "INSTALL httpfs",
        "LOAD json",
        "PRAGMA enable_profiling",
        "CALL pragma_version()",
        "CHECKPOINT",
        "EXPORT DATABASE '{dir}'",
        "COPY acme_sales.orders TO '{dir}/out.csv'",
        "CREATE MACRO leak(a) AS a",
        "CREATE SECRET s (TYPE s3)",
        "SELECT 1 AS x; ATTACH ':memory:' AS scratch",
    ],
)
def test_the_warehouse_runs_only_queries_dml_and_table_ddl(acme: Warehouse, tmp_path: Path, sql: str) -> None:
    """What the settings cannot refuse (an in-memory ATTACH, CHECKPOINT) is refused by statement type."""
    refused(acme, sql.format(other=tmp_path / "other.duckdb", dir=tmp_path))
    with pytest.raises(TerminalError):
        acme.execute(sql.format(other=tmp_path / "other.duckdb", dir=tmp_path))
    databases = acme.query("SELECT database_name FROM duckdb_databases()").column("database_name").to_pylist()
    assert sorted(databases) == ["acme", "system", "temp"]


def test_arrow_data_still_loads_with_external_access_off(acme: Warehouse) -> None:
    """`register` (how write_table hands arrow to DuckDB) is in-memory, so the lockdown leaves it working."""
    written = acme.write_table("acme_sales.more", pa.table({"id": list(range(1000))}), "truncate")
    assert written == 1000
    assert acme.query("SELECT SUM(id) AS s FROM acme_sales.more").to_pylist() == [{"s": 499500}]


# -- what an error tells the tenant ------------------------------------------------------------------------------


def test_a_missing_table_error_names_the_table_but_suggests_nothing(ctx: Context, globex: Warehouse) -> None:
    message = refused(globex, "SELECT * FROM globex_sales.order")
    assert "Table with name order does not exist" in message
    assert "Did you mean" not in message and '"orders"' not in message
    assert "LINE 1" not in message and "DuckDB SQL" not in message


def test_an_unknown_function_error_suggests_no_system_object(globex: Warehouse) -> None:
    message = refused(globex, "SELECT getenv('HOME') AS h")
    assert "getenv does not exist" in message and "Did you mean" not in message


def test_an_unknown_table_error_names_no_catalog_object(globex: Warehouse) -> None:
    message = refused(globex, "SELECT * FROM `/etc/passwd`")  # DuckDB would suggest "pg_class"
    assert "does not exist" in message and "pg_" not in message and "/etc" not in message


def test_errors_carry_no_local_path(ctx: Context, globex: Warehouse) -> None:
    acme_file = tenant_warehouse_path(ctx.settings, "acme")
    message = refused(globex, f"SELECT * FROM read_parquet('{acme_file}')")
    assert "disabled by configuration" in message
    assert str(ctx.settings.home) not in message and str(Path.home()) not in message and "<path>" in message
    message = refused(globex, "SELECT CAST('x' AS INT64) AS n")  # the user's own mistake stays readable
    assert "Could not convert string 'x' to INT64" in message
