"""Step-level attacks (issue 13 classes 4 and 7, and other channels): reserved datasets, SSRF and local/GCS files,
quality checks, arrow.transform, notify and templating.

URLs aimed at the metadata server carry a distinct port per attack (`SSRF_PORT_BASE + i`), so a connection the
drill sees being opened (reliability/attacks/netguard.py) names the attack that made it.
"""

from __future__ import annotations

from typing import Any

from reliability.attacks.judge import Attack
from reliability.attacks.sql_corpus import OWN, VICTIM, VICTIM_TABLE, Paths

SSRF_PORT_BASE = 18100
VICTIM_BUCKET = "victimco-private"
VICTIM_OBJECT = "exports/secret.csv"


def _query_to(dataset: str, table: str, sql: str = f"SELECT label, n FROM {OWN}") -> dict[str, Any]:
    return {
        "ps_type": "bigquery.query",
        "source": {"query": sql},
        "destination": {"dataset": dataset, "table": table, "write_mode": "append"},
    }


def reserved_attacks() -> list[Attack]:
    """Writes into the reserved run-history dataset or the victim's data. A table these write is named `pwn_*`;
    the drill then looks for `pwn_*` in every reserved and victim dataset."""
    k = "4 reserved datasets"
    out: list[Attack] = []
    literal = {
        "metadata": "metadata",
        "Metadata": "Metadata",
        "METADATA": "METADATA",
        "leading space": " metadata",
        "trailing space": "metadata ",
        "trailing tab": "metadata\t",
        "zero-width space": "meta\u200bdata",
        "fullwidth letters": "\uff4d\uff45\uff54\uff41\uff44\uff41\uff54\uff41",
        "cyrillic a": "metadat\u0430",
        "dotted into victim": f"x.{VICTIM}_vault",
        "backticked": "`metadata`",
    }
    for i, (name, dataset) in enumerate(literal.items()):
        out.append(Attack(k, f"bigquery.query dataset {name}", _query_to(dataset, f"pwn_l{i}")))
    declared = {"ds": {"type": "string", "default": "metadata"}}
    out.append(Attack(k, "{ds} default metadata", _query_to("{ds}", "pwn_p0"), pipeline={"parameters": declared}))
    as_param = {"ds": {"type": "string", "required": True}}
    for i, value in enumerate(("metadata", "Metadata", "METADATA", "metadata ")):
        out.append(
            Attack(
                k,
                f"{{ds}} with execute parameter ds={value!r}",
                _query_to("{ds}", f"pwn_p{i + 1}"),
                parameters={"ds": value},
                pipeline={"parameters": as_param},
            )
        )
    out.append(
        Attack(k, "{ds} variable METADATA", _query_to("{ds}", "pwn_v0"), pipeline={"variables": {"ds": "METADATA"}})
    )
    out.append(
        Attack(
            k,
            "{a}{b} variables meta+data",
            _query_to("{a}{b}", "pwn_v1"),
            pipeline={"variables": {"a": "meta", "b": "data"}},
        )
    )
    out.append(Attack(k, "meta{x} variable", _query_to("meta{x}", "pwn_v2"), pipeline={"variables": {"x": "data"}}))
    out.append(Attack(k, "run-history table name", _query_to("metadata", "pipeline_executions")))
    out.append(Attack(k, "reserved table prefix", _query_to("atk", "_cloudact_append_log")))
    out.append(
        Attack(
            k, "{t} table variable _cloudact", _query_to("atk", "{t}"), pipeline={"variables": {"t": "_cloudact_pwn"}}
        )
    )
    for i, dataset in enumerate(("Metadata", "{ds}")):
        extra = {"variables": {"ds": "metadata"}} if "{" in dataset else {}
        out.append(
            Attack(
                k,
                f"file.load into {dataset}",
                {
                    "ps_type": "file.load",
                    "source": {"path": "own/rows.csv"},
                    "destination": {"dataset": dataset, "table": f"pwn_f{i}", "write_mode": "append"},
                },
                pipeline=extra,
            )
        )
        out.append(
            Attack(
                k,
                f"arrow.transform into {dataset}",
                {
                    "ps_type": "arrow.transform",
                    "source": {"dataset": "own", "table": "data"},
                    "destination": {"dataset": dataset, "table": f"pwn_a{i}", "write_mode": "append"},
                    "config": {"operations": [{"select": ["label"]}]},
                },
                pipeline=extra,
            )
        )
    return out


def _http(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "ps_type": "http.extract",
        "source": {"url": url, "timeout_seconds": 3, "retries": {"max_attempts": 1}, **extra},
        "destination": {"dataset": "atk", "table": "h", "write_mode": "truncate"},
        "config": {"schema": {"v": "STRING"}},
    }


def ssrf_urls() -> dict[str, str]:
    """Name -> URL aimed (directly or by address trickery) at the metadata server. Ports added by `ssrf_attacks`."""
    return {
        "plain metadata IPv4": "http://169.254.169.254:{port}/computeMetadata/v1/",
        "IPv4-mapped IPv6": "http://[::ffff:169.254.169.254]:{port}/",
        "IPv4-mapped IPv6 hex": "http://[::ffff:a9fe:a9fe]:{port}/",
        "IPv4-compatible IPv6": "http://[::169.254.169.254]:{port}/",
        "NAT64": "http://[64:ff9b::a9fe:a9fe]:{port}/",
        "NAT64 local-use": "http://[64:ff9b:1::a9fe:a9fe]:{port}/",
        "6to4": "http://[2002:a9fe:a9fe::1]:{port}/",
        "AWS IPv6 ULA": "http://[fd00:ec2::254]:{port}/",
        "decimal IPv4": "http://2852039166:{port}/",
        "octal IPv4": "http://0251.0376.0251.0376:{port}/",
        "hex IPv4": "http://0xa9fea9fe:{port}/",
        "short IPv4": "http://169.254.43518:{port}/",
        "metadata.google.internal": "http://metadata.google.internal:{port}/computeMetadata/v1/",
        "metadata. (trailing dot)": "http://metadata.google.internal.:{port}/",
        "userinfo trick": "http://example.com@169.254.169.254:{port}/",
        "link-local other": "http://169.254.1.1:{port}/",
    }


def ssrf_attacks(local_base: str) -> list[Attack]:
    """`local_base` is the drill's own HTTP server (allowed on local runtimes); its /redirect/<port>/<form> answers
    302 to the metadata address in another form."""
    k = "7 SSRF and files"
    out: list[Attack] = []
    for i, (name, url) in enumerate(ssrf_urls().items()):
        out.append(Attack(k, f"http.extract {name}", _http(url.format(port=SSRF_PORT_BASE + i))))
    base = SSRF_PORT_BASE + 50
    for i, form in enumerate(("v4", "mapped", "nat64", "name")):
        out.append(Attack(k, f"redirect to metadata ({form})", _http(f"{local_base}/redirect/{base + i}/{form}")))
    out.append(Attack(k, "file:// scheme", _http("file:///etc/passwd")))
    out.append(Attack(k, "gopher scheme", _http("gopher://169.254.169.254:70/_x")))
    return out


def file_attacks(p: Paths) -> list[Attack]:
    k = "7 SSRF and files"
    paths = {
        "relative ../victim": f"../{VICTIM}/secret.csv",
        "absolute victim landing": p.victim_file,
        "/etc/passwd": "/etc/passwd",
        "credentials.json relative": "../../credentials.json",
        "credentials.json absolute": p.credentials,
        "canary outside tenants": p.canary_file,
        "symlink file in own folder": "link_to_victim.csv",
        "symlinked folder in own folder": "victim_dir/secret.csv",
        "glob across tenants": "../*/secret.csv",
        "glob through symlinked folder": "victim_dir/*.csv",
        "config folder of victim": f"../../tenant_configs/{VICTIM}/pipelines/seed_vault.yaml",
        "file:// URL": "file:///etc/passwd",
        "undeclared victim bucket": f"gs://{VICTIM_BUCKET}/{VICTIM_OBJECT}",
        "undeclared victim bucket glob": f"gs://{VICTIM_BUCKET}/exports/*.csv",
        "GS:// upper-case scheme": f"GS://{VICTIM_BUCKET}/{VICTIM_OBJECT}",
    }
    out = []
    for name, path in paths.items():
        step = {
            "ps_type": "file.load",
            "source": {"path": path, "format": "csv", "csv": {"delimiter": "\t"}},
            "destination": {"dataset": "atk", "table": "f", "write_mode": "truncate"},
        }
        out.append(Attack(k, f"file.load {name}", step))
    param = {"p": {"type": "string", "required": True}}
    traversal = {
        "file.load {p}=.. traversal": ("{p}/" + VICTIM + "/secret.csv", ".."),
        "file.load {p} absolute": ("{p}", p.victim_file),
    }
    for name, (path, value) in traversal.items():
        step = {
            "ps_type": "file.load",
            "source": {"path": path, "format": "csv"},
            "destination": {"dataset": "atk", "table": "f", "write_mode": "truncate"},
        }
        out.append(Attack(k, name, step, parameters={"p": value}, pipeline={"parameters": param}))
    return out


def other_channel_attacks(p: Paths, local_base: str) -> list[Attack]:
    """Class 8 (new): the same goals through quality.check SQL, arrow.transform, notify templates and secrets."""
    k = "8 other channels"

    def dq(sql: str) -> dict[str, Any]:
        return {
            "ps_type": "quality.check",
            "config": {"checks": [{"type": "custom_sql", "sql": sql, "max_failures": 0}]},
        }

    out = [
        Attack(k, "quality.check custom_sql victim table", dq(f"SELECT secret FROM {VICTIM_TABLE}")),
        Attack(k, "quality.check custom_sql read_text", dq(f"SELECT content FROM read_text('{p.canary_file}')")),
        Attack(
            k,
            "quality.check custom_sql catalog out of scope",
            dq("SELECT * FROM (WITH duckdb_tables AS (SELECT 1 AS x) SELECT x FROM duckdb_tables) AS s, duckdb_tables"),
        ),
        Attack(k, "quality.check custom_sql getenv", dq("SELECT getenv('HOME') AS v")),
        Attack(
            k,
            "quality.check custom_sql dollar-quoted current_setting",
            dq(
                "SELECT $a$ AS c, 'x $a$, current_setting($q$temp_directory$q$) AS v, $c$' AS d, $c$ AS e "
                "FROM {tenant_id}_own.data WHERE FALSE"
            ),
        ),
        Attack(
            k,
            "quality.check custom_sql dollar-quoted cast of a setting",
            dq(
                "SELECT $a$ AS c, 'x $a$, CAST(current_setting($q$temp_directory$q$) AS INTEGER) AS v, $c$' AS d, "
                "$c$ AS e FROM {tenant_id}_own.data"
            ),
        ),
        Attack(
            k,
            "quality.check source in victim dataset",
            {
                "ps_type": "quality.check",
                "source": {"dataset": f"../{VICTIM}_vault", "table": "ledger_q7x"},
                "config": {"checks": [{"type": "row_count", "min": 1}]},
            },
        ),
        Attack(
            k,
            "arrow.transform source path into victim",
            {
                "ps_type": "arrow.transform",
                "source": {"path": f"../{VICTIM}/secret.csv", "format": "csv"},
                "destination": {"dataset": "atk", "table": "t", "write_mode": "truncate"},
                "config": {"operations": []},
            },
        ),
        Attack(
            k,
            "arrow.transform python in expression",
            {
                "ps_type": "arrow.transform",
                "source": {"dataset": "own", "table": "data"},
                "destination": {"dataset": "atk", "table": "t", "write_mode": "truncate"},
                "config": {"operations": [{"derive": {"v": "__import__('os').getenv('HOME')"}}]},
            },
        ),
        Attack(
            k,
            "arrow.transform dunder attribute",
            {
                "ps_type": "arrow.transform",
                "source": {"dataset": "own", "table": "data"},
                "destination": {"dataset": "atk", "table": "t", "write_mode": "truncate"},
                "config": {"operations": [{"filter": "label.__class__ == 'x'"}]},
            },
        ),
        Attack(
            k,
            "http.extract sends victim's secret",
            _http(f"{local_base}/records", auth={"secret": "vault_key", "header": "X-Leak"}),
        ),
    ]
    for name, message in {
        "format attribute": "{run_id.__class__.__mro__}",
        "format index": "{0}",
        "admin token name": "{admin_token}",
        "victim secret name": "{vault_key}",
        "nested braces": "{{tenant_id}}{tenant_id}",
    }.items():
        out.append(
            Attack(
                k,
                f"notify message {name}",
                {"ps_type": "notify.slack", "config": {"channel": "alerts", "message": message}},
                expect="no-leak",
            )
        )
    return out
