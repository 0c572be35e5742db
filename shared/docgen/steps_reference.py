"""docs/steps.md and `cloudact steps [PS_TYPE]`: the per-step reference, rendered from the code that checks steps.

Every field of every step type comes from the processor's pydantic settings models (its SPEC's `config_models`: type,
default, constraints, description), the intro of each type from its SPEC's `summary`, the arrow expression functions
from `expressions.FUNCTIONS` and the quality checks from `quality_rules`. The examples below are validated as
pipelines by tests/unit/test_docs.py, so the page cannot show a step the loader would refuse.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from shared.pipelines.spec import StepSpec
from shared.processors import registry

EXAMPLES: dict[str, str] = {
    "bigquery.query": """\
- step_id: revenue_by_region
  ps_type: bigquery.query
  depends_on: [load_orders]
  source:
    query: |
      SELECT order_date, region, COUNT(*) AS orders, ROUND(SUM(amount), 2) AS revenue
      FROM {tenant_id}_sales.orders
      WHERE order_date = @run_date
      GROUP BY order_date, region
  destination: {dataset: sales, table: revenue_by_region, write_mode: merge, merge_keys: [order_date, region]}
""",
    "arrow.transform": """\
- step_id: line_items
  ps_type: arrow.transform
  source: {dataset: billing, table: gcp_billing_export, columns: [service, cost, credits, usage_start_time]}
  destination: {dataset: billing, table: cost_line_items, write_mode: truncate}
  config:
    operations:
      - derive:
          usage_date: "date(usage_start_time)"
          service: "service.description"
          credits_total: "list_sum(credits.amount)"
      - filter: "cost > 0"
      - aggregate: {group_by: [usage_date, service], metrics: {cost: "sum(cost)", rows: "count()"}}
""",
    "file.load": """\
- step_id: load_export
  ps_type: file.load
  source: {path: "exports/billing_{run_date}.parquet"}
  destination: {dataset: billing, table: gcp_billing_export, write_mode: truncate}
""",
    "http.extract": """\
- step_id: fetch_rates
  ps_type: http.extract
  source:
    url: "https://api.example.com/v1/rates"
    params: {day: "{run_date}"}
    records_path: data.rates
  destination: {dataset: finance, table: fx_rates, write_mode: append}
""",
    "quality.check": """\
- step_id: check_costs
  ps_type: quality.check
  source: {dataset: billing, table: daily_costs}
  config:
    checks:
      - {type: row_count, min: 1}
      - {type: not_null, columns: [usage_date, service]}
      - {type: unique, columns: [usage_date, service, project_id]}
      - {type: range, column: cost, min: 0}
      - {type: freshness, column: usage_date, max_age_hours: 48, reference: run_date, severity: warn}
      - {type: custom_sql, sql: "SELECT * FROM {tenant_id}_billing.daily_costs WHERE cost < 0"}
""",
    "notify.slack": """\
- step_id: alert_finops
  ps_type: notify.slack
  depends_on: [check_costs]
  trigger: on_failure
  config: {channel: finops_slack, message: "billing_costs failed for {run_date} (run {run_id})"}
""",
    "notify.email": """\
- step_id: mail_summary
  ps_type: notify.email
  config: {channel: sales_team, subject: "Daily sales {run_date}", message: "Run {run_id} finished.", severity: info}
""",
    "debug.job": """\
- step_id: long_job
  ps_type: debug.job
  config: {duration_s: 30, rows: 10}
""",
    "debug.noop": """\
- step_id: wait_a_bit
  ps_type: debug.noop
  config: {sleep_ms: 200, rows: 10}
""",
}
"""A valid step per ps_type, shown under its reference (checked by a test: every known type has one that loads)."""

EXPRESSION_FUNCTIONS: dict[str, str] = {
    "abs": "absolute value",
    "cast": "`cast(x, 'FLOAT64')`: a column type as in `cast` operations (STRING, INT64, FLOAT64, NUMERIC, ...)",
    "ceil": "round up",
    "coalesce": "the first non-null argument",
    "concat": "the arguments as text, joined",
    "contains": "`contains(text, 'part')`: true if the text contains the literal",
    "date": "a DATE from a date, timestamp or 'YYYY-MM-DD' text",
    "day": "day of the month",
    "floor": "round down",
    "hour": "hour of a timestamp",
    "if_else": "`if_else(condition, then, else)`",
    "is_not_null": "true where the value is not null",
    "is_null": "true where the value is null",
    "kv_lookup": "`kv_lookup(labels, 'team')`: the value of the first {key, value} struct with that key, else null",
    "length": "length of a text in characters",
    "list_len": "number of elements of a list",
    "list_sum": "sum of a list of numbers (`list_sum(credits.amount)`; empty list 0, null list null)",
    "lower": "lower-case text",
    "month": "month (1-12)",
    "regex_match": "`regex_match(text, '^a.*')`: true where the regular expression matches",
    "round": "`round(x)` or `round(x, digits)`",
    "safe_divide": "`safe_divide(a, b)`: a / b, null when b is 0 (as GoogleSQL's SAFE_DIVIDE)",
    "starts_with": "`starts_with(text, 'prefix')`",
    "strftime": "`strftime(ts, '%Y-%m')`: a date/timestamp formatted as text",
    "substr": "`substr(text, start, length?)`, 1-based as in SQL",
    "timestamp": "a UTC TIMESTAMP from a date, timestamp or ISO text",
    "trim": "text without leading/trailing whitespace",
    "upper": "upper-case text",
    "year": "year",
}
"""What each function of `expressions.FUNCTIONS` does (a test checks both name the same functions)."""

CHECK_MEANING: dict[str, str] = {
    "not_null": "Fails for each row with a null in any of `columns`.",
    "unique": "Fails for each row whose `columns` values appear on more than one row.",
    "accepted_values": "Fails for each non-null `column` value outside `values`.",
    "range": "Fails for each `column` value below `min` or above `max` (either may be left out).",
    "regex": "Fails for each non-null `column` value the pattern does not match.",
    "row_count": "Fails when the table's row count is outside [`min`, `max`].",
    "freshness": "Fails when the newest `column` value is older than `max_age_hours`.",
    "custom_sql": "Fails when the query returns more than `max_failures` rows (the query selects the bad rows).",
}
"""What each check type tests (a test checks every type of `quality_rules` has its line)."""

_COMMON = ("step_id", "name", "ps_type", "depends_on", "timeout_minutes", "retries", "trigger")


def render() -> str:
    """The whole reference (docs/steps.md without its generated-file header); every processor's SPEC is checked."""
    registry.check_all()
    parts = [
        "# Step reference\n\n"
        "Every step of a pipeline YAML (`tenant_configs/<tenant>/pipelines/<pipeline>.yaml`) has the common fields "
        "below and the `source` / `destination` / `config` of its `ps_type`. `cloudact steps [PS_TYPE]` prints this "
        "page on the terminal; `cloudact pipelines validate` checks a file against it (and each SQL step against its "
        "warehouse).\n\n"
        f"Step types: {', '.join(f'[`{t}`](#{_anchor(t)})' for t in registry.known_types())}; "
        "also [the arrow expression language](#arrow-expressions) and [quality checks](#quality-checks).\n",
        common_fields(),
        placeholders(),
    ]
    parts += [step_reference(ps_type) for ps_type in registry.known_types()]
    parts += [expression_reference(), quality_reference()]
    return "\n".join(parts)


def common_fields() -> str:
    schema = StepSpec.model_json_schema(ref_template="#/$defs/{model}")
    rows = _field_rows(schema, only=_COMMON)
    return (
        "## Every step\n\n"
        + _table(rows)
        + "\n`retries` (also settable once for the whole pipeline):\n\n"
        + (_table(_field_rows(schema["$defs"]["RetryPolicy"])))
    )


def placeholders() -> str:
    from shared.pipelines.parameters import BUILTIN_NAMES

    builtins = ", ".join(f"`{n}`" for n in sorted(BUILTIN_NAMES))
    return (
        "## Values in settings: `{name}` and `@name`\n\n"
        f"Every run defines {builtins} (`run_date` is the day the run is for; a run may set it as a parameter). "
        "The pipeline's `variables` and `parameters` add more names.\n\n"
        "* `{name}` is pasted into a table, dataset or column name, a file path or a URL (`daily_{run_date}`: a date "
        "becomes YYYYMMDD in names); only letters, digits and `_` may be pasted, so it can never change a statement.\n"
        "* `@name` in SQL is a query parameter: the value is bound, typed (a `date` parameter is a DATE), never pasted."
        "\n* SQL may read only the tenant's own datasets, `{tenant_id}_<dataset>.<table>`: one SELECT, GoogleSQL "
        "built-in functions only.\n"
    )


def step_reference(ps_type: str) -> str:
    """One step type: what it does, each settings section field by field, an example."""
    spec = registry.get_spec(ps_type)
    out = [f"## {ps_type}\n", f"`{ps_type}`: {spec.summary}\n"]
    models: dict[str, type[BaseModel]] = dict(spec.config_models)
    if ps_type == "quality.check":
        from shared.processors.step_config import TableRef

        out.append(_model_reference("source", TableRef, "optional when every check is custom_sql"))
        out.append("`config`: `checks`, a list of at least one check, each with a `type` (below).\n")
        models = {}
    for section, model in models.items():
        out.append(_model_reference(section, model))
    if not models and ps_type != "quality.check":
        settings = spec.settings_doc.strip() or "(no settings)"
        out.append(f"Its settings, as the step checks them:\n\n```text\n{settings}\n```\n")
    if ps_type == "arrow.transform":
        out.append("Expressions in filter/derive/aggregate: [the arrow expression language](#arrow-expressions).\n")
    if ps_type == "quality.check":
        out.append("Every check type, field by field: [quality checks](#quality-checks).\n")
    out.append(f"Example:\n\n```yaml\n{EXAMPLES[ps_type]}```\n")
    return "\n".join(out)


def expression_reference() -> str:
    from shared.processors import expressions

    doc = inspect.cleandoc(expressions.__doc__ or "")
    intro = "\n\n".join(doc.split("\n\n")[:3]).replace("FUNCTIONS", "the functions below")
    lines = ["## Arrow expressions\n", intro, ""]
    lines += ["| function | arguments | what it gives |", "|---|---|---|"]
    for name, (low, high, _impl) in sorted(expressions.FUNCTIONS.items()):
        arity = str(low) if low == high else (f"{low} or more" if high >= 99 else f"{low} to {high}")
        lines.append(f"| `{name}` | {arity} | {EXPRESSION_FUNCTIONS.get(name, '')} |")
    return "\n".join(lines) + "\n"


def quality_reference() -> str:
    from shared.processors import quality_rules

    out = [
        "## Quality checks\n",
        "`quality.check` runs each check as its own query and records every result in `{tenant}_metadata.dq_results`"
        " (see the run page and `GET .../metadata/executions/{run_id}/quality`). Every check takes:\n",
        _table(_field_rows(quality_rules.NotNull.model_json_schema(), only=("name", "severity"))),
    ]
    for model in _check_models():
        schema = model.model_json_schema(ref_template="#/$defs/{model}")
        kind = schema["properties"]["type"]["const"]
        meaning = CHECK_MEANING.get(kind, "")
        out.append(f"### {kind}\n\n{meaning}\n\n" + _table(_field_rows(schema, skip=("name", "severity", "type"))))
    return "\n".join(out)


def _check_models() -> Iterator[type[BaseModel]]:
    from shared.processors import quality_rules

    schema = quality_rules.QualitySettings.model_json_schema(ref_template="#/$defs/{model}")
    for ref in schema["properties"]["checks"]["items"]["oneOf"]:
        yield getattr(quality_rules, ref["$ref"].rsplit("/", 1)[1])


# -- markdown from JSON schema -------------------------------------------------------------------------------------


def _model_reference(section: str, model: type[BaseModel], note: str = "") -> str:
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    out = [f"`{section}`{f' ({note})' if note else ''}:\n", _table(_field_rows(schema))]
    defs = schema.get("$defs", {})
    for name in _referenced(schema, defs):
        out.append(f"`{section}` > `{name}`:\n\n" + _table(_field_rows(defs[name])))
    return "\n".join(out)


def _referenced(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """Names of the nested models a schema uses, in order of first use, each once."""
    seen: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.rsplit("/", 1)[1]
                if name not in seen and name in defs:
                    seen.append(name)
                    walk(defs[name])
            for key, value in node.items():
                if key != "$defs":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return seen


def _field_rows(schema: dict[str, Any], only: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> list[list[str]]:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        if (only and name not in only) or name in skip:
            continue
        default = "required" if name in required else _default(prop)
        rows.append([f"`{name}`", _type(prop), default, _description(prop)])
    return rows


def _default(prop: dict[str, Any]) -> str:
    if "default" not in prop:
        return "optional"
    value = prop["default"]
    return "optional" if value is None else f"`{json.dumps(value)}`"


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[1]
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    for key in ("anyOf", "oneOf"):
        if key in prop:
            kinds = [_type(p) for p in prop[key] if p.get("type") != "null"]
            return " \\| ".join(dict.fromkeys(kinds))
    kind = prop.get("type")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}))}"
    if kind == "object":
        values = prop.get("additionalProperties")
        return f"map of name → {_type(values)}" if isinstance(values, dict) else "mapping"
    return {"integer": "int", "number": "number", "boolean": "bool", "string": "string"}.get(str(kind), "any")


def _description(prop: dict[str, Any]) -> str:
    text = str(prop.get("description") or "")
    limits = []
    for key, shown in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("minLength", "length ≥")):
        if key in prop:
            limits.append(f"{shown} {prop[key]}")
    if "minItems" in prop:
        limits.append(f"at least {prop['minItems']} item(s)")
    if "maxItems" in prop:
        limits.append(f"at most {prop['maxItems']} item(s)")
    if "pattern" in prop:
        limits.append(f"pattern `{prop['pattern']}`")
    suffix = f" ({'; '.join(limits)})" if limits else ""
    return (text + suffix).replace("|", "\\|").replace("\n", " ").strip() or "-"


def _table(rows: list[list[str]]) -> str:
    lines = ["| field | type | default | description |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _anchor(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum() or c in "-_ ").replace(" ", "-")
