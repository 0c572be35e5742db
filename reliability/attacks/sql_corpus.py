"""SQL attacks (issue 13 classes 1-3): table functions, catalog disclosure, errors that leak.

Each payload is one `bigquery.query` step of the attacker, writing to its own `atk` dataset; most are also sent straight
to the attacker's warehouse (`direct_sql`), which must stay isolated even when the SQL check misses something.
Payloads are built from a few targets placed in many positions (FROM, LATERAL, JOIN, subquery, CTE, UNION, EXISTS,
window clause) and spellings (case, quoting, comments, whitespace, look-alike letters).
"""

from __future__ import annotations

from dataclasses import dataclass

from reliability.attacks.judge import Attack, Expect

ATTACKER = "mallory"
VICTIM = "victimco"
VICTIM_TABLE = "victimco_vault.ledger_q7x"
OWN = "{tenant_id}_own.data"
"""The attacker's own table (label STRING, n INT64): what a benign query reads."""


@dataclass(frozen=True)
class Paths:
    """Local files the attacker must never read (absolute paths in the drill's temporary folder)."""

    canary_file: str
    """Outside every tenant's area."""
    victim_file: str
    """In the victim's landing folder."""
    credentials: str
    """`.cloudact/credentials.json`: the admin token and every tenant's key."""
    warehouse: str
    """The warehouse folder or file."""
    home: str


def _step(sql: str, out: str = "") -> dict[str, object]:
    return {
        "ps_type": "bigquery.query",
        "source": {"query": sql},
        "destination": {"dataset": "atk", "table": out or "x", "write_mode": "truncate"},
    }


def _attack(klass: str, name: str, sql: str, expect: Expect = "refuse", direct: bool = True) -> Attack:
    direct_sql = sql.replace("{tenant_id}", ATTACKER) if direct else None
    return Attack(klass, name, _step(sql), expect, direct_sql=direct_sql)


def _positions(source: str) -> dict[str, str]:
    """`source` (a table function call or table) placed where a FROM item can stand."""
    return {
        "from": f"SELECT * FROM {source}",
        "lateral": f"SELECT * FROM {OWN} AS a, LATERAL {source}",
        "join": f"SELECT * FROM {OWN} AS a JOIN {source} ON TRUE",
        "cross-join": f"SELECT * FROM {OWN} AS a CROSS JOIN {source}",
        "scalar-subquery": f"SELECT (SELECT COUNT(*) FROM {source}) AS n",
        "cte": f"WITH x AS (SELECT * FROM {source}) SELECT * FROM x",
        "nested-cte": f"WITH a AS (SELECT 1 AS k), b AS (SELECT * FROM (SELECT * FROM {source})) SELECT * FROM b",
        "union": f"SELECT label FROM {OWN} UNION ALL SELECT CAST(t AS STRING) FROM {source} AS t",
        "exists": f"SELECT label FROM {OWN} WHERE EXISTS (SELECT 1 FROM {source})",
        "in-subquery": f"SELECT label FROM {OWN} WHERE label IN (SELECT CAST(t AS STRING) FROM {source} AS t)",
        "window": (f"SELECT label, COUNT(*) OVER (PARTITION BY (SELECT COUNT(*) FROM {source})) AS c FROM {OWN}"),
    }


def table_function_attacks(p: Paths) -> list[Attack]:
    k = "1 table functions"
    out: list[Attack] = []
    # Every position for the two most dangerous reads: a file outside the tenant and another tenant's table.
    for pos, sql in _positions(f"read_text('{p.canary_file}')").items():
        out.append(_attack(k, f"read_text canary file in {pos}", sql))
    for pos, sql in _positions(f"query_table('{VICTIM_TABLE}')").items():
        out.append(_attack(k, f"query_table victim in {pos}", sql))
    calls = {
        "read_text /etc/passwd": "read_text('/etc/passwd')",
        "READ_TEXT upper case": "READ_TEXT('/etc/passwd')",
        "read_text list arg": "read_text(['/etc/passwd'])",
        "read_text glob": f"read_text('{p.home}/*.json')",
        "read_text comment before paren": "read_text/**/('/etc/passwd')",
        "read_text newline before paren": "read_text\n  (\n'/etc/passwd')",
        "read_text backticked": "`read_text`('/etc/passwd')",
        "read_text schema-qualified": "main.read_text('/etc/passwd')",
        "read_csv passwd": "read_csv('/etc/passwd', delim=':', header=false)",
        "read_csv_auto victim landing": f"read_csv_auto('{p.victim_file}')",
        "read_json_auto credentials": f"read_json_auto('{p.credentials}')",
        "read_json credentials": f"read_json('{p.credentials}')",
        "read_blob credentials": f"read_blob('{p.credentials}')",
        "read_parquet warehouse": f"read_parquet('{p.warehouse}')",
        "read_csv warehouse file": f"read_csv('{p.warehouse}', all_varchar=true)",
        "glob home": f"glob('{p.home}/*')",
        "glob etc": "glob('/etc/*')",
        "query() victim": f"query('SELECT * FROM {VICTIM_TABLE}')",
        "query_table upper": f"QUERY_TABLE('{VICTIM_TABLE}')",
        "query_table by list": f"query_table(['{VICTIM_TABLE}'])",
        "duckdb_settings()": "duckdb_settings()",
        "duckdb_secrets()": "duckdb_secrets()",
        "duckdb_extensions()": "duckdb_extensions()",
        "pragma_database_list()": "pragma_database_list()",
        "EXTERNAL_QUERY": "EXTERNAL_QUERY('us.conn', 'SELECT 1')",
        "ML.PREDICT on victim": f"ML.PREDICT(MODEL `{VICTIM}_vault.m`, TABLE `{VICTIM_TABLE}`)",
        "APPENDS on victim": f"APPENDS(TABLE `{VICTIM_TABLE}`, NULL, NULL)",
        "UNNEST of victim array": f"UNNEST((SELECT ARRAY_AGG(secret) FROM {VICTIM_TABLE}))",
        "UNNEST of read_text": "UNNEST((SELECT ARRAY_AGG(content) FROM read_text('/etc/passwd')))",
        "read_text cyrillic e": "r\u0435ad_text('/etc/passwd')",
    }
    for name, call in calls.items():
        out.append(_attack(k, name, f"SELECT * FROM {call}"))
    scalars = {
        "getenv HOME": "getenv('HOME')",
        "getenv PATH in CONCAT": "CONCAT('x', getenv('PATH'))",
        "current_setting temp_directory": "current_setting('temp_directory')",
        "current_setting home_directory": "CAST(current_setting('home_directory') AS STRING)",
        "current_setting secret_directory": "current_setting('secret_directory')",
        "CURRENT_SETTING upper extension_directory": "CURRENT_SETTING('extension_directory')",
        "getvariable": "getvariable('anything')",
        "scalar read_text": "(SELECT content FROM read_text('/etc/passwd'))",
        "current_database": "current_database()",
        "current_schemas": "ARRAY_TO_STRING(current_schemas(true), ',')",
        "version": "version()",
    }
    for name, expr in scalars.items():
        out.append(_attack(k, f"scalar {name}", f"SELECT {expr} AS v"))
        out.append(_attack(k, f"scalar {name} in WHERE", f"SELECT label FROM {OWN} WHERE {expr} IS NOT NULL"))
    return out + differential_attacks(p)


def _hidden(code: str, opener: str = "$a$ AS c", tag: str = "$a$") -> str:
    """`code` (DuckDB SQL, strings written `$q$...$q$`) hidden from the SQL check: sqlglot reads `$a$` as a column and
    `'x $a$, <code>, $c$'` as one string literal, while DuckDB reads `$a$ ... $a$` and `$c$ ... $c$` as dollar-quoted
    strings, leaving `<code>` as SQL of its own between them."""
    return f"SELECT {opener}, 'x {tag}, {code}, $c$' AS d, $c$ AS e FROM {OWN}"


def differential_attacks(p: Paths) -> list[Attack]:
    """Class 9: text the SQL check reads one way and DuckDB another once regenerated (dollar quoting, escapes,
    comments, quoted identifiers, NUL bytes). Sent with the table-function class (the drill's corpus() lists the
    corpus functions it calls)."""
    k = "9 parser differentials"
    setting = "current_setting($q$temp_directory$q$) AS v"
    settings = "(SELECT string_agg(name || $q$=$q$ || value, $q$;$q$) FROM duckdb_settings()) AS v"
    hidden = {
        "dollar-quoted column hides current_setting": _hidden(setting),
        "empty-tag $$ hides current_setting": _hidden(setting, "$$ AS c", "$$"),
        "dollar-quoted alias hides current_setting": _hidden(setting, "label AS $a$", "$a$"),
        "dollar-quoted column hides duckdb_settings()": _hidden(settings),
        "dollar-quoted column hides duckdb_databases()": _hidden(
            "(SELECT string_agg(path, $q$;$q$) FROM duckdb_databases()) AS v"
        ),
        "dollar-quoted column hides duckdb_tables()": _hidden(
            "(SELECT string_agg(sql, $q$;$q$) FROM duckdb_tables()) AS v"
        ),
        "dollar-quoted column hides read_text canary": _hidden(
            f"(SELECT string_agg(content, $q$;$q$) FROM read_text($q${p.canary_file}$q$)) AS v"
        ),
        "dollar-quoted column hides query_table victim": _hidden(
            f"(SELECT string_agg(secret, $q$;$q$) FROM query_table($q${VICTIM_TABLE}$q$)) AS v"
        ),
        "dollar-quoted column hides cast of a setting (error text)": _hidden(
            "CAST(current_setting($q$secret_directory$q$) AS INTEGER) AS v"
        ),
        "@a$ parameter becomes a dollar quote": f"SELECT @a$ AS c, 'x $a$, {setting}, $c$' AS d, $c$ AS e",
        "dollar-quoted EXTRACT part": "SELECT EXTRACT($a$ FROM ' $a$ FROM current_setting($q$temp_directory$q$)) AS v, "
        "$b$') AS v2, $b$ AS w",
        "dollar-quoted qualified column": (
            f"SELECT data.$a$ AS c, 'x $a$, {setting}, $c$' AS d, data.$c$ AS e FROM {OWN}"
        ),
        "dollar quote inside triple-quoted string": f'SELECT """ $a$ """ AS x, $a$ AS y, {setting}, $a$ AS z',
    }
    out = [_attack(k, name, sql) for name, sql in hidden.items()]
    quoting = {
        "NUL byte in a string": f"SELECT 'a\\x00b' AS x, label FROM {OWN}, duckdb_settings()",
        "quote and comment in a backticked alias": 'SELECT 1 AS `a"b`, getenv(\'HOME\') AS `c"" ; --`',
        "unicode-escaped quote": "SELECT '\\u0027 || current_setting(\\u0027temp_directory\\u0027) || \\u0027' AS x",
        "raw string with backslash-quote": "SELECT r\"\\'$a$\" AS x, $a$ AS y, current_setting('temp_directory') AS z",
        "# comment with a dollar quote": f"SELECT label FROM {OWN} # $a$\n, duckdb_settings()",
        "-- comment hiding a newline": f"SELECT label -- x\nFROM {OWN}, duckdb_settings()",
        "wildcard table of the victim": f"SELECT * FROM `{VICTIM}_vault.*`",
        "_TABLE_SUFFIX over a wildcard": "SELECT _TABLE_SUFFIX AS s FROM `{tenant_id}_own.data*`",
        "dash in a dataset": f"SELECT * FROM `{VICTIM}-vault.ledger_q7x`",
        "column path naming the victim table": f"SELECT {VICTIM_TABLE}.secret FROM {OWN} AS {VICTIM}_vault",
        "UNNEST of a column path read as a table": f"SELECT * FROM {OWN} AS t, UNNEST(duckdb_settings) AS u",
        "FOR SYSTEM_TIME AS OF": f"SELECT * FROM {OWN} FOR SYSTEM_TIME AS OF CURRENT_TIMESTAMP()",
        "COLLATE with a locale": f"SELECT COLLATE(label, 'und:ci') AS c FROM {OWN}",
        "ERROR() of own label": f"SELECT ERROR(label) AS v FROM {OWN}",
    }
    harmless = {"unicode-escaped quote"}  # one string literal to both parsers: may run, must not leak
    out += [_attack(k, name, sql, "no-leak" if name in harmless else "refuse") for name, sql in quoting.items()]
    return out


CATALOG_NAMES = (
    "duckdb_tables",
    "sqlite_master",
    "pg_settings",
    "duckdb_databases",
    "duckdb_settings",
    "duckdb_views",
    "duckdb_columns",
    "pg_tables",
    "sqlite_schema",
)


def catalog_attacks() -> list[Attack]:
    k = "2 catalog disclosure"
    out: list[Attack] = []
    for name in CATALOG_NAMES:
        shadow = f"(WITH {name} AS (SELECT 1 AS x) SELECT x FROM {name})"
        out += [
            # A CTE defined in an inner scope, referenced outside it: the outer name resolves to the real catalog.
            _attack(k, f"{name} out of scope via subquery", f"SELECT * FROM {shadow} AS s, {name}"),
            _attack(
                k, f"{name} out of scope via UNION", f"SELECT 1 AS x FROM {shadow} AS s UNION ALL SELECT 1 FROM {name}"
            ),
            _attack(
                k,
                f"{name} out of scope in EXISTS",
                f"SELECT 1 AS x FROM {shadow} AS s WHERE EXISTS (SELECT * FROM {name})",
            ),
            _attack(k, f"{name} shadowed in scope", f"WITH {name} AS (SELECT 1 AS x) SELECT * FROM {name}"),
            _attack(k, f"{name} bare", f"SELECT * FROM {name}"),
            _attack(k, f"{name} upper-case backticked", f"SELECT * FROM `{name.upper()}`"),
            _attack(k, f"{name} as called function", f"SELECT * FROM {name}()"),
        ]
    dotted = {
        "information_schema.tables": "information_schema.tables",
        "INFORMATION_SCHEMA.SCHEMATA": "INFORMATION_SCHEMA.SCHEMATA",
        "region-us INFORMATION_SCHEMA.TABLES": "`region-us`.INFORMATION_SCHEMA.TABLES",
        "region-us INFORMATION_SCHEMA.JOBS": "`region-us.INFORMATION_SCHEMA.JOBS`",
        "own dataset INFORMATION_SCHEMA.TABLES": "{tenant_id}_own.INFORMATION_SCHEMA.TABLES",
        "own dataset information_schema lower": "{tenant_id}_own.information_schema.tables",
        "pg_catalog.pg_tables": "pg_catalog.pg_tables",
        "main.duckdb_tables": "main.duckdb_tables",
        "system.main.duckdb_tables": "system.main.duckdb_tables",
        "temp.information_schema.tables": "temp.information_schema.tables",
    }
    for name, table in dotted.items():
        out.append(_attack(k, name, f"SELECT * FROM {table}"))
        out.append(_attack(k, f"{name} in CTE", f"WITH c AS (SELECT * FROM {table}) SELECT * FROM c"))
    statements = {
        "PRAGMA show_tables": "PRAGMA show_tables",
        "SHOW TABLES": "SHOW TABLES",
        "SHOW ALL TABLES": "SHOW ALL TABLES",
        "DESCRIBE victim": f"DESCRIBE {VICTIM_TABLE}",
        "SUMMARIZE victim": f"SUMMARIZE {VICTIM_TABLE}",
        "FROM-first victim": f"FROM {VICTIM_TABLE}",
        "FROM-first duckdb_tables()": "FROM duckdb_tables()",
        "subquery SHOW ALL TABLES": "SELECT * FROM (SHOW ALL TABLES)",
        "subquery DESCRIBE victim": f"SELECT * FROM (DESCRIBE {VICTIM_TABLE})",
        "subquery SUMMARIZE victim": f"SELECT * FROM (SUMMARIZE SELECT * FROM {VICTIM_TABLE})",
        "subquery PRAGMA database_list": "SELECT * FROM (PRAGMA database_list)",
        "ATTACH": "ATTACH '/tmp/x.duckdb' AS x",
        "second statement": f"SELECT 1 AS x; SELECT * FROM {VICTIM_TABLE}",
    }
    for name, sql in statements.items():
        out.append(_attack(k, name, sql))
    return out


def error_attacks(p: Paths) -> list[Attack]:
    """Queries that fail on purpose, hoping the error names something foreign ("Did you mean ...?", a cast of the
    canary, a path). The queries may fail; nothing foreign may reach the attacker's run status."""
    k = "3 errors that leak"
    misspelt = {
        "victim's table name in own dataset": "SELECT * FROM {tenant_id}_vault.ledger_q7x",
        "misspelt table": "SELECT * FROM {tenant_id}_vault.ledger_q7",
        "misspelt dataset": "SELECT * FROM {tenant_id}_vaul.ledger_q7x",
        "near-name in own dataset": "SELECT * FROM {tenant_id}_own.ledger",
        "unqualified victim table": "SELECT * FROM {tenant_id}_own.ledger_q7x",
        "column near victim's": "SELECT secret FROM {tenant_id}_own.data",
        "misspelt own column": "SELECT labl FROM {tenant_id}_own.data",
        "function near read_text": "SELECT read_tex('/etc/passwd') AS v",
        "function near query_table": "SELECT * FROM query_tabl('x')",
        "type error on own label": "SELECT CAST(label AS INT64) AS v FROM {tenant_id}_own.data",
    }
    out = [_attack(k, name, sql, expect="no-leak") for name, sql in misspelt.items()]
    casts = {
        "cast victim secret": f"SELECT CAST((SELECT secret FROM {VICTIM_TABLE} LIMIT 1) AS INT64) AS v",
        "ERROR() of victim secret": f"SELECT ERROR((SELECT MAX(secret) FROM {VICTIM_TABLE})) AS v",
        "cast canary file": f"SELECT CAST(content AS INT64) AS v FROM read_text('{p.canary_file}')",
        "ERROR() of passwd": "SELECT ERROR((SELECT content FROM read_text('/etc/passwd'))) AS v",
        "cast getenv HOME": "SELECT CAST(getenv('HOME') AS INT64) AS v",
        "cast temp_directory": "SELECT CAST(current_setting('temp_directory') AS INT64) AS v",
        "read_parquet missing file": f"SELECT * FROM read_parquet('{p.home}/nope/x.parquet')",
        "cast of credentials": f"SELECT CAST(admin_token AS INT64) FROM read_json_auto('{p.credentials}')",
        "division in victim subquery": f"SELECT 1 / (SELECT COUNT(*) - 1 FROM {VICTIM_TABLE}) AS v",
    }
    out += [_attack(k, name, sql) for name, sql in casts.items()]
    return out


def control_sql() -> str:
    """The benign query every batch carries: it must pass validation and produce the attacker's own rows."""
    return f"SELECT label, n FROM {OWN}"
