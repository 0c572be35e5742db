"""Which SQL a step may run: one SELECT over its own tenant's datasets, accepted by an allow-list over the whole
parsed statement (sqlglot, BigQuery dialect), never by a deny-list.

Checked at validation time (the loader, with `{tenant_id}` and unknown values standing in as sentinels) and again at
run time on the exact SQL sent to the warehouse (bigquery.query, quality.check), so a per-run value cannot widen what
a step reads.

Rules:
- exactly one statement, a query (SELECT, WITH ... SELECT, set operations); DDL, DML and scripting are refused: the
  processor does the writing;
- every node of the statement is a clause, operator or GoogleSQL built-in function on the allow-list
  (sql_allowlist): table-valued functions, LATERAL, user and unknown functions are refused wherever they stand;
- every table reference, resolved after CTE scoping, is `{tenant_id}_<name>.<table>` (optionally `{project}.` or the
  configured project in front) or a CTE visible there; CTEs and aliases never take a catalog/system name; no
  INFORMATION_SCHEMA in any form (sql_tables);
- a substituted placeholder must lie inside an identifier (a table or column name), never in a literal or comment.

What runs is what was checked: the run-time SQL is regenerated from the checked tree (comments dropped), and that
text is parsed and checked once more, so no parser/printer round trip can turn an accepted query into another one.

Limit: a tenant id that is another tenant id plus `_...` (`acme` and `acme_eu`) would make `acme_eu_sales` ambiguous;
datasets of every known tenant (`other_tenants`) are refused for that reason, case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence, Set
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.tokenizer_core import TokenType

from shared.errors import TerminalError
from shared.pipelines.parameters import BUILTIN_NAMES
from shared.pipelines.sql_allowlist import node_problem
from shared.pipelines.sql_tables import (
    SqlIssue,
    TableScope,
    dataset_problem,
    node_offset,
    table_issues,
    writable_dataset_problem,
)
from shared.pipelines.templating import TemplateError, ValidationScope, describe_sentinels, render

__all__ = [
    "QueryScopeError",
    "SqlIssue",
    "TableScope",
    "check_select",
    "checked_query",
    "dataset_problem",
    "query_parameter_names",
    "render_checked_sql",
    "validate_sql_template",
    "writable_dataset_problem",
]


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
                match = re.search(rf"@{re.escape(name)}\b", sql, re.IGNORECASE)
                problems.append(
                    (
                        match.start() if match else None,
                        f"{match.group(0) if match else '@' + name} is not a parameter, variable or built-in "
                        f"({', '.join(sorted(BUILTIN_NAMES))})",
                    )
                )
    return problems


def query_parameter_names(sql: str) -> list[str]:
    """The `@name` query parameters a statement uses, in order of first use (string literals are not searched)."""
    try:
        trees = [t for t in sqlglot.parse(sql, read="bigquery") if t is not None]
    except SqlglotError:
        return []
    return list(dict.fromkeys(p.name.lower() for tree in trees for p in tree.find_all(exp.Parameter)))


def _lower_parameter_names(tree: exp.Expr) -> None:
    """GoogleSQL query parameter names ignore case (`@START_DATE` is the parameter start_date): the SQL to send
    spells them as the pipeline declares them, in lower case."""
    for parameter in tree.find_all(exp.Parameter):
        if isinstance(parameter.this, exp.Var) and parameter.name != parameter.name.lower():
            parameter.set("this", exp.var(parameter.name.lower()))


def render_checked_sql(
    sql: str, values: Mapping[str, Any], *, tenant_id: str, project: str, other_tenants: Set[str] = frozenset()
) -> str:
    """Run time: the exact SQL to send (placeholders substituted, regenerated from the checked statement), after
    checking it again against the tenant's scope. Raises TemplateError / QueryScopeError (both terminal) naming every
    problem."""
    rendered = render(sql, values)
    scope = TableScope(tenant_marker=tenant_id, project_markers=frozenset({project}), other_tenants=other_tenants)
    canonical, issues = checked_query(rendered.text, scope, rendered.substituted)
    if issues or canonical is None:
        raise QueryScopeError("query refused: " + "; ".join(issue.message for issue in issues))
    return canonical


MAX_ISSUES = 20
"""Refusals reported per query; the rest are counted."""
_TOO_DEEP = "the query is nested too deeply to check (flatten nested parentheses or subqueries, e.g. with CTEs)"


def check_select(sql: str, scope: TableScope, substituted: Sequence[tuple[int, int, str]] = ()) -> list[SqlIssue]:
    """Every rule above that `sql` breaks (empty if it may run). `substituted` = (start, end, name) of each
    placeholder value in `sql` (see templating.Rendered)."""
    return checked_query(sql, scope, substituted)[1]


def checked_query(
    sql: str, scope: TableScope, substituted: Sequence[tuple[int, int, str]] = ()
) -> tuple[str | None, list[SqlIssue]]:
    """(the SQL to send, no issues) if `sql` may run, else (None, every issue). The SQL to send is regenerated from
    the checked statement and has passed the same checks itself."""
    tree, issues = _single_query(sql)
    if tree is None:
        return None, issues
    issues = _statement_issues(tree, scope, substituted)
    if issues:
        return None, issues
    _lower_parameter_names(tree)
    try:
        canonical = tree.sql("bigquery", comments=False)
    except RecursionError:
        return None, [SqlIssue(None, _TOO_DEEP)]
    again, second = _single_query(canonical)
    second = second if again is None else _statement_issues(again, scope, ())
    if second:
        reasons = "; ".join(issue.message for issue in second)
        return None, [SqlIssue(None, f"the query reads differently once normalised for the warehouse: {reasons}")]
    return canonical, []


_STRING_TOKENS = frozenset({TokenType.STRING, TokenType.RAW_STRING, TokenType.BYTE_STRING, TokenType.NATIONAL_STRING})

MAX_QUERY_CHARS = 64 * 1024
"""Longest query text a step may run. Checking costs CPU in the API process in proportion to the text (a 300 KB
query of 150,000 additions takes ~5 s to parse), so the length is capped before sqlglot sees it; real step queries
are a few KB."""


def _dollar_problem(sql: str) -> SqlIssue | None:
    """`$` outside a string literal. GoogleSQL has no use for it, but DuckDB reads `$tag$ ... $tag$` as a string: text
    sqlglot parses as SQL (and checks) would be a string to DuckDB, and a string to sqlglot would run as SQL there. No
    parser differential survives if no `$` is left outside strings."""
    try:
        tokens = sqlglot.tokenize(sql, read="bigquery")
    except SqlglotError:
        return None  # the parse reports the syntax error
    for token in tokens:
        if token.token_type not in _STRING_TOKENS and "$" in token.text:
            return SqlIssue(token.start, f"`$` may only appear inside a string literal (near {token.text[:40]!r})")
    return None


def _single_query(sql: str) -> tuple[exp.Query | None, list[SqlIssue]]:
    if len(sql) > MAX_QUERY_CHARS:
        return None, [SqlIssue(None, f"the query is {len(sql):,} characters; at most {MAX_QUERY_CHARS:,} may run")]
    dollar = _dollar_problem(sql)
    if dollar is not None:
        return None, [dollar]
    try:
        statements = [s for s in sqlglot.parse(sql, read="bigquery") if s is not None]
    except ParseError as exc:
        return None, [SqlIssue(_error_offset(sql, exc), f"SQL syntax error: {_describe(exc)}")]
    except SqlglotError as exc:
        return None, [SqlIssue(None, f"SQL syntax error: {exc}")]
    except RecursionError:
        return None, [SqlIssue(None, _TOO_DEEP)]
    if not statements:
        return None, [SqlIssue(None, "the query is empty")]
    if len(statements) > 1:
        return None, [SqlIssue(node_offset(statements[1]), "one statement only: source.query is a single SELECT")]
    tree = statements[0]
    query = tree.this if isinstance(tree, exp.Subquery) else tree
    if not isinstance(tree, exp.Query) or not isinstance(query, exp.Query) or isinstance(query, exp.Subquery):
        verb = sql.strip().split(None, 1)[0].upper() if sql.strip() else "?"
        return None, [
            SqlIssue(
                len(sql) - len(sql.lstrip()),
                f"only a SELECT query may run here, not {verb}: the processor writes the destination "
                "(write_mode append | truncate | merge)",
            )
        ]
    return tree, []


def _statement_issues(
    tree: exp.Query, scope: TableScope, substituted: Sequence[tuple[int, int, str]]
) -> list[SqlIssue]:
    issues = _allowlist_issues(tree, scope)
    issues += _placement_issues(tree, substituted)
    issues += table_issues(tree, scope)
    issues.sort(key=lambda i: (i.offset if i.offset is not None else -1, i.message))
    if len(issues) > MAX_ISSUES:  # a run's error and a 4xx body stay small, however many refusals a query holds
        more = len(issues) - MAX_ISSUES
        issues = [*issues[:MAX_ISSUES], SqlIssue(None, f"... and {more} more problem(s) of the same kinds")]
    return issues


# -- rules -------------------------------------------------------------------------------------------------------


def _allowlist_issues(tree: exp.Expr, scope: TableScope) -> list[SqlIssue]:
    """One issue per node outside the allow-list; the inside of a refused node is not reported again."""
    issues = []
    pending: list[exp.Expr] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
            continue  # a table function: reported once, by table_issues
        problem = node_problem(node)
        if problem:
            issues.append(SqlIssue(node_offset(node), scope.describe(problem)))
            continue
        pending.extend(node.iter_expressions())
    return issues


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


# -- helpers -----------------------------------------------------------------------------------------------------


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
