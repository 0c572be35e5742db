"""Which SQL a step may run: one SELECT over its own tenant's datasets, checked on the parsed statement (sqlglot).

Checked at validation time (the loader, with `{tenant_id}` and unknown values standing in as sentinels) and again at
run time on the exact SQL sent to the warehouse (bigquery.query), so a per-run value cannot widen what a step reads.

Rules:
- exactly one statement, a query (SELECT, WITH ... SELECT, set operations); DDL, DML and scripting are refused: the
  processor does the writing;
- every table is `{tenant_id}_<name>.<table>` (optionally `{project}.` or the configured project in front); a bare
  name must be a CTE; `INFORMATION_SCHEMA` only per own dataset (`{tenant_id}_x.INFORMATION_SCHEMA.TABLES`), never
  the project- or region-wide views (other tenants' jobs and tables);
- no table functions (`EXTERNAL_QUERY`, `ML.PREDICT`, ...) and no user functions outside the tenant's datasets;
- a substituted placeholder must lie inside an identifier (a table or column name), never in a literal or comment.

Limit: a tenant id that is another tenant id plus `_...` (`acme` and `acme_eu`) would make `acme_eu_sales` ambiguous;
datasets of every known tenant (`other_tenants`) are refused for that reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from shared.errors import TerminalError
from shared.pipelines.parameters import BUILTIN_NAMES
from shared.pipelines.templating import TemplateError, ValidationScope, describe_sentinels, render

_FUNCTION_NAMESPACES = frozenset(
    {"SAFE", "NET", "KEYS", "AEAD", "HLL_COUNT", "KLL_QUANTILES", "ML", "AI", "DLP", "S2", "JSON", "OBJ"}
)
"""BigQuery's own function prefixes (`NET.HOST`, `HLL_COUNT.MERGE`): not datasets."""


def _same(text: str) -> str:
    return text


@dataclass(frozen=True)
class TableScope:
    tenant_marker: str
    """The tenant id, or (at validation time, when the file's tenant is unknown) the sentinel standing for it."""
    project_markers: frozenset[str] = frozenset()
    """Accepted project qualifiers: the configured project and/or the rendering of `{project}`."""
    other_tenants: frozenset[str] = frozenset()
    describe: Callable[[str], str] = field(default=_same)
    """Turns rendered text back into what the user wrote (sentinels -> `{name}`), for messages."""


@dataclass(frozen=True)
class SqlIssue:
    offset: int | None
    """Character offset in the checked SQL text, or None for the statement as a whole."""
    message: str


class QueryScopeError(TerminalError):
    """The SQL a step was about to run breaks a scope rule (module docstring); retrying cannot help."""


def validate_sql_template(sql: str, scope: ValidationScope) -> list[tuple[int | None, str]]:
    """Validation time: (offset in `sql`, message) for every problem of a templated query. Processors with SQL in
    their settings call this from their `validate_step`."""
    problems: list[tuple[int | None, str]] = list(scope.placeholder_problems(sql))
    values = scope.values()
    try:
        rendered = render(sql, values)
    except TemplateError as exc:
        return [*problems, (exc.offset, str(exc))]
    table_scope = TableScope(
        tenant_marker=scope.tenant_marker(),
        project_markers=frozenset({str(values["project"])}),
        other_tenants=scope.other_tenants,
        describe=describe_sentinels(values),
    )
    issues = check_select(rendered.text, table_scope, rendered.substituted)
    for issue in issues:
        offset = None if issue.offset is None else rendered.template_offset(issue.offset)
        problems.append((offset, table_scope.describe(issue.message)))
    if not issues:
        for name in query_parameter_names(rendered.text):
            if name not in values:
                match = re.search(rf"@{re.escape(name)}\b", sql)
                problems.append(
                    (
                        match.start() if match else None,
                        f"@{name} is not a parameter, variable or built-in ({', '.join(sorted(BUILTIN_NAMES))})",
                    )
                )
    return problems


def query_parameter_names(sql: str) -> list[str]:
    """The `@name` query parameters a statement uses, in order of first use (string literals are not searched)."""
    try:
        trees = [t for t in sqlglot.parse(sql, read="bigquery") if t is not None]
    except SqlglotError:
        return []
    return list(dict.fromkeys(p.name for tree in trees for p in tree.find_all(exp.Parameter)))


def render_checked_sql(
    sql: str, values: Mapping[str, Any], *, tenant_id: str, project: str, other_tenants: frozenset[str] = frozenset()
) -> str:
    """Run time: the exact SQL to send, with placeholders substituted, after checking it again against the tenant's
    scope. Raises TemplateError / QueryScopeError (both terminal) naming every problem."""
    rendered = render(sql, values)
    scope = TableScope(tenant_marker=tenant_id, project_markers=frozenset({project}), other_tenants=other_tenants)
    issues = check_select(rendered.text, scope, rendered.substituted)
    if issues:
        raise QueryScopeError("query refused: " + "; ".join(issue.message for issue in issues))
    return rendered.text


def check_select(sql: str, scope: TableScope, substituted: Sequence[tuple[int, int, str]] = ()) -> list[SqlIssue]:
    """Every rule above that `sql` breaks (empty if it may run). `substituted` = (start, end, name) of each
    placeholder value in `sql` (see templating.Rendered)."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="bigquery") if s is not None]
    except ParseError as exc:
        return [SqlIssue(_error_offset(sql, exc), f"SQL syntax error: {_describe(exc)}")]
    except SqlglotError as exc:
        return [SqlIssue(None, f"SQL syntax error: {exc}")]
    if not statements:
        return [SqlIssue(None, "the query is empty")]
    if len(statements) > 1:
        return [SqlIssue(_offset(statements[1]), "one statement only: source.query is a single SELECT")]
    tree = statements[0]
    query = tree.this if isinstance(tree, exp.Subquery) else tree
    if not isinstance(query, exp.Query) or isinstance(query, exp.Subquery):
        verb = sql.strip().split(None, 1)[0].upper() if sql.strip() else "?"
        return [
            SqlIssue(
                len(sql) - len(sql.lstrip()),
                f"only a SELECT query may run here, not {verb}: the processor writes the destination "
                "(write_mode append | truncate | merge)",
            )
        ]
    issues = _placement_issues(tree, substituted)
    issues += _table_issues(tree, scope)
    issues += _function_issues(tree, scope)
    return sorted(issues, key=lambda i: (i.offset if i.offset is not None else -1, i.message))


def dataset_problem(dataset: str, scope: TableScope) -> str | None:
    """Why `dataset` is not one of the scope's tenant's datasets, or None if it is."""
    shown = scope.describe(dataset)
    if dataset.upper() == "INFORMATION_SCHEMA" or dataset.lower().startswith("region-"):
        return (
            f"`{shown}` is project/region-wide and shows other tenants: read INFORMATION_SCHEMA of your own dataset "
            "({tenant_id}_<name>.INFORMATION_SCHEMA.TABLES)"
        )
    prefix = scope.tenant_marker + "_"
    if not dataset.startswith(prefix) or len(dataset) == len(prefix):
        return (
            f"dataset `{shown}` is not one of this tenant's datasets: a step may only use datasets named "
            f"{scope.describe(prefix)}<name>"
        )
    for other in sorted(scope.other_tenants):
        if other != scope.tenant_marker and (dataset == other or dataset.startswith(other + "_")):
            return f"dataset `{shown}` belongs to tenant {other!r}"
    return None


# -- rules -------------------------------------------------------------------------------------------------------


def _placement_issues(tree: exp.Expr, substituted: Sequence[tuple[int, int, str]]) -> list[SqlIssue]:
    if not substituted:
        return []
    spans = [
        (int(node.meta["start"]), int(node.meta["end"]))
        for node in tree.find_all(exp.Identifier)
        if "start" in node.meta and "end" in node.meta
    ]
    issues = []
    for start, end, name in substituted:
        if not any(s <= start and end - 1 <= e for s, e in spans):
            issues.append(
                SqlIssue(
                    start,
                    f"placeholder {{{name}}} may only be part of a table or column name, not of a literal, "
                    f"keyword or comment: pass a value as the query parameter @{name}",
                )
            )
    return issues


def _table_issues(tree: exp.Expr, scope: TableScope) -> list[SqlIssue]:
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    issues = []
    for table in tree.find_all(exp.Table):
        at = _offset(table)
        if not isinstance(table.this, exp.Identifier):
            issues.append(SqlIssue(at, f"table functions are not allowed here: {table.sql('bigquery')[:80]}"))
            continue
        project, dataset, name = table.catalog, table.db, table.name
        if not dataset:
            if not project and name in ctes:
                continue
            issues.append(
                SqlIssue(
                    at,
                    f"table `{scope.describe(name)}` needs its dataset: write {{tenant_id}}_<dataset>."
                    f"{scope.describe(name)}",
                )
            )
            continue
        if project and project not in scope.project_markers:
            issues.append(SqlIssue(at, _project_problem(project, scope)))
        problem = dataset_problem(dataset, scope)
        if problem:
            issues.append(SqlIssue(at, problem))
    return issues


def _function_issues(tree: exp.Expr, scope: TableScope) -> list[SqlIssue]:
    """User functions are called as `dataset.fn(...)` (or `project.dataset.fn`): they must be the tenant's own."""
    issues = []
    for call in tree.find_all(exp.Anonymous):
        path: list[str] = []
        if isinstance(call.parent, exp.Dot) and call.parent.expression is call:
            path = _dotted(call.parent.this)
        elif isinstance(call.this, exp.Identifier) and "." in call.this.name:
            path = call.this.name.split(".")[:-1]
        if not path or (len(path) == 1 and path[0].upper() in _FUNCTION_NAMESPACES):
            continue
        at = _offset(call.parent if isinstance(call.parent, exp.Dot) else call)
        if len(path) > 2:
            issues.append(SqlIssue(at, f"function path {'.'.join(path)} is not project.dataset"))
            continue
        if len(path) == 2 and path[0] not in scope.project_markers:
            issues.append(SqlIssue(at, _project_problem(path[0], scope)))
        problem = dataset_problem(path[-1], scope)
        if problem:
            issues.append(SqlIssue(at, "user function: " + problem))
    return issues


def _project_problem(project: str, scope: TableScope) -> str:
    return (
        f"project `{scope.describe(project)}` is not allowed: a step reads only this deployment's project; "
        "write {project}. or leave the project out"
    )


# -- helpers -----------------------------------------------------------------------------------------------------


def _dotted(node: exp.Expr) -> list[str]:
    if isinstance(node, exp.Dot):
        return [*_dotted(node.this), *_dotted(node.expression)]
    if isinstance(node, exp.Identifier | exp.Column | exp.Var):
        return [part for part in node.sql("bigquery").replace("`", "").split(".") if part]
    return ["<expression>"]


def _offset(node: exp.Expr) -> int | None:
    starts = [int(n.meta["start"]) for n in node.walk() if isinstance(n, exp.Expr) and "start" in n.meta]
    return min(starts) if starts else None


def _error_offset(sql: str, exc: ParseError) -> int | None:
    if not exc.errors:
        return None
    first = exc.errors[0]
    line, col = first.get("line"), first.get("col")
    if not isinstance(line, int) or not isinstance(col, int):
        return None
    lines = sql.split("\n")
    start = sum(len(text) + 1 for text in lines[: max(line - 1, 0)])
    highlight = str(first.get("highlight") or "")
    return max(0, min(len(sql), start + col - max(len(highlight), 1)))


def _describe(exc: ParseError) -> str:
    first = exc.errors[0] if exc.errors else {}
    description = str(first.get("description") or exc).strip()
    highlight = first.get("highlight")
    return f"{description} near {highlight!r}" if highlight else description
